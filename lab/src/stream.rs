//! The streaming case: inserts at a fixed rate while searches run without pause, measured
//! over elapsed time (VectorDBBench's streaming case is the model).
//!
//! ```text
//! writer thread:   initial rows (flushed, before the clock) ─▶ then `rate` rows/s in batches
//! search thread:   query after query, each timed; every window (say 1 s) closes with the
//!                  window's q/s, p50/p99, the collection's stats (splits, merges, flushes)
//! afterwards:      the sampled answers scored against the exact top-k of the rows that had
//!                  been acknowledged when each search began
//! ```
//! Everything goes through the public traits ([`Catalog`], [`VectorWrite`]): the run measures
//! what a client of a collection would see, background maintenance included. A row
//! acknowledged during a search may or may not be seen by it; the truth counts only rows
//! acknowledged before, so a fresh row in an answer can only lower the measured recall.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drift_engine::distance::Distance;
use drift_engine::{Catalog, CollectionStats, IndexSettings, Metric, Record};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::truth::{exact_top, prepare, recall_with_ties};
use crate::vecfile::{read_base_and_queries, split_rows};

/// What to stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Base vectors (`FILE@START..END` for a row range), inserted in file order.
    pub base: PathBuf,
    /// Query vectors, asked in turn.
    pub queries: PathBuf,
    /// Metric of the collection.
    pub metric: Metric,
    /// Neighbours per search.
    pub k: usize,
    /// Rows loaded and flushed before the clock starts.
    pub initial_rows: usize,
    /// Rows inserted per second once the clock runs.
    pub rate: f64,
    /// Rows per insert call.
    pub batch: usize,
    /// Length of one measurement window, seconds.
    pub window_secs: f64,
    /// Searches per window kept for scoring against the exact answer.
    pub scored_per_window: usize,
    /// Index settings (default: the engine's, background maintenance on).
    pub settings: Option<IndexSettings>,
}

/// One measurement window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamWindow {
    /// End of the window, seconds since the clock started.
    pub t: f64,
    /// Rows acknowledged at the end of the window.
    pub rows: usize,
    /// Rows inserted per second during the window.
    pub insert_rate: f64,
    /// Searches answered per second during the window.
    pub qps: f64,
    /// Median search latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile search latency, microseconds.
    pub p99_us: f64,
    /// Mean recall@k of the window's scored searches (None if none was scored).
    pub recall: Option<f64>,
    /// Searches scored.
    pub scored: usize,
    /// Buckets at the end of the window.
    pub buckets: usize,
    /// Rows waiting in memtables (searched exactly) at the end of the window.
    pub memtable_rows: usize,
    /// Splits, merges, flushes and compactions during the window.
    pub splits: u64,
    /// See `splits`.
    pub merges: u64,
    /// See `splits`.
    pub flushes: u64,
    /// See `splits`.
    pub compactions: u64,
    /// Milliseconds the recall monitor spent re-running sampled searches exactly (and on the
    /// refits they triggered) during the window.
    pub monitor_ms: f64,
}

/// What a streaming run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamReport {
    /// Rows loaded before the clock.
    pub initial_rows: usize,
    /// Rows inserted while the clock ran.
    pub streamed_rows: usize,
    /// Insert rate asked for, rows per second.
    pub rate: f64,
    /// Insert rate reached over the whole stream.
    pub achieved_rate: f64,
    /// Seconds from the first streamed insert to the last window.
    pub seconds: f64,
    /// Searches answered.
    pub searches: u64,
    /// Mean recall@k over every scored search.
    pub mean_recall: f64,
    /// Lowest window recall.
    pub min_window_recall: f64,
    /// Search latency over the whole run, microseconds.
    pub p50_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
    /// Neighbours per search.
    pub k: usize,
    /// The windows, in time order.
    pub windows: Vec<StreamWindow>,
}

/// One search kept for scoring.
struct Sample {
    window: usize,
    query: usize,
    visible: usize,
    ids: Vec<u64>,
}

/// Progress callback: phase, done, total.
pub type Progress<'a> = &'a dyn Fn(&str, u64, u64);

/// Runs the streaming case on collection `name` of `catalog` (replaced if it exists).
pub fn run(
    catalog: &dyn Catalog,
    name: &str,
    cfg: &StreamConfig,
    progress: Progress,
) -> Result<StreamReport> {
    if !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
        return Err(LabError::Invalid(format!(
            "insert rate must be a positive number of rows per second, got {}",
            cfg.rate
        )));
    }
    if !(cfg.window_secs > 0.0 && cfg.window_secs.is_finite()) || cfg.batch == 0 || cfg.k == 0 {
        return Err(LabError::Invalid(
            "window, batch and k must be positive".into(),
        ));
    }
    let (_, base_rows) = split_rows(&cfg.base)?;
    let (base, queries, dim) = read_base_and_queries(&cfg.base, &cfg.queries)?;
    let rows = base.len() / dim;
    let nq = queries.len() / dim;
    if cfg.initial_rows >= rows || nq == 0 {
        return Err(LabError::Invalid(format!(
            "the stream needs queries and more base rows ({rows}) than initial rows ({})",
            cfg.initial_rows
        )));
    }
    let first_id = base_rows.start;
    let record = |i: usize| Record::new(first_id + i as u64, base[i * dim..(i + 1) * dim].to_vec());

    let coll = crate::fresh_collection(catalog, name, dim, cfg.metric, cfg.settings.as_ref())?;
    for start in (0..cfg.initial_rows).step_by(cfg.batch) {
        let end = (start + cfg.batch).min(cfg.initial_rows);
        coll.upsert((start..end).map(record).collect())?;
        progress("initial load", end as u64, cfg.initial_rows as u64);
    }
    coll.flush()?;

    let acked = AtomicUsize::new(cfg.initial_rows);
    let done = AtomicBool::new(false);
    let params = coll.search_params(cfg.k);
    let window = Duration::from_secs_f64(cfg.window_secs);
    let streamed = rows - cfg.initial_rows;
    let expected = Duration::from_secs_f64(streamed as f64 / cfg.rate);
    let mut windows = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut all = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)
        .map_err(|e| LabError::Invalid(e.to_string()))?;
    let start = Instant::now();
    let stream_result = std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(|| -> Result<()> {
            let out = (|| {
                for (b, from) in (cfg.initial_rows..rows).step_by(cfg.batch).enumerate() {
                    let due = start + Duration::from_secs_f64((b * cfg.batch) as f64 / cfg.rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let to = (from + cfg.batch).min(rows);
                    coll.upsert((from..to).map(record).collect())?;
                    acked.store(to, Ordering::Release);
                }
                Ok(())
            })();
            done.store(true, Ordering::Release);
            out
        });
        let mut hist = all.clone();
        let mut before = coll.stats()?;
        let (mut w_start, mut w_rows, mut w_searches) = (start, cfg.initial_rows, 0u64);
        let mut i = 0usize;
        loop {
            let qi = i % nq;
            i += 1;
            let visible = acked.load(Ordering::Acquire);
            let t = Instant::now();
            let hits = coll.search(&queries[qi * dim..(qi + 1) * dim], &params)?;
            let ns = t.elapsed().as_nanos().max(1) as u64;
            hist.record(ns).ok();
            all.record(ns).ok();
            w_searches += 1;
            if (w_searches as usize) <= cfg.scored_per_window {
                samples.push(Sample {
                    window: windows.len(),
                    query: qi,
                    visible,
                    ids: hits.iter().map(|h| h.id).collect(),
                });
            }
            let now = Instant::now();
            let finished = done.load(Ordering::Acquire);
            if now.duration_since(w_start) >= window || finished {
                let after = coll.stats()?;
                let secs = now.duration_since(w_start).as_secs_f64().max(1e-9);
                let rows_now = acked.load(Ordering::Acquire);
                windows.push(close_window(
                    now.duration_since(start).as_secs_f64(),
                    rows_now,
                    (rows_now - w_rows) as f64 / secs,
                    w_searches as f64 / secs,
                    &hist,
                    &before,
                    &after,
                ));
                progress(
                    "streaming",
                    now.duration_since(start).as_millis() as u64,
                    expected.as_millis() as u64,
                );
                hist.reset();
                before = after;
                (w_start, w_rows, w_searches) = (now, rows_now, 0);
                if finished {
                    break;
                }
            }
        }
        writer
            .join()
            .map_err(|_| LabError::Invalid("the insert thread panicked".into()))?
    });
    stream_result?;
    let seconds = start.elapsed().as_secs_f64();

    // Score the samples: exact top-k over the rows visible when each search began.
    let dist = Distance::for_metric(cfg.metric);
    let pb = prepare(cfg.metric, &base, dim);
    let pq = prepare(cfg.metric, &queries, dim);
    let ids: Vec<u64> = (first_id..first_id + rows as u64).collect();
    let scores = score(&samples, &dist, &pb, &pq, &ids, dim, cfg.k, progress);
    let mut sums = vec![(0.0f64, 0usize); windows.len()];
    for (s, r) in samples.iter().zip(&scores) {
        sums[s.window].0 += r;
        sums[s.window].1 += 1;
    }
    for (w, (sum, n)) in windows.iter_mut().zip(sums) {
        w.scored = n;
        w.recall = (n > 0).then(|| sum / n as f64);
    }
    let mean_recall = if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    Ok(StreamReport {
        initial_rows: cfg.initial_rows,
        streamed_rows: streamed,
        rate: cfg.rate,
        achieved_rate: streamed as f64 / seconds,
        seconds,
        searches: all.len(),
        mean_recall,
        min_window_recall: windows.iter().filter_map(|w| w.recall).fold(1.0, f64::min),
        p50_us: all.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: all.value_at_quantile(0.99) as f64 / 1e3,
        k: cfg.k,
        windows,
    })
}

fn close_window(
    t: f64,
    rows: usize,
    insert_rate: f64,
    qps: f64,
    hist: &Histogram<u64>,
    before: &CollectionStats,
    after: &CollectionStats,
) -> StreamWindow {
    let (b, a) = (&before.maintenance, &after.maintenance);
    StreamWindow {
        t,
        rows,
        insert_rate,
        qps,
        p50_us: hist.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
        recall: None,
        scored: 0,
        buckets: after.buckets,
        memtable_rows: after.active_rows,
        splits: a.splits.saturating_sub(b.splits),
        merges: a.merges.saturating_sub(b.merges),
        flushes: after.flushes.saturating_sub(before.flushes),
        compactions: a.compactions.saturating_sub(b.compactions),
        monitor_ms: (after.recall.monitor_ms - before.recall.monitor_ms).max(0.0),
    }
}

/// Recall of each sample, scored on every core.
#[allow(clippy::too_many_arguments)]
fn score(
    samples: &[Sample],
    dist: &Distance,
    base: &[f32],
    queries: &[f32],
    ids: &[u64],
    dim: usize,
    k: usize,
    progress: Progress,
) -> Vec<f64> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per = samples.len().div_ceil(threads).max(1);
    let done = AtomicUsize::new(0);
    let mut out = vec![0.0; samples.len()];
    std::thread::scope(|s| {
        let mut scorers = Vec::new();
        for (chunk, slots) in samples.chunks(per).zip(out.chunks_mut(per)) {
            let done = &done;
            scorers.push(s.spawn(move || {
                for (x, slot) in chunk.iter().zip(slots) {
                    let q = &queries[x.query * dim..(x.query + 1) * dim];
                    let visible = &base[..x.visible * dim];
                    let truth = exact_top(dist, q, visible, ids, dim, k);
                    *slot = recall_with_ties(&truth, &x.ids, k, |id| {
                        let r = id.checked_sub(ids[0])? as usize;
                        (r < x.visible).then(|| dist.eval(q, &base[r * dim..(r + 1) * dim]))
                    });
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // Progress from this thread while the scorers work (a scorer that panics ends the
        // wait too; the scope then passes its panic on).
        while !scorers.iter().all(|h| h.is_finished()) {
            progress(
                "scoring",
                done.load(Ordering::Relaxed) as u64,
                samples.len() as u64,
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    out
}

/// Writes `stream.json`, `stream.csv` (one row per window) and `stream.png` into `dir`.
pub fn write(dir: &Path, report: &StreamReport, command: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let json = dir.join("stream.json");
    let mut v = serde_json::to_value(report).map_err(|e| LabError::Invalid(e.to_string()))?;
    v["command"] = command.into();
    std::fs::write(&json, serde_json::to_string_pretty(&v).unwrap_or_default())
        .map_err(|e| LabError::io(&json, e))?;
    let csv = dir.join("stream.csv");
    let mut text = String::from(
        "t_s,rows,insert_rate,qps,p50_us,p99_us,recall,scored,buckets,memtable_rows,splits,merges,flushes,compactions,monitor_ms\n",
    );
    for w in &report.windows {
        text.push_str(&format!(
            "{:.3},{},{:.1},{:.1},{:.1},{:.1},{},{},{},{},{},{},{},{},{:.1}\n",
            w.t,
            w.rows,
            w.insert_rate,
            w.qps,
            w.p50_us,
            w.p99_us,
            w.recall.map_or(String::new(), |r| format!("{r:.4}")),
            w.scored,
            w.buckets,
            w.memtable_rows,
            w.splits,
            w.merges,
            w.flushes,
            w.compactions,
            w.monitor_ms
        ));
    }
    std::fs::write(&csv, text).map_err(|e| LabError::io(&csv, e))?;
    let png = crate::chart::stream_chart(report, &dir.join("stream.png"))?;
    Ok(vec![json, csv, png])
}

/// The report as a short table (Markdown).
pub fn markdown(r: &StreamReport) -> String {
    let splits: u64 = r.windows.iter().map(|w| w.splits).sum();
    let merges: u64 = r.windows.iter().map(|w| w.merges).sum();
    let flushes: u64 = r.windows.iter().map(|w| w.flushes).sum();
    format!(
        "| initial rows | streamed rows | rate asked / reached (rows/s) | seconds | searches | q/s | p50 / p99 µs | mean recall@{} | lowest window | splits / merges / flushes |\n\
         |---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {:.0} / {:.0} | {:.1} | {} | {:.0} | {:.0} / {:.0} | {:.4} | {:.4} | {splits} / {merges} / {flushes} |\n",
        r.k,
        r.initial_rows,
        r.streamed_rows,
        r.rate,
        r.achieved_rate,
        r.seconds,
        r.searches,
        r.searches as f64 / r.seconds.max(1e-9),
        r.p50_us,
        r.p99_us,
        r.mean_recall,
        r.min_window_recall,
    )
}
