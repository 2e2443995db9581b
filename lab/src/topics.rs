//! Topic streams from real vectors: the rows of a vector file grouped into topics (k-means
//! over the vectors), written in topic order, with a Big-ANN runbook that inserts one topic
//! at a time and, from the middle of the stream on, deletes half of the topic that arrived
//! half a stream earlier. This is how embeddings of a real corpus drift: new subjects arrive
//! and old ones fade.

use std::fmt::Write as _;
use std::path::Path;

use drift_engine::kmeans::kmeans;

use crate::error::{LabError, Result};
use crate::vecfile::{read_all, write_fbin};

/// What [`write`] produced.
#[derive(Debug, Clone)]
pub struct TopicStream {
    /// Rows per topic, in stream order.
    pub sizes: Vec<usize>,
    /// Dimension.
    pub dim: usize,
    /// Queries written.
    pub queries: usize,
}

/// Reads `base` and `queries` (vector files, `FILE@START..END` allowed), groups the base into
/// `topics` topics, and writes `base.fbin` (topic order), `queries.fbin` and `runbook.yaml`
/// (data set key `name`) into `out`.
pub fn write(
    base: &Path,
    queries: &Path,
    topics: usize,
    seed: u64,
    name: &str,
    out: &Path,
) -> Result<TopicStream> {
    if topics < 2 {
        return Err(LabError::Invalid(
            "a topic stream needs at least 2 topics".into(),
        ));
    }
    let (data, dim) = read_all(base)?;
    let (q, qdim) = read_all(queries)?;
    if dim != qdim {
        return Err(LabError::Invalid(format!(
            "base has dimension {dim} but queries have {qdim}"
        )));
    }
    let rows = data.len() / dim;
    if rows < topics {
        return Err(LabError::Invalid(format!(
            "{rows} rows cannot form {topics} topics"
        )));
    }
    let km = kmeans(&data, dim, topics, 25, seed);
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by_key(|&r| km.assignment[r]);
    let mut sorted = Vec::with_capacity(data.len());
    for &r in &order {
        sorted.extend_from_slice(&data[r * dim..(r + 1) * dim]);
    }
    let mut sizes = vec![0usize; topics];
    for &a in &km.assignment {
        sizes[a as usize] += 1;
    }
    sizes.retain(|&s| s > 0);
    std::fs::create_dir_all(out).map_err(|e| LabError::io(out, e))?;
    write_fbin(&out.join("base.fbin"), &sorted, dim)?;
    write_fbin(&out.join("queries.fbin"), &q, dim)?;
    let book = runbook(name, &sizes);
    let path = out.join("runbook.yaml");
    std::fs::write(&path, book).map_err(|e| LabError::io(&path, e))?;
    Ok(TopicStream {
        sizes,
        dim,
        queries: q.len() / dim,
    })
}

/// The runbook of a topic stream with these topic sizes: insert topic t, then (once half the
/// topics are in) delete the first half of topic `t - n/2`, then search.
pub fn runbook(name: &str, sizes: &[usize]) -> String {
    let total: usize = sizes.iter().sum();
    let mut starts = Vec::with_capacity(sizes.len());
    let mut at = 0;
    for s in sizes {
        starts.push(at);
        at += s;
    }
    let half = sizes.len() / 2;
    let mut s = format!(
        "# Topic stream: {} topics in order; from topic {half} on, each arrival deletes half of\n\
         # the topic that arrived {half} topics earlier. A search follows every change.\n\
         {name}:\n  max_pts: {total}\n",
        sizes.len()
    );
    let mut step = 1;
    let mut op = |s: &mut String, text: String| {
        let _ = writeln!(s, "  {step}: {{ {text} }}");
        step += 1;
    };
    for (t, size) in sizes.iter().enumerate() {
        op(
            &mut s,
            format!(
                "operation: insert, start: {}, end: {}",
                starts[t],
                starts[t] + size
            ),
        );
        if t >= half {
            let old = t - half;
            op(
                &mut s,
                format!(
                    "operation: delete, start: {}, end: {}",
                    starts[old],
                    starts[old] + sizes[old] / 2
                ),
            );
        }
        op(&mut s, "operation: search".into());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::Runbook;

    #[test]
    fn topic_runbook_parses_and_deletes_half_of_old_topics() {
        let text = runbook("t", &[10, 20, 30, 40]);
        let book = Runbook::parse(&text, Path::new("t.yaml"), "t").unwrap();
        assert_eq!(book.max_pts, 100);
        let names: Vec<_> = book.steps.iter().map(|o| o.name()).collect();
        assert_eq!(
            names,
            [
                "insert", "search", "insert", "search", "insert", "delete", "search", "insert",
                "delete", "search"
            ]
        );
        assert!(
            text.contains("operation: delete, start: 10, end: 20"),
            "{text}"
        );
    }
}
