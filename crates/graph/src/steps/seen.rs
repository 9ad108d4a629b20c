//! What a graph sink saw of the graph at the end of its last complete run, and the cheap drift
//! checks it allows.
//!
//! At the end of a run that wrote anything, a sink counts, in the graph, the nodes of each label
//! (the edges of each type) it has written, and remembers the counts and when it counted as the
//! step's memo. The next run's drift check compares the graph with that memo in one of two ways:
//!
//! - **A count**: the same labels (types) counted again, one count per name, no scan of the
//!   tables. Any difference (a graph emptied by a restart, elements another writer removed or
//!   added) is drift. A sink counts when it holds fewer than `drift_sample_from` elements, or
//!   when its last count is older than `drift_recount_secs` (the count then starts the clock
//!   again).
//! - **A sample**, in the runs between two counts of a large graph: about [`SAMPLED_KEYS`] of
//!   the keys it wrote, drawn from random pages of its bookkeeping, looked up in the graph by
//!   id. An emptied graph, or one restored from an older state, shows as missing keys at once;
//!   a few elements removed by another writer wait for the next count (or `etl verify`).
//!   Counting the edges of a type scans them on some servers (ArcadeDB's Cypher: 0.4 s for 2
//!   million); a sample costs the same on any size.
//!
//! Any drift makes the step reprocess every key. Without a memo (the first run, or after a run
//! that did not complete), the sink compares the graph with its tables in full instead.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use etl_core::config::Settings;
use etl_core::runner::DRIFT_REPAIRED;
use etl_core::{StepContext, StepError};

use super::connection::GraphConnection;
use super::elements::Elements;
use crate::cypher::check_name;
use crate::GraphClient;

/// How many keys a sampled check looks up.
const SAMPLED_KEYS: i64 = 200;

/// The memo's shape (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    v: u32,
    counts: BTreeMap<String, i64>,
    /// When the counts were taken (seconds since the epoch); 0 in memos of older versions, which
    /// makes their next check a count.
    #[serde(default)]
    counted_at: u64,
}

const SEEN_VERSION: u32 = 1;

impl Seen {
    /// How many elements the sink saw, over all its names.
    fn total(&self) -> i64 {
        self.counts.values().sum()
    }
}

/// When a sink counts the graph and when a sample of keys is enough (see the module's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftPolicy {
    /// The longest time between two counts; zero counts at every run.
    pub recount_every: Duration,
    /// From how many elements on the runs between two counts take a sample.
    pub sample_from: i64,
}

impl DriftPolicy {
    pub fn from_settings(settings: &mut Settings) -> DriftPolicy {
        DriftPolicy {
            recount_every: Duration::from_secs(settings.runtime_u64_or("drift_recount_secs", 3600)),
            sample_from: settings.runtime_u64_or("drift_sample_from", 100_000) as i64,
        }
    }

    /// Whether the runs between two counts of what `seen` holds take a sample.
    fn sampling(&self, seen: &Seen) -> bool {
        !self.recount_every.is_zero() && seen.total() >= self.sample_from
    }

    /// Whether a check of what `seen` holds must count.
    fn counts(&self, seen: &Seen, now: u64) -> bool {
        !self.sampling(seen) || self.recount_due(seen, now)
    }

    fn recount_due(&self, seen: &Seen, now: u64) -> bool {
        now.saturating_sub(seen.counted_at) >= self.recount_every.as_secs()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A sink's cheap drift check: `Some(drifted)` when the step has a memo of the counts it saw,
/// `None` when it has none (the sink then compares the graph with its tables in full).
pub async fn drifted(
    connection: &GraphConnection,
    ctx: &StepContext,
    elements: Elements,
    rows_table: &str,
    policy: DriftPolicy,
) -> Result<Option<bool>, StepError> {
    let Some(seen) = ctx.memo.as_deref().and_then(parse) else {
        return Ok(None);
    };
    let graph = connection.client().await?;
    let now = now_secs();
    if !policy.counts(&seen, now) {
        let sample = ctx
            .reads()?
            .sample_written_keys(rows_table, SAMPLED_KEYS, seen.total())
            .await?;
        // An empty sample says nothing: count instead.
        if !sample.is_empty() {
            let missing = elements.missing(graph, &sample).await?;
            if !missing.is_empty() {
                tracing::warn!(
                    elements = ?elements,
                    sampled = sample.len(),
                    missing = missing.len(),
                    "keys the sink wrote are missing from the graph"
                );
            }
            return Ok(Some(!missing.is_empty()));
        }
    }
    let same = unchanged(graph, elements, &seen).await?;
    if same && policy.sampling(&seen) && policy.recount_due(&seen, now) {
        // The clock starts again (a run that writes remembers new counts anyway).
        ctx.remember(memo_of(&Seen {
            counted_at: now,
            ..seen
        })?);
    }
    Ok(Some(!same))
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

/// The memo, if it is one this version reads.
fn parse(memo: &str) -> Option<Seen> {
    serde_json::from_str::<Seen>(memo)
        .ok()
        .filter(|s| s.v == SEEN_VERSION)
}

fn memo_of(seen: &Seen) -> Result<String, StepError> {
    serde_json::to_string(seen)
        .map_err(|e| StepError::fatal(format!("writing the sink's memo: {e}")))
}

/// Whether the graph still holds as many elements of each name as `seen` says.
async fn unchanged(
    graph: &GraphClient,
    elements: Elements,
    seen: &Seen,
) -> Result<bool, StepError> {
    for (name, expected) in &seen.counts {
        let now = elements.count(graph, name).await?;
        if now != *expected {
            tracing::warn!(
                elements = ?elements,
                expected,
                in_graph = now,
                "the graph changed since the sink's last run"
            );
            return Ok(false);
        }
    }
    Ok(true)
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
    ctx.remember(memo_of(&Seen {
        v: SEEN_VERSION,
        counts,
        counted_at: now_secs(),
    })?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(total: i64, counted_at: u64) -> Seen {
        Seen {
            v: SEEN_VERSION,
            counts: BTreeMap::from([("person".to_string(), total)]),
            counted_at,
        }
    }

    #[test]
    fn large_graphs_are_sampled_between_counts_and_small_ones_always_counted() {
        let policy = DriftPolicy {
            recount_every: Duration::from_secs(3600),
            sample_from: 100_000,
        };
        let t = 1_000_000;
        assert!(policy.counts(&seen(99_999, t), t + 1), "small: counted");
        assert!(
            !policy.counts(&seen(100_000, t), t + 3599),
            "large: sampled"
        );
        assert!(
            policy.counts(&seen(100_000, t), t + 3600),
            "large, due: counted"
        );
        assert!(
            policy.counts(&seen(2_000_000, 0), t),
            "an old memo: counted"
        );
        let every_run = DriftPolicy {
            recount_every: Duration::ZERO,
            ..policy
        };
        assert!(every_run.counts(&seen(2_000_000, t), t));
    }

    #[test]
    fn memos_written_before_the_clock_read_as_due_for_a_count() {
        let old = parse(r#"{"v":1,"counts":{"person":3}}"#).unwrap();
        assert_eq!(old.counted_at, 0);
        assert_eq!(parse(&memo_of(&seen(5, 7)).unwrap()), Some(seen(5, 7)));
        assert_eq!(parse(r#"{"v":2,"counts":{}}"#), None);
    }
}
