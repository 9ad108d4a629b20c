//! The Grist connection settings every Grist step takes, read the same way everywhere:
//! `server_url`, `api_key` (a secret: never in the fingerprint or a message) and `timeout_secs`;
//! and how a Grist extract remembers what it read, so that a run whose source has not changed
//! skips it (see `grist::read_log`).

use std::time::Duration;

use etl_core::config::Settings;
use etl_core::StepContext;
use grist::read_log::ReadLog;
use grist::{GristClient, GristConfig};

pub fn client(settings: &mut Settings) -> GristClient {
    let server_url = settings.runtime_string("server_url").unwrap_or_default();
    let api_key = settings.secret("api_key");
    let timeout = settings.runtime_u64_or("timeout_secs", 60);
    let mut config = GristConfig::new(&server_url, api_key);
    config.timeout = Duration::from_secs(timeout.max(1));
    GristClient::new(config).expect("an HTTP client with default TLS always builds")
}

/// Called at the end of a successful extract: remembers its reads for the next run.
pub fn remember_reads(ctx: &StepContext, log: &ReadLog) {
    match log.memo() {
        Some(memo) => ctx.remember(memo),
        None => {
            tracing::info!("the source changed while it was read: the next run reads it in full")
        }
    }
}
