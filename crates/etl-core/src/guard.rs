//! The mass-delete guard of transforms and sinks: no run deletes more than a step's
//! `max_delete_fraction` of any of its targets (an output table, or what a sink holds outside:
//! the graph's nodes, its edges) unless the run says `--allow-mass-delete`.
//!
//! * **Before the first batch**, the store counts what the pending keys whose inputs are all
//!   gone would delete in each target ([`crate::store::Store::deletion_preview`]). Over the
//!   limit, the step stops before deleting anything; its keys stay pending for a run that allows
//!   it. This is the case of an input emptied upstream or a step rewired to another table.
//! * **While batches commit**, the rows each commit deletes are added up per output table
//!   against the table's size at its first delete: a run whose present keys shrink their output
//!   past the limit stops before the commit that would cross it.
//!
//! A changed fingerprint makes every key pending, never deleted: only keys without input rows
//! delete, so a rewired step that reads its inputs through their configured tables deletes
//! nothing it still has inputs for.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::dag::StepDef;
use crate::step::StepError;
use crate::store::{Store, TargetDeletes};

/// Whether deleting `deleting` of `live` stays within `fraction`.
pub fn within(deleting: u64, live: u64, fraction: f64) -> bool {
    deleting == 0 || deleting <= (fraction * live as f64).floor() as u64
}

/// The fewest live rows that let `deleting` of them go within `fraction`: a store counts live
/// rows only up to this ([`crate::store::Store::count_live_to`]), since any more decide nothing.
/// A count that stops short of it is the whole count, so a refusal still names the real size.
/// `u64::MAX` when no size would do (a fraction of 0): the store then counts everything.
pub fn live_needed(deleting: u64, fraction: f64) -> u64 {
    if deleting == 0 {
        return 0;
    }
    if fraction.is_nan() || fraction <= 0.0 {
        return u64::MAX;
    }
    let estimate = (deleting as f64 / fraction).ceil();
    if estimate >= u64::MAX as f64 {
        return u64::MAX;
    }
    // The float estimate is close to the answer (a row or two below 2^53 rows); `within`
    // decides exactly.
    let mut live = estimate as u64;
    while !within(deleting, live, fraction) {
        live += 1;
    }
    while live > 0 && within(deleting, live - 1, fraction) {
        live -= 1;
    }
    live
}

fn refusal(step: &StepDef, target: &str, deleting: u64, live: u64, why: &str) -> StepError {
    let pct = if live == 0 {
        100.0
    } else {
        100.0 * deleting as f64 / live as f64
    };
    StepError::fatal(format!(
        "refusing to delete {deleting} of the {live} rows of {target} ({pct:.0}%, more than step `{}`'s max_delete_fraction of {:.0}%): {why}; \
         check the step's inputs ({}) — an input emptied upstream or bound to another table; \
         if the deletion is intended, rerun with --allow-mass-delete (the keys stay pending until then)",
        step.name,
        100.0 * step.max_delete_fraction,
        step.inputs
            .iter()
            .map(|i| format!("`{}`", i.table))
            .collect::<Vec<_>>()
            .join(", "),
    ))
}

/// Refuses a run whose vanished keys would delete too much of a target.
pub fn check_preview(step: &StepDef, previews: &[TargetDeletes]) -> Result<(), StepError> {
    for p in previews {
        if !within(p.deleting, p.live, step.max_delete_fraction) {
            return Err(refusal(
                step,
                &p.target,
                p.deleting,
                p.live,
                "the step's keys with no input row left would remove them",
            ));
        }
    }
    Ok(())
}

/// The running count of a run's deletes per output table.
#[derive(Clone)]
pub struct DeleteTally {
    store: Arc<dyn Store>,
    /// Per table: rows live at its first delete, rows deleted since.
    tables: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
    allow: bool,
}

impl DeleteTally {
    pub fn new(store: Arc<dyn Store>, allow: bool) -> Self {
        DeleteTally {
            store,
            tables: Arc::default(),
            allow,
        }
    }

    /// Adds a batch's deletes (table, rows) before it commits; `Err` if they would take a table
    /// past the step's limit (the batch then does not commit).
    pub async fn admit(
        &self,
        step: &StepDef,
        pipeline: &crate::dag::Pipeline,
        deletes: &[(String, u64)],
    ) -> Result<(), StepError> {
        if self.allow || deletes.iter().all(|(_, n)| *n == 0) {
            return Ok(());
        }
        let mut tables = self.tables.lock().await;
        for (table, n) in deletes.iter().filter(|(_, n)| *n > 0) {
            if !tables.contains_key(table) {
                let def = &pipeline.tables[table];
                let live = self.store.count_live(def).await?;
                tables.insert(table.clone(), (live, 0));
            }
            let (live, deleted) = tables[table];
            if !within(deleted + n, live, step.max_delete_fraction) {
                return Err(refusal(
                    step,
                    &format!("table `{table}`"),
                    deleted + n,
                    live,
                    "the run's batches would remove them",
                ));
            }
        }
        for (table, n) in deletes {
            if let Some(t) = tables.get_mut(table) {
                t.1 += n;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_a_fraction_of_what_is_live() {
        assert!(within(0, 0, 0.5));
        assert!(within(5, 10, 0.5));
        assert!(!within(6, 10, 0.5));
        assert!(!within(1, 1, 0.5));
        assert!(within(1, 1, 1.0));
        assert!(!within(1, 0, 1.0));
    }

    #[test]
    fn no_size_lets_a_fraction_of_zero_delete() {
        assert_eq!(live_needed(0, 0.0), 0);
        assert_eq!(live_needed(1, 0.0), u64::MAX);
        assert_eq!(live_needed(5, 0.5), 10);
        assert_eq!(live_needed(1, 1.0), 1);
    }

    proptest::proptest! {
        /// Counting up to `live_needed` decides as the whole count would, for any size.
        #[test]
        fn counting_up_to_the_needed_size_decides_as_counting_everything(
            deleting in 0u64..10_000_000,
            live in 0u64..100_000_000,
            fraction in 0.0001f64..=1.0,
        ) {
            let needed = live_needed(deleting, fraction);
            proptest::prop_assert!(within(deleting, needed, fraction));
            if needed > 0 {
                proptest::prop_assert!(!within(deleting, needed - 1, fraction));
            }
            proptest::prop_assert_eq!(
                within(deleting, live.min(needed), fraction),
                within(deleting, live, fraction)
            );
        }
    }
}
