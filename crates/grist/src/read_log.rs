//! What a client read, kept as evidence that a source has not changed.
//!
//! Grist has no change feed, so an extract reads its source every run. A [`ReadLog`] records
//! every answer an extract read: the request (path and query, not the server) and a blake3
//! digest of the answer's bytes. Its [`ReadLog::memo`] is what the extract remembers; the next
//! run calls [`GristClient::unchanged_since`], which asks the same questions again, hashing the
//! answers as they stream by, and compares.
//!
//! Why that is enough: an extract is a function of the answers it reads, and which question it
//! asks next depends only on the answers before. If every answer is the same, it would ask the
//! same questions, get the same answers and write the same snapshot: the run can skip it.
//! A memo is made only when every read finished, and the same question read twice with two
//! different answers (the source changed during the run) makes none.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::client::GristClient;
use crate::error::GristError;

/// The reads of one extract run.
#[derive(Debug, Default)]
pub struct ReadLog {
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    /// Request → digest of its answer.
    answers: BTreeMap<String, String>,
    /// Reads started and not finished (a stream still being consumed, or abandoned).
    open: usize,
    /// The same request answered differently within the run.
    inconsistent: bool,
    /// Requests answered, and the bytes of their answers (what the run cost the server).
    requests: u64,
    bytes: u64,
}

/// The memo's shape (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Memo {
    v: u32,
    /// `[request, blake3 hex of the answer]`, sorted by request.
    reads: Vec<(String, String)>,
}

const MEMO_VERSION: u32 = 1;

impl ReadLog {
    pub(crate) fn opened(&self) {
        self.state.lock().expect("read log").open += 1;
    }

    pub(crate) fn finished(&self, request: &str, digest: blake3::Hash, bytes: u64) {
        let mut state = self.state.lock().expect("read log");
        state.open = state.open.saturating_sub(1);
        state.requests += 1;
        state.bytes += bytes;
        let hex = digest.to_hex().to_string();
        if let Some(previous) = state.answers.insert(request.to_string(), hex.clone()) {
            if previous != hex {
                state.inconsistent = true;
            }
        }
    }

    /// A read that is counted but not remembered (a replayed question).
    pub(crate) fn counted(&self, bytes: u64) {
        let mut state = self.state.lock().expect("read log");
        state.requests += 1;
        state.bytes += bytes;
    }

    /// Requests answered so far, and the bytes of their answers.
    pub fn traffic(&self) -> (u64, u64) {
        let state = self.state.lock().expect("read log");
        (state.requests, state.bytes)
    }

    /// The memo of everything read, or `None` when a read did not finish or the source changed
    /// while it was being read.
    pub fn memo(&self) -> Option<String> {
        let state = self.state.lock().expect("read log");
        if state.open > 0 || state.inconsistent || state.answers.is_empty() {
            return None;
        }
        serde_json::to_string(&Memo {
            v: MEMO_VERSION,
            reads: state
                .answers
                .iter()
                .map(|(r, d)| (r.clone(), d.clone()))
                .collect(),
        })
        .ok()
    }
}

/// How many of a memo's questions are asked at once.
const REPLAY_CONCURRENCY: usize = 4;

impl GristClient {
    /// A client whose reads are recorded in the returned log (the original client is untouched).
    pub fn logging(&self) -> (GristClient, Arc<ReadLog>) {
        let log = Arc::new(ReadLog::default());
        (self.with_log(log.clone()), log)
    }

    /// Whether every read in `memo` (a [`ReadLog::memo`]) gets the same answer now. An unreadable
    /// memo, a different answer or a table that is gone is `false` (the extract then runs and
    /// reports what it finds); a server that cannot be reached is an error.
    pub async fn unchanged_since(&self, memo: &str) -> Result<bool, GristError> {
        let Ok(memo) = serde_json::from_str::<Memo>(memo) else {
            return Ok(false);
        };
        if memo.v != MEMO_VERSION || memo.reads.is_empty() {
            return Ok(false);
        }
        let results =
            futures::stream::iter(memo.reads.into_iter().map(|(request, digest)| async move {
                let now = self.digest_of(&request).await?;
                Ok::<bool, GristError>(now.is_some_and(|d| d.to_hex().as_str() == digest))
            }))
            .buffer_unordered(REPLAY_CONCURRENCY);
        futures::pin_mut!(results);
        // Stop at the first difference: the extract will read everything anyway.
        while let Some(same) = results.try_next().await? {
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_is_made_only_of_finished_and_consistent_reads() {
        let log = ReadLog::default();
        assert_eq!(log.memo(), None, "nothing read, nothing to remember");

        log.opened();
        log.finished("/api/docs/d/tables", blake3::hash(b"a"), 1);
        log.opened();
        assert_eq!(log.memo(), None, "a read still open (an abandoned stream)");
        log.finished("/api/docs/d/download/csv?tableId=T", blake3::hash(b"b"), 1);
        let memo = log.memo().expect("every read finished");
        assert!(memo.contains("/api/docs/d/tables") && memo.contains("tableId=T"));

        // The same question read again with the same answer changes nothing...
        log.opened();
        log.finished("/api/docs/d/tables", blake3::hash(b"a"), 1);
        assert_eq!(log.memo(), Some(memo));
        // ...with another answer, the source changed during the run: no memo.
        log.opened();
        log.finished("/api/docs/d/tables", blake3::hash(b"changed"), 7);
        assert_eq!(log.memo(), None);
        assert_eq!(log.traffic(), (4, 10));
    }
}
