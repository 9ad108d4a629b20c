//! What a transform's run would delete, counted before it deletes anything: the pending keys
//! whose inputs are all gone (a key-covering input holds no live row for them), the live output
//! rows those keys produced, and the keys a sink holds outside. The engine's mass-delete guard
//! decides from these counts.

use sqlx::PgPool;

use etl_core::store::StoreError;
use etl_core::{Key, StepDef, TableDef};

use crate::error::db;
use crate::ident::{column_list, quote_ident};
use crate::schema::{keys_table, meta_table};

/// Keys counted per statement: a `text[]` parameter of this many producers.
const CHUNK: usize = 10_000;

/// The condition on a key row `k` of `step` that no key-covering input holds a live row for
/// it any more; `None` when no input covers the key.
pub(crate) fn vanished_condition(step: &StepDef) -> Option<String> {
    let covering: Vec<_> = step.inputs.iter().filter(|i| i.covers_key).collect();
    if covering.is_empty() || step.key.is_empty() {
        return None;
    }
    let absent = covering
        .iter()
        .map(|input| {
            let on = input
                .join
                .iter()
                .map(|(k, c)| format!("m.{} = k.{}", quote_ident(c), quote_ident(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(
                "NOT EXISTS (SELECT 1 FROM {} AS m WHERE m.delete_ts IS NULL AND {on})",
                meta_table(&input.table)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    Some(absent)
}

/// The pending keys of `step` that vanished: no key-covering input has a live row for them.
pub async fn vanished_pending(pool: &PgPool, step: &StepDef) -> Result<Vec<Key>, StoreError> {
    let Some(absent) = vanished_condition(step) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT {} FROM {} AS k WHERE k.pending AND {absent}",
        column_list(&step.key, Some("k")),
        keys_table(&step.name)
    );
    let rows: Vec<sqlx::postgres::PgRow> =
        sqlx::query(&sql).fetch_all(pool).await.map_err(|e| {
            db(
                format!("counting what step `{}` would delete", step.name),
                e,
            )
        })?;
    let width = step.key.len();
    rows.iter()
        .map(|r| {
            use sqlx::Row as _;
            (0..width)
                .map(|i| r.try_get::<String, _>(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Key)
                .map_err(|e| db(format!("reading keys of step `{}`", step.name), e))
        })
        .collect()
}

/// Of the live rows of `table`, how many any of `producers` produced.
pub async fn count_by_producer(
    pool: &PgPool,
    table: &TableDef,
    producers: &[Key],
) -> Result<u64, StoreError> {
    let mut total = 0u64;
    for chunk in producers.chunks(CHUNK) {
        let encoded: Vec<String> = chunk.iter().map(Key::encode).collect();
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE delete_ts IS NULL AND producer_key = ANY($1::text[])",
            meta_table(&table.name)
        ))
        .bind(encoded)
        .fetch_one(pool)
        .await
        .map_err(|e| db(format!("counting rows of `{}` by producer", table.name), e))?;
        total += n as u64;
    }
    Ok(total)
}

/// The keys a step processed successfully and still holds (a sink's items outside), counted
/// only as far as the step's mass-delete limit needs ([`etl_core::guard::live_needed`]), and
/// how many of `keys` are among them.
pub async fn held_keys(
    pool: &PgPool,
    step: &StepDef,
    keys: &[Key],
) -> Result<(u64, u64), StoreError> {
    let among = held_among(pool, step, keys).await?;
    let enough = etl_core::guard::live_needed(among, step.max_delete_fraction);
    let held = count_to(
        pool,
        &keys_table(&step.name),
        "is_success IS TRUE",
        enough,
        &format!("counting the keys of step `{}`", step.name),
    )
    .await?;
    Ok((held, among))
}

/// The rows of `table` (qualified and quoted) matching `filter`, counted no further than
/// `enough` (`u64::MAX`: all of them): the scan stops at the `enough`-th row it finds.
pub(crate) async fn count_to(
    pool: &PgPool,
    table: &str,
    filter: &str,
    enough: u64,
    what: &str,
) -> Result<u64, StoreError> {
    let n: i64 = if enough == u64::MAX {
        let sql = format!("SELECT count(*) FROM {table} WHERE {filter}");
        sqlx::query_scalar(&sql).fetch_one(pool).await
    } else {
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {filter} LIMIT $1) AS counted"
        );
        sqlx::query_scalar(&sql)
            .bind(enough.min(i64::MAX as u64) as i64)
            .fetch_one(pool)
            .await
    }
    .map_err(|e| db(what, e))?;
    Ok(n as u64)
}

/// How many of `keys` step `step` processed successfully and still holds.
async fn held_among(pool: &PgPool, step: &StepDef, keys: &[Key]) -> Result<u64, StoreError> {
    let table = keys_table(&step.name);
    let what = || format!("counting the keys of step `{}`", step.name);
    let width = step.key.len();
    let mut among = 0u64;
    for chunk in keys.chunks(CHUNK) {
        let columns: Vec<Vec<String>> = (0..width)
            .map(|i| chunk.iter().map(|k| k.0[i].clone()).collect())
            .collect();
        let params = (1..=width)
            .map(|i| format!("${i}::text[]"))
            .collect::<Vec<_>>()
            .join(", ");
        let names = (0..width)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let on = step
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{} = q.k{i}", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT count(*) FROM unnest({params}) AS q({names}) JOIN {table} AS t ON {on} WHERE t.is_success IS TRUE"
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for c in columns {
            q = q.bind(c);
        }
        among += q.fetch_one(pool).await.map_err(|e| db(what(), e))? as u64;
    }
    Ok(among)
}
