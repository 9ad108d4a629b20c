//! `etl status`: per step, how many keys are known, pending and failed, how the last run went,
//! and the latest errors.

use std::path::Path;

use etl_core::store::Store;

use crate::exit::Exit;
use crate::SelectArgs;

pub async fn status(config: &Path, select: &SelectArgs) -> Exit {
    let (pipeline, selected) = match super::load_selected(config, select, false) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let store = match super::open_store(&pipeline, true).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let ns = etl_postgres::namespace::current();
    println!(
        "pipeline: {} (data tables in schema {}, bookkeeping in schema {})",
        ns.label(),
        ns.data_schema(),
        ns.book_schema()
    );
    println!(
        "{:<24} {:<9} {:>9} {:>8} {:>7}  {:<22} last outcome",
        "step", "kind", "keys/rows", "pending", "failed", "last finished"
    );
    let mut any_failed = false;
    for i in selected {
        let step = &pipeline.steps[i];
        let s = match store.status(step).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Service;
            }
        };
        any_failed |= s.keys_failed > 0;
        println!(
            "{:<24} {:<9} {:>9} {:>8} {:>7}  {:<22} {}",
            step.name,
            step.kind.as_str(),
            s.keys_total,
            s.keys_pending,
            s.keys_failed,
            s.last_finished.as_deref().unwrap_or("never"),
            s.last_outcome.as_deref().unwrap_or("-"),
        );
        if let Some(e) = &s.last_error {
            println!("    step error: {e}");
        }
        for (key, attempts, error) in &s.latest_errors {
            println!(
                "    key {key} failed ({attempts} attempt{}): {error}",
                if *attempts == 1 { "" } else { "s" }
            );
        }
    }
    if let Err(e) = print_bookkeeping(store.pool(), &pipeline).await {
        eprintln!("error: {e}");
        return Exit::Service;
    }
    if let Err(e) = print_vector_indexes(store.pool()).await {
        eprintln!("error: {e}");
        return Exit::Service;
    }
    if let Err(e) = print_workers(store.pool()).await {
        eprintln!("error: {e}");
        return Exit::Service;
    }
    if any_failed {
        Exit::KeysFailed
    } else {
        Exit::Ok
    }
}

/// The bookkeeping beside each table: its metadata (tombstones included) against the data.
async fn print_bookkeeping(
    pool: &sqlx::PgPool,
    pipeline: &etl_core::Pipeline,
) -> Result<(), String> {
    use etl_postgres::history::summary::bytes;
    let tables: Vec<String> = pipeline.tables.keys().cloned().collect();
    let sizes = etl_postgres::sizes::table_sizes(pool, &tables)
        .await
        .map_err(|e| e.to_string())?;
    println!();
    println!(
        "{:<28} {:>9} {:>10} {:>10} {:>10}",
        "table", "rows", "tombstones", "data", "bookkeeping"
    );
    for t in &sizes {
        println!(
            "{:<28} {:>9} {:>10} {:>10} {:>10}",
            t.table,
            t.live_rows,
            t.tombstones,
            bytes(t.data_bytes.max(0) as u64),
            bytes(t.meta_bytes.max(0) as u64)
        );
    }
    let steps: Vec<String> = pipeline
        .steps
        .iter()
        .filter(|s| s.kind != etl_core::StepKind::Extract)
        .map(|s| s.name.clone())
        .collect();
    let keys: i64 = etl_postgres::sizes::key_table_bytes(pool, &steps)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|(_, b)| b)
        .sum();
    let (schema, cache) = etl_postgres::sizes::schema_bytes(pool)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "bookkeeping in all: {} (steps' keys {}, embedding cache {})",
        bytes(schema.max(0) as u64),
        bytes(keys.max(0) as u64),
        bytes(cache.max(0) as u64)
    );
    println!();
    Ok(())
}

/// The workers alive (seen within `ETL_LEASE_TIMEOUT`) and the batches they hold.
async fn print_workers(pool: &sqlx::PgPool) -> Result<(), String> {
    let lease = super::worker::lease_timeout()?;
    let live = etl_postgres::queue::live_workers(pool, lease)
        .await
        .map_err(|e| e.to_string())?;
    println!();
    println!("workers alive: {}", live.len());
    for w in live {
        let holds = if w.leases.is_empty() {
            "no batch".to_string()
        } else {
            w.leases
                .iter()
                .map(|(step, id)| format!("{step} batch {id}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  worker {} ({}, pid {}): seen {:.1}s ago, holds {holds}",
            w.worker, w.host, w.pid, w.seen_secs_ago
        );
    }
    Ok(())
}

/// The vector index in force on each embedding table (`etl migrate` applies EMBEDDINGS_INDEX).
async fn print_vector_indexes(pool: &sqlx::PgPool) -> Result<(), String> {
    use etl_postgres::vector_index;
    for t in vector_index::vector_tables(pool)
        .await
        .map_err(|e| e.to_string())?
    {
        let found = vector_index::indexes_of(pool, &t.table)
            .await
            .map_err(|e| e.to_string())?;
        let text = if found.is_empty() {
            "none".to_string()
        } else {
            found
                .iter()
                .map(|(name, f, valid)| {
                    format!(
                        "{} `{name}`{}",
                        f.describe(),
                        if *valid {
                            ""
                        } else {
                            " (invalid: run etl migrate)"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "vector index of {} ({} vector({})): {text}",
            t.table, t.column, t.dim
        );
    }
    Ok(())
}
