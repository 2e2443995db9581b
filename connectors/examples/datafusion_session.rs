//! Using Drift from your own DataFusion program: one call registers a database's
//! collections, `vector_search` and the distance functions in a `SessionContext`.
//! Run: `cargo run -p drift-connectors --example datafusion_session`.

use std::sync::Arc;

use datafusion::prelude::{SessionConfig, SessionContext};
use drift_connectors::sql::{self, DriftOptions};
use drift_engine::{CollectionConfig, Database, Metric, Record};

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Arc::new(Database::open(dir.path()).map_err(sql::engine_err)?);
    let docs = db
        .create_collection("docs", CollectionConfig::new(3, Metric::Cosine))
        .map_err(sql::engine_err)?;
    let rows = [
        (1, [1.0, 0.0, 0.0], "north"),
        (2, [0.9, 0.1, 0.0], "north-east"),
        (3, [0.0, 1.0, 0.0], "east"),
        (4, [0.0, 0.0, 1.0], "up"),
    ];
    let records = rows
        .iter()
        .map(|(id, v, name)| Record {
            id: *id,
            vector: v.to_vec(),
            payload: Some(format!("{{\"name\": \"{name}\"}}")),
        })
        .collect();
    docs.upsert(records).map_err(sql::engine_err)?;

    // Your own context; the drift.* options extension makes `SET drift.nprobe = ...` work.
    let ctx = SessionContext::new_with_config(
        SessionConfig::new().with_option_extension(DriftOptions::default()),
    );
    sql::register(&ctx, db.clone())?;

    ctx.sql("SELECT id, payload, _distance FROM vector_search('docs', [1.0, 0.05, 0.0], 2)")
        .await?
        .show()
        .await?;
    ctx.sql(
        "SELECT id, cosine_distance(vector, [0.0, 1.0, 0.1]) AS d FROM docs ORDER BY d LIMIT 2",
    )
    .await?
    .show()
    .await?;
    Ok(())
}
