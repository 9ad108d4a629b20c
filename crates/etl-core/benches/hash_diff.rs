//! Micro-benchmark: hashing and diffing rows, the engine's per-row work on every run.
//!
//! `cargo bench -p etl-core --bench hash_diff` prints rows/second for 1,000,000 node-like rows
//! (an id, a type and a JSON object of four attributes): hashing alone, then a diff of the same
//! rows against stored hashes where 1% changed (what a no-op or small-edit run does).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use etl_core::diff::{diff, FreshRow, Stored};
use etl_core::row_hash::row_hash;
use etl_core::{Key, Row};

fn rows(n: usize, edit_every: usize) -> Vec<FreshRow> {
    (0..n)
        .map(|i| {
            let name = if edit_every > 0 && i % edit_every == 0 {
                format!("Person {i} (edited)")
            } else {
                format!("Person {i}")
            };
            let id = format!("person:{i}");
            FreshRow {
                key: Key::new([id.as_str(), "person"]),
                row: Row::new()
                    .with("node_id", id.as_str())
                    .with("node_type", "person")
                    .with(
                        "attributes",
                        serde_json::json!({"name": name, "age": (i % 90) as i64, "city": "Lisbon", "score": 0.5}),
                    ),
                producer: None,
            }
        })
        .collect()
}

fn main() {
    let n = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    let base = rows(n, 0);

    let t = Instant::now();
    let hashes: Vec<_> = base.iter().map(|r| black_box(row_hash(&r.row))).collect();
    let hash_secs = t.elapsed().as_secs_f64();
    let stored: HashMap<Key, Stored> = base
        .iter()
        .zip(hashes)
        .map(|(r, hash)| {
            (
                r.key.clone(),
                Stored {
                    hash,
                    producer: None,
                },
            )
        })
        .collect();

    // As in a run: per batch of 10,000 rows the store returns the stored hashes of those keys,
    // and the batch is diffed against them.
    let edited = rows(n, 100);
    let batches: Vec<(Vec<FreshRow>, HashMap<Key, Stored>)> = edited
        .chunks(10_000)
        .map(|chunk| {
            let stored_batch = chunk
                .iter()
                .map(|r| (r.key.clone(), stored[&r.key].clone()))
                .collect();
            (chunk.to_vec(), stored_batch)
        })
        .collect();
    let t = Instant::now();
    let mut changed = 0;
    for (fresh, stored_batch) in batches {
        let d = diff(fresh, &stored_batch, |_| false);
        changed += d.updates.len();
    }
    let diff_secs = t.elapsed().as_secs_f64();
    assert_eq!(changed, n.div_ceil(100));

    println!("rows: {n}");
    println!(
        "hash:          {:>10.0} rows/s ({hash_secs:.2} s)",
        n as f64 / hash_secs
    );
    println!(
        "hash+diff 1%:  {:>10.0} rows/s ({diff_secs:.2} s, {changed} changed)",
        n as f64 / diff_secs
    );
}
