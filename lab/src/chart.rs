//! PNG charts of a run, drawn with plotters, every system on the same axes (each chart's key in
//! a strip above its plot, never over data): recall over steps,
//! latency over steps, bucket count with split/merge activity, and recall against QPS.
//!
//! Text needs a TrueType font: the first of `$DRIFT_FONT` and the usual DejaVu/Liberation
//! locations that exists (`scripts/tools.sh` installs DejaVu where none is present).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{LabError, Result};
use crate::record::{RunOutcome, StepRecord};
use crate::summary::family;
use crate::summary::{Summary, SystemSummary};

const SIZE: (u32, u32) = (1000, 560);
const FONT: &str = "sans-serif";

/// Places a TrueType font is looked for.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a font once; the error names every place looked at.
fn ensure_font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut tried: Vec<PathBuf> = std::env::var_os("DRIFT_FONT")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        tried.extend(FONT_PATHS.iter().map(PathBuf::from));
        for p in &tried {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font for chart text (looked at $DRIFT_FONT and {}); install fonts-dejavu-core or set DRIFT_FONT",
            FONT_PATHS.join(", ")
        ))
    })
    .clone()
    .map_err(LabError::Invalid)
}

fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

fn err(path: &Path, e: impl std::fmt::Display) -> LabError {
    LabError::format(path, format!("cannot draw chart: {e}"))
}

/// Per system, the (step, value) points where `f` gives a value.
fn series(
    out: &RunOutcome,
    f: impl Fn(&StepRecord) -> Option<f64>,
) -> Vec<(String, Vec<(f64, f64)>)> {
    out.systems
        .iter()
        .map(|name| {
            let pts = out
                .records
                .iter()
                .filter(|r| &r.system == name)
                .filter_map(|r| f(r).map(|v| (r.step as f64, v)))
                .collect();
            (name.clone(), pts)
        })
        .filter(|(_, p): &(String, Vec<(f64, f64)>)| !p.is_empty())
        .collect()
}

/// A step axis label: steps are whole numbers.
fn step_label(x: &f64) -> String {
    format!("{}", x.round() as i64)
}

fn steps_range(out: &RunOutcome) -> std::ops::Range<f64> {
    let last = out.records.iter().map(|r| r.step).max().unwrap_or(1) as f64;
    0.0..last + 1.0
}

/// Draws the five charts into `dir`; returns their paths.
pub fn draw_all(out: &RunOutcome, summary: &Summary, dir: &Path) -> Result<Vec<PathBuf>> {
    ensure_font()?;
    let title = format!("{} via {}", out.name, out.via);
    let paths = vec![
        recall_chart(out, &title, &dir.join("recall.png"))?,
        latency_chart(out, &title, &dir.join("latency.png"))?,
        buckets_chart(out, &title, &dir.join("buckets.png"))?,
        recall_qps_chart(summary, &title, &dir.join("recall_qps.png"))?,
        cost_chart(summary, &title, &dir.join("cost.png"))?,
    ];
    Ok(paths)
}

fn recall_chart(out: &RunOutcome, title: &str, path: &Path) -> Result<PathBuf> {
    let data = series(out, |r| r.recall);
    let lo = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(1.0f64, f64::min);
    let lo = ((lo - 0.02) * 20.0).floor() / 20.0;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let area = titled_with_key(
        &root,
        &format!("recall@{} over steps: {title}", out.k),
        &line_keys(data.iter().map(|(n, _)| n.clone())),
        path,
    )?;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(steps_range(out), lo.max(0.0)..1.005)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&step_label)
        .y_desc(format!("recall@{}", out.k))
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, (_, pts)) in data.into_iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| err(path, e))?;
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))?;
    Ok(path.to_path_buf())
}

/// How a key entry is drawn.
#[derive(Clone, Copy)]
enum Mark {
    Line,
    Dashed,
    Dot,
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws `title` and a key (one entry per series, wrapped to the width) in a strip at the top
/// of `root` and returns the area below it for the plot: the key never covers data.
fn titled_with_key<'a>(
    root: &Area<'a>,
    title: &str,
    keys: &[(String, RGBColor, Mark)],
    path: &Path,
) -> Result<Area<'a>> {
    let width = root.dim_in_pixel().0 as i32;
    let (row_h, left) = (22, 70);
    // Lay the entries out first to know the strip's height.
    let mut at = Vec::with_capacity(keys.len());
    let (mut x, mut y) = (left, 0);
    for (label, _, _) in keys {
        let w = 40 + 8 * label.chars().count() as i32;
        if x + w > width - 10 && x > left {
            (x, y) = (left, y + row_h);
        }
        at.push((x, y));
        x += w;
    }
    let rows = if keys.is_empty() { 0 } else { y / row_h + 1 };
    let area = root.titled(title, (FONT, 22)).map_err(|e| err(path, e))?;
    let (strip, rest) = area.split_vertically(8 + rows * row_h);
    for ((label, c, mark), (x, y)) in keys.iter().zip(at) {
        let y = y + 12;
        let drawn = match mark {
            Mark::Line => strip.draw(&PathElement::new(
                vec![(x, y), (x + 24, y)],
                c.stroke_width(2),
            )),
            Mark::Dot => strip.draw(&Circle::new((x + 12, y), 5, c.filled())),
            Mark::Dashed => (0..24).step_by(8).try_for_each(|d| {
                strip.draw(&PathElement::new(
                    vec![(x + d, y), (x + d + 5, y)],
                    c.stroke_width(2),
                ))
            }),
        };
        drawn.map_err(|e| err(path, e))?;
        strip
            .draw(&Text::new(label.clone(), (x + 30, y - 8), (FONT, 15)))
            .map_err(|e| err(path, e))?;
    }
    Ok(rest)
}

/// Key entries of solid-line series, coloured in order.
fn line_keys(names: impl IntoIterator<Item = String>) -> Vec<(String, RGBColor, Mark)> {
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, colour(i), Mark::Line))
        .collect()
}

fn latency_chart(out: &RunOutcome, title: &str, path: &Path) -> Result<PathBuf> {
    let p50 = series(out, |r| r.p50_us);
    let p99 = series(out, |r| r.p99_us);
    let all = p50
        .iter()
        .chain(&p99)
        .flat_map(|(_, p)| p.iter().map(|x| x.1));
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() {
        ((lo / 2.0).max(0.1), hi * 2.0)
    } else {
        (1.0, 10.0)
    };
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let area = titled_with_key(
        &root,
        &format!("search latency (p50 solid, p99 dashed): {title}"),
        &line_keys(p50.iter().map(|(n, _)| n.clone())),
        path,
    )?;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(steps_range(out), (lo..hi).log_scale())
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&step_label)
        .y_desc("microseconds per query")
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, (_, pts)) in p50.into_iter().enumerate() {
        chart
            .draw_series(LineSeries::new(pts, colour(i).stroke_width(2)))
            .map_err(|e| err(path, e))?;
    }
    for (i, (_, pts)) in p99.into_iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(DashedLineSeries::new(pts, 6, 4, c.stroke_width(1)))
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))?;
    Ok(path.to_path_buf())
}

/// Drops series identical to an earlier one (systems that search the same index).
fn distinct(s: Vec<(String, Vec<(f64, f64)>)>) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (name, pts) in s {
        if !out.iter().any(|(_, p)| *p == pts) {
            out.push((name, pts));
        }
    }
    out
}

fn buckets_chart(out: &RunOutcome, title: &str, path: &Path) -> Result<PathBuf> {
    let buckets = series(out, |r| r.buckets.map(|b| b as f64));
    let keep: Vec<String> = distinct(buckets.clone()).into_iter().map(|s| s.0).collect();
    let only = |s: Vec<(String, Vec<(f64, f64)>)>| -> Vec<(String, Vec<(f64, f64)>)> {
        s.into_iter().filter(|(n, _)| keep.contains(n)).collect()
    };
    let buckets = only(buckets);
    let splits = only(series(out, |r| r.splits.map(|b| b as f64)));
    let merges = only(series(out, |r| r.merges.map(|b| b as f64)));
    let names: Vec<&String> = out.systems.iter().collect();
    let colour_of = |name: &str| colour(names.iter().position(|n| *n == name).unwrap_or(0));
    let root = BitMapBackend::new(path, (SIZE.0, SIZE.1 + 200)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let keys: Vec<(String, RGBColor, Mark)> = buckets
        .iter()
        .map(|(n, _)| (n.clone(), colour_of(n), Mark::Line))
        .collect();
    let area = titled_with_key(&root, &format!("L1 buckets: {title}"), &keys, path)?;
    let half = area.dim_in_pixel().1 / 2;
    let (top, bottom) = area.split_vertically(half);
    let max_of = |s: &[(String, Vec<(f64, f64)>)]| {
        s.iter()
            .flat_map(|(_, p)| p.iter().map(|x| x.1))
            .fold(1.0f64, f64::max)
    };
    {
        let mut chart = ChartBuilder::on(&top)
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(steps_range(out), 0.0..max_of(&buckets) * 1.1)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_label_formatter(&step_label)
            .y_desc("buckets")
            .draw()
            .map_err(|e| err(path, e))?;
        for (name, pts) in buckets {
            chart
                .draw_series(LineSeries::new(pts, colour_of(&name).stroke_width(2)))
                .map_err(|e| err(path, e))?;
        }
    }
    let mut chart = ChartBuilder::on(&bottom)
        .caption("splits (solid) and merges (dashed) so far", (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            steps_range(out),
            0.0..max_of(&splits).max(max_of(&merges)) * 1.1,
        )
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&step_label)
        .y_desc("count")
        .draw()
        .map_err(|e| err(path, e))?;
    for (name, pts) in splits {
        chart
            .draw_series(LineSeries::new(pts, colour_of(&name).stroke_width(2)))
            .map_err(|e| err(path, e))?;
    }
    for (name, pts) in merges {
        chart
            .draw_series(DashedLineSeries::new(
                pts,
                6,
                4,
                colour_of(&name).stroke_width(2),
            ))
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))?;
    Ok(path.to_path_buf())
}

/// Mean recall against mean QPS, one curve per family of systems (Drift and its sweep points,
/// each peer and its knob values; see [`family`]), the points of a curve joined in recall
/// order (a knob that buys recall with speed traces its trade-off).
/// Names are in the legend, never on the data.
fn recall_qps_chart(summary: &Summary, title: &str, path: &Path) -> Result<PathBuf> {
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for s in &summary.systems {
        let p = (s.mean_qps.max(1.0), s.mean_recall);
        let fam = family(&s.system);
        match curves.iter_mut().find(|(f, _)| f == fam) {
            Some((_, pts)) => pts.push(p),
            None => curves.push((fam.to_string(), vec![p])),
        }
    }
    for (_, pts) in &mut curves {
        pts.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.total_cmp(&a.0)));
    }
    let all = curves.iter().flat_map(|(_, p)| p.iter());
    let (qlo, qhi) = all.clone().fold((f64::INFINITY, 1.0f64), |(a, b), p| {
        (a.min(p.0), b.max(p.0))
    });
    let rlo = all.map(|p| p.1).fold(1.0f64, f64::min);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let keys: Vec<(String, RGBColor, Mark)> = curves
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), colour(i), Mark::Dot))
        .collect();
    let area = titled_with_key(&root, &format!("mean recall vs QPS: {title}"), &keys, path)?;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            ((qlo / 2.0).max(0.5)..qhi * 2.0).log_scale(),
            ((rlo - 0.05).max(0.0))..1.01,
        )
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("queries per second (one thread, log scale)")
        .x_label_formatter(&|q| format!("{q:.0}"))
        .y_desc(format!("mean recall@{}", summary.k))
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, (_, pts)) in curves.into_iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| err(path, e))?;
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 5, c.filled())))
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))?;
    Ok(path.to_path_buf())
}

/// What each system cost: the bytes its index held at the end and the seconds its write steps
/// took (build and ingest, maintenance included for Drift), one horizontal bar per system,
/// names on the axis beside the bars.
fn cost_chart(summary: &Summary, title: &str, path: &Path) -> Result<PathBuf> {
    let systems: Vec<&SystemSummary> = summary.systems.iter().collect();
    let n = systems.len().max(1);
    let names: Vec<String> = systems.iter().map(|s| s.system.clone()).collect();
    let families: Vec<String> = {
        let mut f: Vec<String> = Vec::new();
        for s in &systems {
            let fam = family(&s.system).to_string();
            if !f.contains(&fam) {
                f.push(fam);
            }
        }
        f
    };
    let colour_of = |name: &str| {
        let fam = family(name);
        colour(families.iter().position(|f| f == fam).unwrap_or(0))
    };
    let height = (SIZE.1).max(120 + 26 * n as u32);
    let root = BitMapBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let root = root
        .titled(&format!("cost per system: {title}"), (FONT, 22))
        .map_err(|e| err(path, e))?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    fn mib(s: &SystemSummary) -> f64 {
        s.index_bytes.map_or(0.0, |b| b as f64 / (1 << 20) as f64)
    }
    fn write_secs(s: &SystemSummary) -> f64 {
        s.write_secs
    }
    type Measure = fn(&SystemSummary) -> f64;
    let panels: [(&str, Measure); 2] = [
        ("index MiB at the end", mib),
        ("seconds in write steps", write_secs),
    ];
    for ((label, value), area) in panels.into_iter().zip([left, right]) {
        let max = systems.iter().map(|s| value(s)).fold(0.0f64, f64::max);
        let label_names = names.clone();
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(190)
            .build_cartesian_2d(0.0..(max * 1.1).max(1e-9), 0.0..n as f64)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&move |y| {
                // A label at each bar's middle (y = i + 0.5), none elsewhere.
                let i = (*y - 0.5).round();
                if (*y - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    label_names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(label)
            .draw()
            .map_err(|e| err(path, e))?;
        chart
            .draw_series(systems.iter().enumerate().map(|(i, s)| {
                let c = colour_of(&s.system);
                Rectangle::new(
                    [(0.0, i as f64 + 0.15), (value(s), i as f64 + 0.85)],
                    c.filled(),
                )
            }))
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))?;
    Ok(path.to_path_buf())
}

/// The streaming case over elapsed time: recall, search latency (p50 solid, p99 dashed) and
/// searches and inserts per second, with maintenance marked as vertical lines (splits,
/// merges, flushes) in every panel.
pub fn stream_chart(r: &crate::stream::StreamReport, path: &Path) -> Result<PathBuf> {
    ensure_font()?;
    let w = &r.windows;
    let t_max = w.last().map_or(1.0, |x| x.t).max(1e-3);
    let root = BitMapBackend::new(path, (SIZE.0, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let (split_c, merge_c, flush_c) = (colour(1), colour(4), RGBColor(40, 40, 40));
    let keys = [
        ("recall / p50 / searches per s", colour(0), Mark::Line),
        ("p99", colour(0), Mark::Dashed),
        ("inserts per s", colour(2), Mark::Line),
        ("split", split_c, Mark::Line),
        ("merge", merge_c, Mark::Line),
        ("flush", flush_c, Mark::Dashed),
    ]
    .map(|(l, c, m)| (l.to_string(), c, m));
    let body = titled_with_key(
        &root,
        &format!(
            "streaming: {} rows/s asked, {:.0} reached, searches without pause",
            r.rate, r.achieved_rate
        ),
        &keys,
        path,
    )?;
    let panels = body.split_evenly((3, 1));
    let events: Vec<(f64, RGBColor, bool)> = w
        .iter()
        .flat_map(|x| {
            let mut v = Vec::new();
            if x.merges > 0 {
                v.push((x.t, merge_c, false));
            }
            if x.splits > 0 {
                v.push((x.t, split_c, false));
            }
            if x.flushes > 0 {
                v.push((x.t, flush_c, true));
            }
            v
        })
        .collect();
    let secs = |v: &f64| format!("{v:.0}");
    // Recall.
    {
        let pts: Vec<(f64, f64)> = w
            .iter()
            .filter_map(|x| x.recall.map(|v| (x.t, v)))
            .collect();
        let lo = pts.iter().map(|p| p.1).fold(1.0f64, f64::min);
        let lo = (((lo - 0.02) * 20.0).floor() / 20.0).max(0.0);
        let mut chart = ChartBuilder::on(&panels[0])
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, lo..1.005)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_label_formatter(&secs)
            .y_desc(format!("recall@{}", r.k))
            .draw()
            .map_err(|e| err(path, e))?;
        draw_events(&mut chart, &events, lo, 1.005, path)?;
        chart
            .draw_series(LineSeries::new(pts, colour(0).stroke_width(2)))
            .map_err(|e| err(path, e))?;
    }
    // Latency.
    {
        let p50: Vec<(f64, f64)> = w.iter().map(|x| (x.t, x.p50_us.max(0.1))).collect();
        let p99: Vec<(f64, f64)> = w.iter().map(|x| (x.t, x.p99_us.max(0.1))).collect();
        let (lo, hi) = p50
            .iter()
            .chain(&p99)
            .fold((f64::INFINITY, 0.0f64), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let (lo, hi) = if lo.is_finite() {
            (lo / 2.0, hi * 2.0)
        } else {
            (1.0, 10.0)
        };
        let mut chart = ChartBuilder::on(&panels[1])
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, (lo..hi).log_scale())
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_label_formatter(&secs)
            .y_desc("µs per search")
            .draw()
            .map_err(|e| err(path, e))?;
        draw_events(&mut chart, &events, lo, hi, path)?;
        chart
            .draw_series(LineSeries::new(p50, colour(0).stroke_width(2)))
            .map_err(|e| err(path, e))?;
        chart
            .draw_series(DashedLineSeries::new(p99, 6, 4, colour(0).stroke_width(1)))
            .map_err(|e| err(path, e))?;
    }
    // Rates.
    {
        let qps: Vec<(f64, f64)> = w.iter().map(|x| (x.t, x.qps)).collect();
        let ins: Vec<(f64, f64)> = w.iter().map(|x| (x.t, x.insert_rate)).collect();
        let hi = qps.iter().chain(&ins).map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&panels[2])
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..hi)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_label_formatter(&secs)
            .x_desc("seconds since the stream started")
            .y_desc("per second")
            .draw()
            .map_err(|e| err(path, e))?;
        draw_events(&mut chart, &events, 0.0, hi, path)?;
        chart
            .draw_series(LineSeries::new(qps, colour(0).stroke_width(2)))
            .map_err(|e| err(path, e))?;
        chart
            .draw_series(LineSeries::new(ins, colour(2).stroke_width(2)))
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))?;
    Ok(path.to_path_buf())
}

/// Vertical lines at `events` (time, colour, dashed) across `lo..hi`, drawn under the data.
fn draw_events<'a, DB: DrawingBackend + 'a, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    events: &[(f64, RGBColor, bool)],
    lo: f64,
    hi: f64,
    path: &Path,
) -> Result<()>
where
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    for &(t, c, dashed) in events {
        let line = vec![(t, lo), (t, hi)];
        if dashed {
            chart.draw_series(DashedLineSeries::new(line, 5, 4, c.stroke_width(2)))
        } else {
            chart.draw_series(std::iter::once(PathElement::new(
                line,
                c.mix(0.6).stroke_width(1),
            )))
        }
        .map_err(|e| err(path, e))?;
    }
    Ok(())
}
