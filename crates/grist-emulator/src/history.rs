//! A doc's action states, as Grist keeps them. Every change a request or a test makes is a new
//! state: a number `n` one above the last and a 64-hex hash `h`; `/states` lists them newest
//! first, and `/compare?left=H` diffs the doc as it was at `H` against its newest state
//! (`server::changes`).
//!
//! A state keeps the doc as it was (its tables are shared with later states until a change copies
//! one), so a comparison is a diff of two docs. The history is bounded like Grist's
//! (`GRIST_ACTION_HISTORY_MAX_ROWS` and `_MAX_BYTES` there): by a number of states, and by the
//! rows the earlier states hold apart from the newest one. The oldest states go first, and their
//! hashes are then unknown.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::model::{Doc, Table};

/// How many states a doc keeps by default (Grist's `GRIST_ACTION_HISTORY_MAX_ROWS` default).
pub const DEFAULT_MAX_STATES: usize = 1000;
/// How many rows the earlier states may hold apart from the newest state (a memory bound, in
/// the place of Grist's bound in bytes).
pub const DEFAULT_MAX_RETAINED_ROWS: usize = 3_000_000;

/// The bounds of a history.
#[derive(Clone, Copy, Debug)]
pub struct HistoryLimits {
    pub max_states: usize,
    pub max_retained_rows: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_states: DEFAULT_MAX_STATES,
            max_retained_rows: DEFAULT_MAX_RETAINED_ROWS,
        }
    }
}

/// One state of a doc.
#[derive(Clone, Debug)]
pub struct State {
    pub n: u64,
    pub h: String,
    pub doc: Doc,
}

/// The states of one doc, oldest first.
#[derive(Clone, Debug)]
pub struct History {
    states: VecDeque<State>,
}

/// Feeds a table's content (columns and records) to a hasher.
fn hash_tables<'a>(hasher: &mut blake3::Hasher, tables: impl Iterator<Item = &'a Arc<Table>>) {
    for t in tables {
        hasher.update(t.id.as_bytes());
        hasher.update(&[0]);
        for c in &t.columns {
            hasher.update(&serde_json::to_vec(c).unwrap_or_default());
        }
        for r in &t.records {
            hasher.update(&serde_json::to_vec(r).unwrap_or_default());
        }
    }
}

/// Whether two docs differ (tables compared by pointer first, by content when not shared).
pub fn changed(before: &Doc, after: &Doc) -> bool {
    before.name != after.name
        || before.tables.len() != after.tables.len()
        || before
            .tables
            .iter()
            .zip(&after.tables)
            .any(|(a, b)| !Arc::ptr_eq(a, b) && a != b)
}

impl History {
    /// A history whose only state is `doc` as loaded: `n` 1, its hash that of its content (an
    /// emulator serving the same files again answers the same hash).
    pub fn new(doc: &Doc) -> History {
        let mut hasher = blake3::Hasher::new();
        hasher.update(doc.id.as_bytes());
        hash_tables(&mut hasher, doc.tables.iter());
        History {
            states: VecDeque::from([State {
                n: 1,
                h: hasher.finalize().to_hex().to_string(),
                doc: doc.clone(),
            }]),
        }
    }

    /// A history that starts at `head` (what a cut history keeps).
    pub fn from_head(head: State) -> History {
        History {
            states: VecDeque::from([head]),
        }
    }

    /// The newest state.
    pub fn head(&self) -> &State {
        self.states.back().expect("a history always has a state")
    }

    /// `(n, h)` of every state kept, newest first.
    pub fn newest_first(&self) -> Vec<(u64, String)> {
        self.states
            .iter()
            .rev()
            .map(|s| (s.n, s.h.clone()))
            .collect()
    }

    /// The state with hash `h`, if still kept.
    pub fn find(&self, h: &str) -> Option<&State> {
        self.states.iter().find(|s| s.h == h)
    }

    /// Records `doc` as the newest state (the caller checked that it changed), then forgets
    /// the oldest states beyond the limits.
    pub fn record(&mut self, doc: &Doc, limits: HistoryLimits) {
        let head = self.head();
        let n = head.n + 1;
        let mut hasher = blake3::Hasher::new();
        hasher.update(head.h.as_bytes());
        hasher.update(&n.to_le_bytes());
        // The tables this change touched: two different changes of one state get two hashes.
        let touched = doc
            .tables
            .iter()
            .filter(|t| !head.doc.tables.iter().any(|o| Arc::ptr_eq(o, t)));
        hash_tables(&mut hasher, touched);
        self.states.push_back(State {
            n,
            h: hasher.finalize().to_hex().to_string(),
            doc: doc.clone(),
        });
        while self.states.len() > limits.max_states.max(1)
            || (self.states.len() > 1 && self.retained_rows() > limits.max_retained_rows)
        {
            self.states.pop_front();
        }
    }

    /// Rows held by earlier states in tables the newest state does not share.
    fn retained_rows(&self) -> usize {
        let head = self.head();
        let mut counted: HashSet<*const Table> = head.doc.tables.iter().map(Arc::as_ptr).collect();
        let mut rows = 0;
        for s in self.states.iter().rev().skip(1) {
            for t in &s.doc.tables {
                if counted.insert(Arc::as_ptr(t)) {
                    rows += t.records.len();
                }
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, Record};
    use serde_json::json;

    fn doc(name: &str) -> Doc {
        let mut d = Doc::new("d");
        d.push_table(Table::new(
            "T",
            vec![Column::new("A", "Text")],
            vec![Record::new(1, json!({"A": name})).unwrap()],
        ));
        d
    }

    #[test]
    fn each_change_is_a_new_state_and_old_ones_are_forgotten_beyond_the_limit() {
        let mut h = History::new(&doc("a"));
        assert_eq!(h.head().n, 1);
        assert_eq!(
            History::new(&doc("a")).head().h,
            h.head().h,
            "same content, same hash"
        );
        let limits = HistoryLimits {
            max_states: 2,
            ..HistoryLimits::default()
        };
        let first = h.head().h.clone();
        h.record(&doc("b"), limits);
        assert_eq!(h.head().n, 2);
        assert_ne!(h.head().h, first);
        assert!(h.find(&first).is_some());
        h.record(&doc("c"), limits);
        assert_eq!(h.newest_first().len(), 2);
        assert!(h.find(&first).is_none(), "the oldest state is forgotten");
    }

    #[test]
    fn two_different_changes_of_one_state_get_two_hashes() {
        let base = History::new(&doc("a"));
        let (mut x, mut y) = (base.clone(), base);
        x.record(&doc("b"), HistoryLimits::default());
        y.record(&doc("c"), HistoryLimits::default());
        assert_ne!(x.head().h, y.head().h);
    }
}
