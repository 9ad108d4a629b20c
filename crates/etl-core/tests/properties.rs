//! Rules that must hold for any input, checked with generated rows and snapshots.
//!
//! * The row hash ignores column order and JSON key order, tells value types apart, and is a
//!   pure function of the row.
//! * Diffing: whatever sequence of snapshots a table goes through, applying each diff (and
//!   deleting what a complete snapshot no longer holds, as the extract does) leaves exactly the
//!   last snapshot's rows, and a snapshot equal to what is stored writes nothing.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::{json, Value as J};

use etl_core::diff::{diff, FreshRow, Stored};
use etl_core::row_hash::row_hash;
use etl_core::{Key, Row, Value};

fn json_leaf() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        "[a-z ]{0,8}".prop_map(J::String),
    ]
}

fn json_value() -> impl Strategy<Value = J> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-1.0e6f64..1.0e6).prop_map(Value::Float),
        "[a-z0-9 ]{0,12}".prop_map(Value::Text),
        json_value().prop_map(Value::Json),
        prop::collection::vec(-1.0f32..1.0, 0..4).prop_map(Value::Vector),
    ]
}

fn columns() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::btree_map("[a-z]{1,6}", value(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// The same JSON with every object's keys inserted in reverse order.
fn reversed(j: &J) -> J {
    match j {
        J::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m.iter().rev() {
                out.insert(k.clone(), reversed(v));
            }
            J::Object(out)
        }
        J::Array(items) => J::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn the_hash_ignores_column_order_and_json_key_order(cols in columns()) {
        let forward: Row = cols.iter().cloned().collect();
        let backward: Row = cols
            .iter()
            .rev()
            .map(|(c, v)| {
                let v = match v {
                    Value::Json(j) => Value::Json(reversed(j)),
                    other => other.clone(),
                };
                (c.clone(), v)
            })
            .collect();
        prop_assert_eq!(row_hash(&forward), row_hash(&backward));
        prop_assert_eq!(row_hash(&forward), row_hash(&forward.clone()));
    }

    #[test]
    fn the_hash_tells_value_types_apart(i in any::<i32>(), name in "[a-z]{1,6}") {
        let as_int = Row::new().with(name.clone(), Value::Int(i64::from(i)));
        let as_float = Row::new().with(name.clone(), Value::Float(f64::from(i)));
        let as_text = Row::new().with(name.clone(), Value::Text(i.to_string()));
        let as_json = Row::new().with(name.clone(), Value::Json(json!(i)));
        let hashes = [&as_int, &as_float, &as_text, &as_json].map(row_hash);
        for a in 0..hashes.len() {
            for b in a + 1..hashes.len() {
                prop_assert_ne!(hashes[a], hashes[b]);
            }
        }
        // A column named differently is a different row, whatever its value.
        let renamed = Row::new().with(format!("{name}x"), Value::Int(i64::from(i)));
        prop_assert_ne!(row_hash(&as_int), row_hash(&renamed));
    }

    #[test]
    fn any_sequence_of_snapshots_ends_in_the_last_snapshot(
        snapshots in prop::collection::vec(
            prop::collection::btree_map(0u8..12, (0u8..3, "[a-c]{0,2}"), 0..10),
            1..6,
        ),
        batch in 1usize..5,
    ) {
        // The store: key -> (hash, row).
        let mut stored: HashMap<Key, (Stored, Row)> = HashMap::new();
        for snapshot in &snapshots {
            let fresh: Vec<FreshRow> = snapshot
                .iter()
                .map(|(k, (n, s))| FreshRow {
                    key: Key::new([k.to_string()]),
                    row: Row::new()
                        .with("id", k.to_string())
                        .with("n", Value::Int(i64::from(*n)))
                        .with("s", s.as_str()),
                    producer: None,
                })
                .collect();
            let before: HashMap<Key, (Stored, Row)> = stored.clone();
            let mut written = 0usize;
            // Batch by batch, like the extract.
            for chunk in fresh.chunks(batch) {
                let view: HashMap<Key, Stored> = chunk
                    .iter()
                    .filter_map(|f| stored.get(&f.key).map(|(s, _)| (f.key.clone(), s.clone())))
                    .collect();
                let d = diff(chunk.to_vec(), &view, |_| false);
                prop_assert!(d.deletes.is_empty());
                for u in d.upserts() {
                    written += 1;
                    stored.insert(
                        u.key.clone(),
                        (Stored { hash: u.hash, producer: None }, u.row.clone()),
                    );
                }
            }
            // The snapshot is complete: what it does not hold goes.
            let keys: Vec<Key> = fresh.iter().map(|f| f.key.clone()).collect();
            stored.retain(|k, _| keys.contains(k));

            let got: BTreeMap<Key, Row> =
                stored.iter().map(|(k, (_, r))| (k.clone(), r.clone())).collect();
            let want: BTreeMap<Key, Row> =
                fresh.iter().map(|f| (f.key.clone(), f.row.clone())).collect();
            prop_assert_eq!(got, want);
            // Only new and changed rows were written.
            let changed = fresh
                .iter()
                .filter(|f| before.get(&f.key).map(|(_, r)| r) != Some(&f.row))
                .count();
            prop_assert_eq!(written, changed);
        }
    }
}
