//! The run history's contract: what a run says about itself when it begins (who started it,
//! where, how), and the one word each run and step outcome is recorded under. The store keeps
//! the history (see [`crate::store::Store::run_begun`]); `etl history`, the web page and the
//! metrics read it.

use std::time::Duration;

use crate::report::{RunReport, StepRunStatus};

/// Who started a run, where and how. Never holds a secret: the command line is the
/// arguments only, no environment.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The command line, e.g. `etl run --step embeddings`.
    pub command: String,
    /// The host the run ran on.
    pub host: String,
    pub pid: u32,
    /// The worker's name (`ETL_WORKER_NAME`), else `<host>:<pid>`.
    pub worker: String,
    /// Runs that began longer ago than this are pruned when a run ends.
    pub retention: Duration,
}

/// The default retention of the run history: 90 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

impl Default for Invocation {
    fn default() -> Self {
        Invocation {
            command: String::new(),
            host: String::new(),
            pid: std::process::id(),
            worker: String::new(),
            retention: DEFAULT_RETENTION,
        }
    }
}

/// How a run ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    KeysFailed,
    Failed,
    /// Asked to stop (SIGTERM, SIGINT): what it committed stays, the rest is pending.
    Interrupted,
    /// Another run held a lock it needed.
    Locked,
}

impl RunOutcome {
    pub fn of(report: &RunReport) -> Self {
        if report.interrupted() {
            RunOutcome::Interrupted
        } else if report.step_failed() {
            RunOutcome::Failed
        } else if report.locked() {
            RunOutcome::Locked
        } else if report.keys_failed() {
            RunOutcome::KeysFailed
        } else {
            RunOutcome::Succeeded
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::KeysFailed => "keys_failed",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::Locked => "locked",
        }
    }
}

impl StepRunStatus {
    /// The word the history records the step's outcome under.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepRunStatus::Succeeded => "succeeded",
            StepRunStatus::KeysFailed => "keys_failed",
            StepRunStatus::Failed(_) => "failed",
            StepRunStatus::Skipped(_) => "skipped",
            StepRunStatus::Locked(_) => "locked",
            StepRunStatus::NotConfigured(_) => "not_configured",
            StepRunStatus::Interrupted(_) => "interrupted",
        }
    }

    /// The reason that goes with the outcome, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            StepRunStatus::Succeeded | StepRunStatus::KeysFailed => None,
            StepRunStatus::Failed(r)
            | StepRunStatus::Skipped(r)
            | StepRunStatus::Locked(r)
            | StepRunStatus::NotConfigured(r)
            | StepRunStatus::Interrupted(r) => Some(r),
        }
    }
}
