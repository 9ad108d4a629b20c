//! Owns fault injection and the request log: rules that make the next N requests (optionally
//! only those about one table) fail with a 500, fail with `SQLITE_BUSY`, answer another status,
//! or wait before answering; and the record of which requests the server received.

use std::time::Duration;

/// What an injected fault does to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer 500 with `{"error":"Internal Server Error (injected fault)"}`.
    InternalError,
    /// Answer 500 with `{"error":"SQLITE_BUSY: database is locked"}`.
    SqliteBusy,
    /// Wait this long, then answer normally (to trigger client timeouts).
    Delay(Duration),
    /// Answer this status with this body (sent as JSON).
    Status { status: u16, body: String },
}

/// A fault rule: applies to the next `times` requests that match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub times: usize,
    /// Only requests about this table (path `/tables/{T}/...` or query `tableId=T`).
    pub table: Option<String>,
}

impl Fault {
    pub fn new(kind: FaultKind, times: usize) -> Fault {
        Fault {
            kind,
            times,
            table: None,
        }
    }

    /// The next `times` requests answer 500 with a JSON error body.
    pub fn internal_error(times: usize) -> Fault {
        Fault::new(FaultKind::InternalError, times)
    }

    /// The next `times` requests answer 500 `{"error":"SQLITE_BUSY: database is locked"}`.
    pub fn sqlite_busy(times: usize) -> Fault {
        Fault::new(FaultKind::SqliteBusy, times)
    }

    /// The next `times` requests wait `delay` before being answered.
    pub fn delay(times: usize, delay: Duration) -> Fault {
        Fault::new(FaultKind::Delay(delay), times)
    }

    /// The next `times` requests answer `status` with `body`.
    pub fn status(times: usize, status: u16, body: impl Into<String>) -> Fault {
        Fault::new(
            FaultKind::Status {
                status,
                body: body.into(),
            },
            times,
        )
    }

    /// Restricts the rule to requests about `table`.
    pub fn for_table(mut self, table: impl Into<String>) -> Fault {
        self.table = Some(table.into());
        self
    }

    fn matches(&self, table: Option<&str>) -> bool {
        match &self.table {
            None => true,
            Some(t) => table == Some(t.as_str()),
        }
    }
}

/// The pending fault rules, first added first applied.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    rules: Vec<Fault>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.rules.push(fault);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn pending(&self) -> usize {
        self.rules.iter().map(|r| r.times).sum()
    }

    /// Consumes one use of the first rule matching a request about `table`.
    pub(crate) fn take(&mut self, table: Option<&str>) -> Option<FaultKind> {
        let index = self.rules.iter().position(|r| r.matches(table))?;
        let rule = &mut self.rules[index];
        rule.times -= 1;
        let kind = rule.kind.clone();
        if rule.times == 0 {
            self.rules.remove(index);
        }
        Some(kind)
    }
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub method: String,
    /// The path, percent-encoded as sent, without the query.
    pub path: String,
    pub query: Option<String>,
    /// The table the request is about, if any.
    pub table: Option<String>,
}
