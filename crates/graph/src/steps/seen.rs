//! What a graph sink saw of the graph at the end of its last complete run, and the cheap drift
//! check it allows.
//!
//! At the end of a run that wrote anything, a sink counts, in the graph, the nodes of each label
//! (the edges of each type) it has written, and remembers the counts as the step's memo. The next
//! run's drift check counts those labels (types) again: one count per name, no scan of the
//! tables. Any difference (a graph emptied by a restart, nodes another writer removed or added)
//! is drift, and the step reprocesses every key. Without a memo (the first run, or after a run
//! that did not complete), the sink compares the graph with its tables in full instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use etl_core::runner::DRIFT_REPAIRED;
use etl_core::{StepContext, StepError};

use super::connection::GraphConnection;
use super::elements::Elements;
use crate::cypher::check_name;
use crate::GraphClient;

/// The memo's shape (JSON).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    v: u32,
    counts: BTreeMap<String, i64>,
}

const SEEN_VERSION: u32 = 1;

/// A sink's cheap drift check: `Some(drifted)` when the step has a memo of the counts it saw,
/// `None` when it has none (the sink then compares the graph with its tables in full).
pub async fn drifted(
    connection: &GraphConnection,
    ctx: &StepContext,
    elements: Elements,
) -> Result<Option<bool>, StepError> {
    let Some(memo) = &ctx.memo else {
        return Ok(None);
    };
    let graph = connection.client().await?;
    Ok(unchanged(graph, elements, memo).await?.map(|same| !same))
}

/// At the end of a sink's run: counts the graph again when the run changed it (or when there
/// is no memo yet, or drift was repaired), and remembers the counts.
pub async fn after_run(
    connection: &GraphConnection,
    ctx: &StepContext,
    elements: Elements,
    keys_processed: u64,
) -> Result<(), StepError> {
    let repaired = ctx.counters.snapshot().contains_key(DRIFT_REPAIRED);
    if keys_processed > 0 || repaired || ctx.memo.is_none() {
        let graph = connection.client().await?;
        remember(ctx, graph, elements).await?;
    }
    Ok(())
}

/// Whether the graph still holds what `memo` says the sink saw; `None` when the memo is
/// unreadable (the caller then checks in full).
async fn unchanged(
    graph: &GraphClient,
    elements: Elements,
    memo: &str,
) -> Result<Option<bool>, StepError> {
    let Ok(seen) = serde_json::from_str::<Seen>(memo) else {
        return Ok(None);
    };
    if seen.v != SEEN_VERSION {
        return Ok(None);
    }
    for (name, expected) in &seen.counts {
        let now = elements.count(graph, name).await?;
        if now != *expected {
            tracing::warn!(
                elements = ?elements,
                expected,
                in_graph = now,
                "the graph changed since the sink's last run"
            );
            return Ok(Some(false));
        }
    }
    Ok(Some(true))
}

/// Counts, in the graph, every label (type) among the keys the sink has written, and remembers
/// the counts for the next run's check.
async fn remember(
    ctx: &StepContext,
    graph: &GraphClient,
    elements: Elements,
) -> Result<(), StepError> {
    let names = ctx.reads()?.written_names(elements.name_column()).await?;
    let mut counts = BTreeMap::new();
    for name in names {
        // A name the graph cannot hold was never written (its keys failed).
        if check_name(&name, "name").is_err() {
            continue;
        }
        let n = elements.count(graph, &name).await?;
        counts.insert(name, n);
    }
    let memo = serde_json::to_string(&Seen {
        v: SEEN_VERSION,
        counts,
    })
    .map_err(|e| StepError::fatal(format!("writing the sink's memo: {e}")))?;
    ctx.remember(memo);
    Ok(())
}
