//! The transforms' drift checks, started alongside a run's first steps: a check looks at a
//! step's outside state and its own bookkeeping, not at its inputs, so it need not wait for the
//! steps upstream. The step's batches take its answer when they start (see `batches`).

use std::collections::HashMap;

use tracing::Instrument;

use super::{RunOptions, Runner};
use crate::step::{StepContext, StepError, StepImpl};

/// The counter a step's report carries when its drift check found drift and every key was
/// reprocessed.
pub const DRIFT_REPAIRED: &str = "drift_repaired";

/// A drift check started early (see [`Runner::start_drift_checks`]).
pub(super) type DriftCheck = tokio::task::JoinHandle<Result<bool, StepError>>;

impl Runner {
    /// Starts the drift checks of the selected transforms at once, alongside the run's first
    /// steps: a check looks at the step's outside state and its own bookkeeping, not at its
    /// inputs, so it need not wait for upstream steps. Not when the run waits for locks (another
    /// run may be writing that state) or reprocesses everything anyway.
    pub(super) fn start_drift_checks(
        &self,
        selected: &[usize],
        contexts: &HashMap<usize, StepContext>,
        opts: &RunOptions,
        dry_run: bool,
    ) -> HashMap<usize, DriftCheck> {
        if dry_run || opts.wait_for_locks || opts.full_refresh {
            return HashMap::new();
        }
        let mut checks = HashMap::new();
        for &i in selected {
            let step = &self.pipeline.steps[i];
            let StepImpl::Transform(transform) = &step.implementation else {
                continue;
            };
            if step.skipped.is_some() {
                continue;
            }
            let transform = transform.clone();
            let ctx = contexts[&i].clone();
            let span = tracing::info_span!("drift_check", step = %step.name);
            checks.insert(
                i,
                tokio::spawn(async move { transform.drifted(&ctx).await }.instrument(span)),
            );
        }
        checks
    }
}
