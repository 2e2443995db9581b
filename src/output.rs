//! Terminal output: progress bars (only on a terminal), aligned key/value listings, and the
//! search result writer.

use std::cell::RefCell;
use std::io::Write;

use anyhow::Result;
use drift_engine::Hit;
use indicatif::{ProgressBar, ProgressStyle};

/// How `drift search` prints its hits.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    /// `query,rank,id,distance` rows.
    Csv,
    /// A JSON array of objects with the same fields.
    Json,
}

/// A progress bar over bytes.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for `total` bytes, labelled `what`.
    pub fn bytes(what: &str, total: u64) -> Bar {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        Bar(pb)
    }

    /// Moves the bar to `pos`.
    pub fn set(&self, pos: u64) {
        self.0.set_position(pos);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A bar over the steps of a lab run (hidden when stderr is not a terminal).
pub fn step_bar(total: u64, name: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:40}] step {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix(name.to_string());
    pb
}

/// One bar per named phase, replaced as phases change.
#[derive(Default)]
pub struct PhaseBars {
    current: RefCell<Option<(String, ProgressBar)>>,
}

impl PhaseBars {
    /// Reports progress of `phase`.
    pub fn update(&self, phase: &str, done: u64, total: u64) {
        let mut cur = self.current.borrow_mut();
        if cur.as_ref().is_none_or(|(p, _)| p != phase) {
            if let Some((_, pb)) = cur.take() {
                pb.finish_and_clear();
            }
            let pb = ProgressBar::new(total);
            pb.set_style(
                ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_message(phase.to_string());
            *cur = Some((phase.to_string(), pb));
        }
        if let Some((_, pb)) = cur.as_ref() {
            pb.set_position(done);
        }
    }

    /// Clears the last bar.
    pub fn finish(&self) {
        if let Some((_, pb)) = self.current.borrow_mut().take() {
            pb.finish_and_clear();
        }
    }
}

/// Prints a JSON object's fields as aligned `key  value` lines.
pub fn key_values(v: &serde_json::Value) {
    let Some(obj) = v.as_object() else {
        println!("{v}");
        return;
    };
    let width = obj.keys().map(|k| k.len()).max().unwrap_or(0);
    for (k, v) in obj {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) if n.is_f64() => {
                format!("{:.4}", n.as_f64().unwrap_or(f64::NAN))
            }
            other => other.to_string(),
        };
        println!("{k:<width$}  {text}");
    }
}

/// Streams search results as CSV rows or one JSON array.
pub struct SearchWriter {
    format: OutputFormat,
    out: std::io::BufWriter<std::io::Stdout>,
    first: bool,
}

impl SearchWriter {
    /// Starts the output (writes the CSV header or the opening bracket).
    pub fn new(format: OutputFormat) -> SearchWriter {
        SearchWriter {
            format,
            out: std::io::BufWriter::new(std::io::stdout()),
            first: true,
        }
    }

    /// Writes the hits of query row `query` (ranks start at 1).
    pub fn write(&mut self, query: u64, hits: &[Hit]) -> Result<()> {
        for (i, h) in hits.iter().enumerate() {
            let rank = i + 1;
            match self.format {
                OutputFormat::Csv => {
                    if self.first {
                        writeln!(self.out, "query,rank,id,distance")?;
                    }
                    writeln!(self.out, "{query},{rank},{},{}", h.id, h.distance)?;
                }
                OutputFormat::Json => {
                    let mut obj = serde_json::json!({
                        "query": query, "rank": rank, "id": h.id, "distance": h.distance,
                    });
                    if let Some(p) = &h.payload {
                        obj["payload"] = serde_json::from_str(p).unwrap_or(serde_json::Value::Null);
                    }
                    write!(self.out, "{}{}", if self.first { "[" } else { "," }, obj)?;
                }
            }
            self.first = false;
        }
        Ok(())
    }

    /// Ends the output.
    pub fn finish(mut self) -> Result<()> {
        match self.format {
            OutputFormat::Csv if self.first => writeln!(self.out, "query,rank,id,distance")?,
            OutputFormat::Json => writeln!(self.out, "{}]", if self.first { "[" } else { "" })?,
            _ => {}
        }
        self.out.flush()?;
        Ok(())
    }
}
