//! `drift serve`: the gRPC server over one data directory. Prints `listening on ADDR` once
//! bound (so `--listen 127.0.0.1:0` can be used), and on SIGINT or SIGTERM stops accepting,
//! lets in-flight calls finish, closes every collection (writes are already durable in the
//! WAL) and exits 0.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use drift_engine::Database;

/// Runs the server until a signal.
pub fn run(data_dir: &Path, listen: &str) -> Result<()> {
    let db = Arc::new(
        Database::open(data_dir)
            .with_context(|| format!("cannot open data directory {}", data_dir.display()))?,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, data_dir = %data_dir.display(), "serving");
        drift_connectors::grpc::serve(db.clone(), listener, crate::sink::shutdown_signal())
            .await
            .context("server failed")
    })?;
    db.close();
    eprintln!("drift serve: stopped");
    Ok(())
}
