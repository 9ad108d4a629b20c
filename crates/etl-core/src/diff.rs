//! Change detection: what a batch of fresh rows changes in a table.
//!
//! The store tells what it holds for the batch's keys (their content hashes); [`diff`] decides
//! which rows are new, which changed, which are unchanged (and are not written at all), and, for
//! transforms, which rows a key used to produce and no longer does.

use std::collections::{HashMap, HashSet};

use crate::row_hash::{row_hash, RowHash};
use crate::value::{Key, Row};

/// A row to write, with its key and content hash.
#[derive(Debug, Clone)]
pub struct Upsert {
    pub key: Key,
    pub row: Row,
    pub hash: RowHash,
    /// The transform key that produced the row (`None` for extracted rows).
    pub producer: Option<Key>,
}

/// The changes a batch makes to one table.
#[derive(Debug, Clone, Default)]
pub struct TableDiff {
    pub inserts: Vec<Upsert>,
    pub updates: Vec<Upsert>,
    pub deletes: Vec<Key>,
    pub unchanged: usize,
}

impl TableDiff {
    pub fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.updates.is_empty() && self.deletes.is_empty()
    }

    /// Inserts and updates together, in the order they were produced.
    pub fn upserts(&self) -> impl Iterator<Item = &Upsert> {
        self.inserts.iter().chain(self.updates.iter())
    }
}

/// A fresh row ready for diffing: its key, the row, and who produced it.
#[derive(Debug, Clone)]
pub struct FreshRow {
    pub key: Key,
    pub row: Row,
    pub producer: Option<Key>,
}

/// What the store holds for a key: its content hash and the transform key that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: RowHash,
    pub producer: Option<Key>,
}

/// Compares fresh rows with what is stored.
///
/// * `stored` holds the live rows for (at least) the fresh rows' keys and, for a transform, every
///   row previously produced by the batch's transform keys.
/// * `owned_by_batch` says whether a stored row belongs to the batch: such a row that the batch no
///   longer produces is deleted. Extract batches pass `|_| false` (their deletions are decided once
///   the whole snapshot has been read).
///
/// When several fresh rows share a key, the first one wins (later ones are counted as unchanged):
/// one key, one row.
pub fn diff(
    fresh: Vec<FreshRow>,
    stored: &HashMap<Key, Stored>,
    owned_by_batch: impl Fn(&Stored) -> bool,
) -> TableDiff {
    let mut out = TableDiff::default();
    let mut seen: HashSet<Key> = HashSet::with_capacity(fresh.len());
    for fresh_row in fresh {
        if !seen.insert(fresh_row.key.clone()) {
            out.unchanged += 1;
            continue;
        }
        let hash = row_hash(&fresh_row.row);
        match stored.get(&fresh_row.key) {
            Some(old) if old.hash == hash && old.producer == fresh_row.producer => {
                out.unchanged += 1;
            }
            Some(_) => out.updates.push(Upsert {
                key: fresh_row.key,
                row: fresh_row.row,
                hash,
                producer: fresh_row.producer,
            }),
            None => out.inserts.push(Upsert {
                key: fresh_row.key,
                row: fresh_row.row,
                hash,
                producer: fresh_row.producer,
            }),
        }
    }
    let mut deletes: Vec<Key> = stored
        .iter()
        .filter(|(key, old)| !seen.contains(*key) && owned_by_batch(old))
        .map(|(key, _)| key.clone())
        .collect();
    deletes.sort();
    out.deletes = deletes;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(id: &str, name: &str, producer: Option<&str>) -> FreshRow {
        FreshRow {
            key: Key::new([id]),
            row: Row::new().with("id", id).with("name", name),
            producer: producer.map(|p| Key::new([p])),
        }
    }

    fn stored_of(rows: &[FreshRow]) -> HashMap<Key, Stored> {
        rows.iter()
            .map(|r| {
                (
                    r.key.clone(),
                    Stored {
                        hash: row_hash(&r.row),
                        producer: r.producer.clone(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn unchanged_rows_are_not_written() {
        let rows = vec![fresh("1", "a", None), fresh("2", "b", None)];
        let stored = stored_of(&rows);
        let d = diff(rows, &stored, |_| false);
        assert!(d.is_empty());
        assert_eq!(d.unchanged, 2);
    }

    #[test]
    fn new_changed_and_vanished_rows() {
        let before = vec![
            fresh("1", "a", Some("k")),
            fresh("2", "b", Some("k")),
            fresh("3", "c", Some("other")),
        ];
        let stored = stored_of(&before);
        let now = vec![
            fresh("1", "a", Some("k")),
            fresh("2", "B", Some("k")),
            fresh("4", "d", Some("k")),
        ];
        let d = diff(now, &stored, |s| s.producer == Some(Key::new(["k"])));
        assert_eq!(
            d.inserts.iter().map(|u| u.key.clone()).collect::<Vec<_>>(),
            vec![Key::new(["4"])]
        );
        assert_eq!(
            d.updates.iter().map(|u| u.key.clone()).collect::<Vec<_>>(),
            vec![Key::new(["2"])]
        );
        // Row 3 belongs to another key: untouched.
        assert!(d.deletes.is_empty());
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn rows_a_key_no_longer_produces_are_deleted() {
        let before = vec![fresh("1", "a", Some("k")), fresh("2", "b", Some("k"))];
        let stored = stored_of(&before);
        let d = diff(vec![fresh("1", "a", Some("k"))], &stored, |s| {
            s.producer == Some(Key::new(["k"]))
        });
        assert_eq!(d.deletes, vec![Key::new(["2"])]);
    }

    #[test]
    fn duplicate_keys_in_a_batch_keep_the_first_row() {
        let d = diff(
            vec![fresh("1", "first", None), fresh("1", "second", None)],
            &HashMap::new(),
            |_| false,
        );
        assert_eq!(d.inserts.len(), 1);
        assert_eq!(d.inserts[0].row.text("name"), Some("first"));
    }
}
