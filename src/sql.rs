//! `drift sql`: SQL over the data directory's collections (DataFusion) or, with `--server`,
//! over a server's (Arrow Flight SQL), from `-e`, a file, standard input, or an interactive
//! prompt with history.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use drift_connectors::sql::PlanCache;
use drift_engine::Database;
use tonic::transport::Channel;

/// How `drift sql` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlOutput {
    /// Aligned table.
    Table,
    /// CSV with a header row (vectors as text).
    Csv,
    /// One JSON array of row objects per statement.
    Json,
}

/// Where `drift sql` runs its statements.
pub enum SqlTarget {
    /// In process, over a data directory.
    Local(Database),
    /// On a server, through Arrow Flight SQL.
    Server(String),
}

/// A SQL session: a local DataFusion context, or a Flight SQL connection that replays the
/// session's `SET` statements ahead of each query (the server keeps no session).
enum Session {
    Local(SessionContext, PlanCache),
    Remote {
        client: Box<FlightSqlServiceClient<Channel>>,
        /// Parses statements in the server's dialect.
        parser: SessionContext,
        sets: Vec<String>,
    },
}

impl Session {
    /// Runs every statement in `text`, printing each result.
    async fn execute(&mut self, text: &str, output: SqlOutput, out: &mut dyn Write) -> Result<()> {
        match self {
            Session::Local(ctx, plans) => execute(ctx, plans, text, output, out).await,
            Session::Remote {
                client,
                parser,
                sets,
            } => {
                for stmt in drift_connectors::sql::parse(parser, text)? {
                    let sql = stmt.to_string();
                    if sql.trim_start().to_ascii_uppercase().starts_with("SET ") {
                        sets.push(sql);
                        continue;
                    }
                    let request: Vec<&str> = sets
                        .iter()
                        .map(String::as_str)
                        .chain([sql.as_str()])
                        .collect();
                    let batches = drift_connectors::flight::query(client, &request.join("; "))
                        .await
                        .map_err(|e| match e {
                            FlightError::Tonic(s) => anyhow::anyhow!("{}", s.message()),
                            other => anyhow::anyhow!("{other}"),
                        })?;
                    print(&batches, output, out)?;
                }
                Ok(())
            }
        }
    }
}

/// Runs `drift sql`.
pub fn run(
    target: SqlTarget,
    sql: Option<String>,
    file: Option<PathBuf>,
    output: SqlOutput,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let mut session = match target {
            SqlTarget::Local(db) => Session::Local(
                drift_connectors::sql::context(Arc::new(db))?,
                PlanCache::default(),
            ),
            SqlTarget::Server(addr) => Session::Remote {
                client: Box::new(
                    drift_connectors::flight::connect(&addr)
                        .await
                        .with_context(|| format!("cannot reach server {addr}"))?,
                ),
                parser: SessionContext::new_with_config(drift_connectors::sql::session_config()),
                sets: Vec::new(),
            },
        };
        let s = &mut session;
        match (sql, file) {
            (Some(text), _) => s.execute(&text, output, &mut std::io::stdout()).await,
            (None, Some(f)) => {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                s.execute(&text, output, &mut std::io::stdout()).await
            }
            (None, None) if std::io::stdin().is_terminal() => interactive(s, output).await,
            (None, None) => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read standard input")?;
                s.execute(&text, output, &mut std::io::stdout()).await
            }
        }
    })
}

/// Runs every statement in `text` (reusing `plans` where a statement differs from an
/// earlier one only in its vectors), printing each result.
pub async fn execute(
    ctx: &SessionContext,
    plans: &PlanCache,
    text: &str,
    output: SqlOutput,
    out: &mut dyn Write,
) -> Result<()> {
    for batches in plans.run(ctx, text).await? {
        print(&batches, output, out)?;
    }
    Ok(())
}

async fn interactive(session: &mut Session, output: SqlOutput) -> Result<()> {
    let mut rl = rustyline::DefaultEditor::new().context("cannot start the line editor")?;
    let history = history_file();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!("Drift SQL. End statements with ';'. Tables: one per collection; vector_search('c', [..], k). Ctrl-D quits.");
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "drift> "
        } else {
            "   ..> "
        };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(_) => break,
        };
        pending.push_str(&line);
        pending.push('\n');
        if !line.trim_end().ends_with(';') {
            continue;
        }
        let _ = rl.add_history_entry(pending.trim());
        let started = std::time::Instant::now();
        match session
            .execute(&pending, output, &mut std::io::stdout())
            .await
        {
            Ok(()) => println!("({:.1} ms)", started.elapsed().as_secs_f64() * 1e3),
            Err(e) => eprintln!("error: {}", e.to_string().replace('\n', " ")),
        }
        pending.clear();
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".drift_sql_history"))
}

/// Writes batches as an aligned table, CSV (header + rows) or JSON (one array of objects).
pub fn print(batches: &[RecordBatch], output: SqlOutput, out: &mut dyn Write) -> Result<()> {
    match output {
        SqlOutput::Table => {
            // Statements without a result (DDL, SET) print nothing.
            if batches.iter().all(|b| b.num_columns() == 0) {
                return Ok(());
            }
            writeln!(out, "{}", pretty_format_batches(batches)?)?;
        }
        SqlOutput::Csv => {
            let mut w = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in batches {
                w.write(&flatten(b)?)?;
            }
        }
        SqlOutput::Json => {
            let mut w = arrow_json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Nested columns (vectors) rendered as text, for CSV.
fn flatten(b: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if c.data_type().is_nested() {
            let fmt = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default())?;
            let text: StringArray = (0..c.len())
                .map(|i| (!c.is_null(i)).then(|| fmt.value(i).to_string()))
                .collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}
