//! Exit codes of `etl`, documented in the README.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything selected ran and every key succeeded.
    Ok = 0,
    /// The run finished, but some keys failed; they are recorded and retried next run.
    KeysFailed = 1,
    /// A step failed as a whole (or was skipped because one it depends on did).
    StepFailed = 2,
    /// Another `etl run` holds a lock this run needed (use `--wait` to wait).
    Locked = 3,
    /// The configuration or the command line is invalid; nothing ran.
    Config = 4,
    /// A service (Postgres, a source) could not be reached or refused; nothing ran.
    Service = 5,
    /// A single run was stopped by SIGTERM or SIGINT after its batches in flight (`--every`
    /// exits 0 instead: stopping is how a loop ends).
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}
