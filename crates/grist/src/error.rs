//! Errors from Grist, each saying which doc and table, and what to check. The API key never
//! appears in one. The one table for Grist:
//!
//! | what | class |
//! | --- | --- |
//! | 5xx (`SQLITE_BUSY` included), a timeout, a connection error | transient: retried by the client, the one layer of retries |
//! | 401 invalid key, 403 no access, 404 unknown doc or table, other 4xx, an unexpected answer | fatal: no row of a snapshot is at fault |
//! | 500 `Cannot read hash` from `/compare` | not retried: the extract reads the doc in full |

use std::time::Duration;

use etl_core::step::{ErrorClass, StepError};

#[derive(Debug, thiserror::Error)]
pub enum GristError {
    #[error("Grist rejected the API key for doc `{doc}` ({server}): check GRIST_API_KEY")]
    InvalidKey { server: String, doc: String },
    #[error("no access to doc `{doc}` on {server} ({detail}): check that GRIST_API_KEY is set and its user can view the doc")]
    NoAccess {
        server: String,
        doc: String,
        detail: String,
    },
    #[error(
        "doc `{doc}` not found on {server}: check the doc id (GRIST_*_DOC_ID) and GRIST_SERVER_URL"
    )]
    UnknownDoc { server: String, doc: String },
    #[error("table `{table}` not found in doc `{doc}` (table ids are case-sensitive{known})")]
    UnknownTable {
        doc: String,
        table: String,
        known: String,
    },
    #[error("Grist refused the request for {what} ({status}): {detail}")]
    BadRequest {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("Grist failed on {what} ({status}): {detail}")]
    Server {
        what: String,
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("Grist did not answer {what} within {timeout:?}: check GRIST_SERVER_URL and the server's load")]
    Timeout { what: String, timeout: Duration },
    #[error("cannot reach Grist at {server} for {what}: {source}")]
    Connection {
        server: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("doc `{doc}` no longer knows the state the last run read (its history is bounded)")]
    UnknownState { doc: String },
    #[error("unexpected answer from Grist for {what}: {detail}")]
    Protocol { what: String, detail: String },
}

impl GristError {
    /// Passing faults: worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GristError::Server { .. } | GristError::Timeout { .. } | GristError::Connection { .. }
        )
    }
}

impl etl_core::retry::Retryable for GristError {
    fn is_transient(&self) -> bool {
        GristError::is_transient(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            GristError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Grist's errors for the engine: a transient one has been retried by the client already (the
/// one layer of retries for Grist), anything else is fatal: no row of a snapshot is at fault.
impl From<GristError> for StepError {
    fn from(e: GristError) -> Self {
        let transient = e.is_transient();
        let class = if transient {
            ErrorClass::Transient
        } else {
            ErrorClass::Fatal
        };
        let retry_after = etl_core::retry::Retryable::retry_after(&e);
        let error = StepError::new(class, e.to_string()).with_retry_after(retry_after);
        let error = if transient {
            error.already_retried()
        } else {
            error
        };
        error.with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table() {
        let class = |e: GristError| {
            let s = StepError::from(e);
            (s.class, s.retried)
        };
        let server = || "http://grist".to_string();
        assert_eq!(
            class(GristError::Server {
                what: "x".into(),
                status: 503,
                detail: String::new(),
                retry_after: None,
            }),
            (ErrorClass::Transient, true)
        );
        assert_eq!(
            class(GristError::Timeout {
                what: "x".into(),
                timeout: Duration::from_secs(1),
            }),
            (ErrorClass::Transient, true)
        );
        for fatal in [
            GristError::InvalidKey {
                server: server(),
                doc: "d".into(),
            },
            GristError::UnknownDoc {
                server: server(),
                doc: "d".into(),
            },
            GristError::BadRequest {
                what: "x".into(),
                status: 400,
                detail: String::new(),
            },
            GristError::Protocol {
                what: "x".into(),
                detail: String::new(),
            },
        ] {
            assert_eq!(class(fatal), (ErrorClass::Fatal, false));
        }
    }
}
