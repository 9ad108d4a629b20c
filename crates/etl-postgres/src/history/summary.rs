//! What a run did, summed over its steps, in one line: for `etl history`, the web page.

use serde::Serialize;

use super::StepRow;

/// What a run did, summed over its steps.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub steps: usize,
    pub rows_written: u64,
    pub rows_deleted: u64,
    pub keys_failed: u64,
    pub texts_embedded: u64,
    pub cache_hits: u64,
    pub graph_writes: u64,
    pub grist_requests: u64,
    pub grist_bytes: u64,
}

impl RunSummary {
    pub fn of(steps: &[&StepRow]) -> Self {
        let mut s = RunSummary {
            steps: steps.len(),
            ..RunSummary::default()
        };
        for step in steps {
            let (written, deleted) = rows_of(step);
            s.rows_written += written;
            s.rows_deleted += deleted;
            s.keys_failed += step.keys_failed as u64;
            s.texts_embedded += counter(step, "texts_embedded");
            s.cache_hits += counter(step, "embedding_cache_hits");
            s.graph_writes += graph_writes(step);
            s.grist_requests += counter(step, "grist_requests");
            s.grist_bytes += counter(step, "grist_bytes");
        }
        s
    }

    /// One short line: what changed, what it cost.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{} written", plural(self.rows_written, "row"))];
        if self.rows_deleted > 0 {
            parts.push(format!("{} deleted", self.rows_deleted));
        }
        if self.texts_embedded > 0 {
            parts.push(format!("{} embedded", plural(self.texts_embedded, "text")));
        }
        if self.cache_hits > 0 {
            parts.push(format!(
                "{} found in the embedding cache",
                plural(self.cache_hits, "text")
            ));
        }
        if self.graph_writes > 0 {
            parts.push(plural(self.graph_writes, "graph write"));
        }
        if self.grist_requests > 0 {
            parts.push(format!(
                "{} ({})",
                plural(self.grist_requests, "Grist request"),
                bytes(self.grist_bytes)
            ));
        }
        if self.keys_failed > 0 {
            parts.push(format!("{} failed", plural(self.keys_failed, "key")));
        }
        parts.join(", ")
    }
}

/// A step's counter, 0 when absent.
pub fn counter(step: &StepRow, name: &str) -> u64 {
    step.counters
        .get(name)
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

/// Rows a step inserted or updated, and rows it deleted, over its tables.
pub fn rows_of(step: &StepRow) -> (u64, u64) {
    let mut written = 0;
    let mut deleted = 0;
    if let Some(tables) = step.tables.as_object() {
        for c in tables.values() {
            let n = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            written += n("inserted") + n("updated");
            deleted += n("deleted");
        }
    }
    (written, deleted)
}

/// Nodes and edges a step wrote to or removed from the graph.
pub fn graph_writes(step: &StepRow) -> u64 {
    [
        "graph_nodes_written",
        "graph_nodes_deleted",
        "graph_edges_written",
        "graph_edges_deleted",
    ]
    .iter()
    .map(|c| counter(step, c))
    .sum()
}

/// `1 text`, `2 texts`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

pub fn millis(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms >= 60_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        Some(ms) => format!("{:.2}s", ms as f64 / 1000.0),
        None => "-".into(),
    }
}
