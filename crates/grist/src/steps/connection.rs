//! The Grist connection settings every Grist step takes, read the same way everywhere:
//! `server_url`, `api_key` (a secret: never in the fingerprint or a message) and `timeout_secs`;
//! and how a Grist extract remembers what it read, so that a run whose source has not changed
//! skips it and a run whose source changed reads only that (see `feed`).

use std::time::Duration;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use super::feed::{self, Changes, DocChange, Memo};
use crate::changes::DocState;
use crate::read_log::ReadLog;
use crate::{GristClient, GristConfig};
use etl_core::config::Settings;
use etl_core::step::{Origin, OutputRole, SnapshotSink};
use etl_core::{Extract, Key, StepContext, StepError};

pub fn client(settings: &mut Settings) -> GristClient {
    let server_url = settings.runtime_string("server_url").unwrap_or_default();
    let api_key = settings.secret("api_key");
    let timeout = settings.runtime_u64_or("timeout_secs", 60);
    let mut config = GristConfig::new(&server_url, api_key);
    config.timeout = Duration::from_secs(timeout.max(1));
    GristClient::new(config).expect("an HTTP client with default TLS always builds")
}

/// A snapshot read from Grist. [`Remembering`] makes it an engine extract that remembers what it
/// read, skips the source while it is unchanged, and hands what changed to
/// [`GristRead::read_changes`].
#[async_trait]
pub trait GristRead: Send + Sync {
    /// The client the step was configured with.
    fn client(&self) -> &GristClient;

    /// The docs the extract reads.
    fn docs(&self) -> Vec<String>;

    /// The tables the snapshot fills, in order (see `etl_core::step::OutputRole`).
    fn outputs(&self) -> Vec<OutputRole>;

    /// Checks that the docs can be reached with the configured key (`etl check`).
    async fn check(&self) -> Result<(), StepError>;

    /// Reads a complete snapshot, every request through `client`; returns the facts to
    /// remember about what it read (`Value::Null` for none).
    async fn read_snapshot(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<Value, StepError>;

    /// Reads only what `changes` names (some docs changed since the facts were remembered),
    /// marking its tables `changes_only`; returns the facts to remember, or `None`, having
    /// written nothing, when only a complete snapshot will do. The default: always a snapshot.
    async fn read_changes(
        &self,
        _client: &GristClient,
        _ctx: &StepContext,
        _changes: &Changes,
        _facts: &Value,
        _out: &mut dyn SnapshotSink,
    ) -> Result<Option<Value>, StepError> {
        Ok(None)
    }

    /// Mistakes in the docs that leave something out (see `etl_core::step::Extract::problems`).
    async fn problems(&self) -> Result<Vec<String>, StepError> {
        Ok(Vec::new())
    }

    /// Where a row of output `role` comes from (see `etl_core::step::Extract::origin`).
    fn origin(&self, _role: &str, _key: &Key) -> Option<Origin> {
        None
    }
}

/// A [`GristRead`] as an extract. It remembers the newest state of each doc it read
/// (`grist::steps::feed`); the next run asks `/states` once per doc and skips the step when no
/// doc changed, asks `/compare` for the docs that did and lets the extract read only that, and
/// reads a complete snapshot when it cannot. Counters `grist_requests` and `grist_bytes` say
/// what a run asked of the server.
pub struct Remembering<R>(pub R);

impl<R: GristRead> Remembering<R> {
    /// The newest state of every doc, or `None` when a server does not tell.
    async fn heads(
        &self,
        client: &GristClient,
    ) -> Result<Option<BTreeMap<String, DocState>>, StepError> {
        let mut heads = BTreeMap::new();
        for doc in self.0.docs() {
            match feed::head(client, &doc).await? {
                Some(state) => heads.insert(doc, state),
                None => return Ok(None),
            };
        }
        Ok(Some(heads))
    }

    /// Tries to read only what changed since `memo`; the states to remember if it did.
    async fn read_changed(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        memo: &Memo,
        heads: &BTreeMap<String, DocState>,
        out: &mut dyn SnapshotSink,
    ) -> Result<Option<(BTreeMap<String, String>, Value)>, StepError> {
        if memo.states.keys().ne(heads.keys()) {
            return Ok(None);
        }
        let mut changes = Changes::default();
        let mut states = BTreeMap::new();
        for (doc, now) in heads {
            let (change, right) = feed::change_of(client, doc, &memo.states[doc], now).await?;
            if let DocChange::Unknown(why) = &change {
                tracing::info!(doc = %doc, reason = %why, "reading the step's source in full");
            }
            changes.docs.insert(doc.clone(), change);
            states.insert(doc.clone(), right.h);
        }
        let facts = self
            .0
            .read_changes(client, ctx, &changes, &memo.facts, out)
            .await?;
        Ok(facts.map(|f| (states, f)))
    }
}

fn count_traffic(ctx: &StepContext, log: &ReadLog) {
    let (requests, bytes) = log.traffic();
    ctx.counters.add("grist_requests", requests);
    ctx.counters.add("grist_bytes", bytes);
}

#[async_trait]
impl<R: GristRead> Extract for Remembering<R> {
    fn outputs(&self) -> Vec<OutputRole> {
        self.0.outputs()
    }

    fn origin(&self, role: &str, key: &Key) -> Option<Origin> {
        self.0.origin(role, key)
    }

    async fn problems(&self) -> Result<Vec<String>, StepError> {
        self.0.problems().await
    }

    async fn check(&self) -> Result<(), StepError> {
        self.0.check().await
    }

    async fn extract(
        &self,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<(), StepError> {
        let (feed_client, feed_log) = self.0.client().logging();
        let heads = self.heads(&feed_client).await?;
        let memo = ctx.memo.as_deref().and_then(Memo::parse);
        let changed = match (&memo, &heads) {
            (Some(memo), Some(heads)) => {
                self.read_changed(&feed_client, ctx, memo, heads, out)
                    .await?
            }
            _ => None,
        };
        count_traffic(ctx, &feed_log);
        let memo = match changed {
            Some((states, facts)) => {
                ctx.counters.add("read_changes_only", 1);
                Memo {
                    v: feed::MEMO_VERSION,
                    states,
                    facts,
                    reads: None,
                }
            }
            None => {
                let (client, log) = self.0.client().logging();
                let facts = self.0.read_snapshot(&client, ctx, out).await?;
                count_traffic(ctx, &log);
                Memo {
                    v: feed::MEMO_VERSION,
                    states: heads
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(doc, s)| (doc, s.h))
                        .collect(),
                    facts,
                    reads: log.memo(),
                }
            }
        };
        if memo.states.is_empty() && memo.reads.is_none() {
            tracing::info!("the source changed while it was read: the next run reads it in full");
            return Ok(());
        }
        ctx.remember(memo.to_json());
        Ok(())
    }

    async fn unchanged_since(&self, ctx: &StepContext, memo: &str) -> Result<bool, StepError> {
        let Some(memo) = Memo::parse(memo) else {
            return Ok(false);
        };
        let (client, log) = self.0.client().logging();
        let unchanged = async {
            if !memo.states.is_empty() {
                if let Some(heads) = self.heads(&client).await? {
                    return Ok::<bool, StepError>(
                        heads.len() == memo.states.len()
                            && heads
                                .iter()
                                .all(|(doc, s)| memo.states.get(doc) == Some(&s.h)),
                    );
                }
            }
            // No states to compare: ask the same questions again.
            match &memo.reads {
                Some(reads) => Ok(client.unchanged_since(reads).await?),
                None => Ok(false),
            }
        }
        .await;
        count_traffic(ctx, &log);
        unchanged
    }
}
