//! `drift`: the command line of the Drift vector engine. Embedded mode works directly on a
//! data directory (like `sqlite3`).

mod cli;
mod lab;
mod output;
mod serve;
mod sink;
mod sql;

use std::process::ExitCode;

use clap::Parser;

/// Exit status when stdout's reader has gone (128 + SIGPIPE).
const BROKEN_PIPE_STATUS: i32 = 141;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // A reader that went away (`drift ... | head`) ends the command quietly, with the
        // status a shell gives a process stopped by SIGPIPE.
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("drift: internal error: {}{at}", msg.replace('\n', " "));
    }));
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRIFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let mut line = chain.join(": ");
            line = line.replace('\n', " ");
            eprintln!("drift: error: {line}");
            ExitCode::FAILURE
        }
    }
}
