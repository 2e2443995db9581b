//! Rendering a run: `steps.csv`, `summary.json` (from `summary`), the terminal table, and the charts (in
//! `chart`), all computed from the raw step records; [`read_raw`] reads a run's `raw.jsonl`
//! back.

use std::io::{BufRead, Write as _};
use std::path::Path;

use crate::error::{LabError, Result};
use crate::record::{RunOutcome, StepRecord};

pub use crate::summary::{summarize, Summary, SystemSummary};

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn optf(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_default()
}

/// Writes `steps.csv`: one row per step and system.
pub fn write_csv(out: &RunOutcome, path: &Path) -> Result<()> {
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| LabError::io(path, e))?);
    let mut text = String::from(
        "step,op,system,path,live,time,recall,queries,qps,p50_us,p95_us,p99_us,buckets,splits,merges,reassigned,rewritten,buckets_per_query,codes_per_query,secs,inserted,monitored_recall,index_bytes,engine_us,detail\n",
    );
    for r in &out.records {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{},{},{},{},\"{}\"\n",
            r.step,
            r.op,
            r.system,
            r.path,
            r.live,
            r.time,
            optf(r.recall, 4),
            r.queries,
            optf(r.qps, 1),
            optf(r.p50_us, 1),
            optf(r.p95_us, 1),
            optf(r.p99_us, 1),
            opt(r.buckets),
            opt(r.splits),
            opt(r.merges),
            opt(r.reassigned),
            opt(r.rewritten),
            optf(r.buckets_per_query, 2),
            optf(r.codes_per_query, 0),
            r.secs,
            r.inserted,
            optf(r.monitored_recall, 4),
            opt(r.index_bytes),
            optf(r.engine_us, 1),
            r.detail.replace('"', "'"),
        ));
    }
    f.write_all(text.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| LabError::io(path, e))
}

/// Reads back the raw records of a run folder.
pub fn read_raw(dir: &Path) -> Result<Vec<StepRecord>> {
    let path = dir.join("raw.jsonl");
    let f = std::fs::File::open(&path).map_err(|e| LabError::io(&path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| LabError::io(&path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| LabError::format(&path, format!("line {}: {e}", i + 1)))?,
        );
    }
    Ok(out)
}

/// The terminal table: one line per system.
pub fn table(s: &Summary) -> String {
    let mut t = format!(
        "{} via {} (k={}, {} steps, {} searches, {:.1} s)\n",
        s.name, s.via, s.k, s.steps, s.search_steps, s.secs
    );
    t.push_str(&format!(
        "{:<26} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10} {:>8} {:>9} {:>7} {:>8} {:>7} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8}\n",
        "system",
        "recall",
        "min",
        "final",
        "monitor",
        "qps",
        "engine qps",
        "p50 us",
        "p99 max",
        "bkt/q",
        "codes/q",
        "buckets",
        "splits",
        "merges",
        "reassigned",
        "rewr/ins",
        "MiB",
        "write s"
    ));
    for x in &s.systems {
        t.push_str(&format!(
            "{:<26} {:>7.4} {:>7.4} {:>7.4} {:>8} {:>9.0} {:>10} {:>8.1} {:>9.1} {:>7} {:>8} {:>7} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8.1}\n",
            x.system,
            x.mean_recall,
            x.min_recall,
            x.final_recall,
            optf(x.monitored_recall, 4),
            x.mean_qps,
            optf(x.engine_qps, 0),
            x.p50_us,
            x.max_p99_us,
            optf(x.buckets_per_query, 1),
            optf(x.codes_per_query, 0),
            opt(x.final_buckets),
            opt(x.splits),
            opt(x.merges),
            opt(x.reassigned),
            optf(x.rewritten_per_insert, 2),
            optf(x.index_bytes.map(|b| b as f64 / (1 << 20) as f64), 1),
            x.write_secs,
        ));
    }
    t
}

/// Writes `steps.csv`, `summary.json` and the charts into `dir`; returns the summary.
pub fn render(out: &RunOutcome, dir: &Path) -> Result<Summary> {
    write_csv(out, &dir.join("steps.csv"))?;
    let summary = summarize(out);
    let path = dir.join("summary.json");
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| LabError::Invalid(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| LabError::io(&path, e))?;
    crate::chart::draw_all(out, &summary, dir)?;
    Ok(summary)
}
