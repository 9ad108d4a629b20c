//! The Grist connection settings every Grist step takes, read the same way everywhere:
//! `server_url`, `api_key` (a secret: never in the fingerprint or a message) and `timeout_secs`;
//! and how a Grist extract remembers what it read, so that a run whose source has not changed
//! skips it (see `grist::read_log`).

use std::time::Duration;

use async_trait::async_trait;

use crate::{GristClient, GristConfig};
use etl_core::config::Settings;
use etl_core::step::{OutputRole, SnapshotSink};
use etl_core::{Extract, StepContext, StepError};

pub fn client(settings: &mut Settings) -> GristClient {
    let server_url = settings.runtime_string("server_url").unwrap_or_default();
    let api_key = settings.secret("api_key");
    let timeout = settings.runtime_u64_or("timeout_secs", 60);
    let mut config = GristConfig::new(&server_url, api_key);
    config.timeout = Duration::from_secs(timeout.max(1));
    GristClient::new(config).expect("an HTTP client with default TLS always builds")
}

/// A snapshot read from Grist. [`Remembering`] makes it an engine extract that remembers what it
/// read and skips the source while it is unchanged.
#[async_trait]
pub trait GristRead: Send + Sync {
    /// The client the step was configured with.
    fn client(&self) -> &GristClient;

    /// The tables the snapshot fills, in order (see `etl_core::step::OutputRole`).
    fn outputs(&self) -> Vec<OutputRole>;

    /// Checks that the docs can be reached with the configured key (`etl check`).
    async fn check(&self) -> Result<(), StepError>;

    /// Reads a complete snapshot, every request through `client`.
    async fn read_snapshot(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<(), StepError>;
}

/// A [`GristRead`] as an extract: its reads go through a logging client, and a complete
/// snapshot remembers them (`grist::read_log`), so the next run can ask the same questions
/// again and skip the step if every answer is the same.
pub struct Remembering<R>(pub R);

#[async_trait]
impl<R: GristRead> Extract for Remembering<R> {
    fn outputs(&self) -> Vec<OutputRole> {
        self.0.outputs()
    }

    async fn check(&self) -> Result<(), StepError> {
        self.0.check().await
    }

    async fn extract(
        &self,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<(), StepError> {
        let (client, log) = self.0.client().logging();
        self.0.read_snapshot(&client, ctx, out).await?;
        match log.memo() {
            Some(memo) => ctx.remember(memo),
            None => tracing::info!(
                "the source changed while it was read: the next run reads it in full"
            ),
        }
        Ok(())
    }

    async fn unchanged_since(&self, _ctx: &StepContext, memo: &str) -> Result<bool, StepError> {
        Ok(self.0.client().unchanged_since(memo).await?)
    }
}
