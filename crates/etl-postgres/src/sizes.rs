//! How much room the bookkeeping takes beside the data: per table its rows, tombstones and
//! bytes, per step its key table, and the embedding cache (`etl status`, the benchmark).

use sqlx::PgPool;

use etl_core::store::StoreError;

use crate::error::db;
use crate::schema::{keys_table, meta_table};

/// One data table and its row metadata.
#[derive(Debug, Clone)]
pub struct TableSize {
    pub table: String,
    pub live_rows: i64,
    /// Metadata of deleted rows, kept so that consumers see the deletes.
    pub tombstones: i64,
    pub data_bytes: i64,
    pub meta_bytes: i64,
}

/// The sizes of `tables` (data and metadata, indexes included).
pub async fn table_sizes(pool: &PgPool, tables: &[String]) -> Result<Vec<TableSize>, StoreError> {
    let mut out = Vec::new();
    for table in tables {
        let what = || format!("measuring table `{table}` and its metadata");
        let meta = meta_table(table);
        let (live, tombstones): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE delete_ts IS NULL), count(*) FILTER (WHERE delete_ts IS NOT NULL) FROM {meta}"
        ))
        .fetch_one(pool)
        .await
        .map_err(|e| db(what(), e))?;
        let (data_bytes, meta_bytes): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(pg_total_relation_size(to_regclass($1)), 0)::bigint,
                    coalesce(pg_total_relation_size(to_regclass($2)), 0)::bigint",
        )
        .bind(crate::namespace::data(table))
        .bind(&meta)
        .fetch_one(pool)
        .await
        .map_err(|e| db(what(), e))?;
        out.push(TableSize {
            table: table.clone(),
            live_rows: live,
            tombstones,
            data_bytes,
            meta_bytes,
        });
    }
    Ok(out)
}

/// The bytes of each step's key table.
pub async fn key_table_bytes(
    pool: &PgPool,
    steps: &[String],
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut out = Vec::new();
    for step in steps {
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT pg_total_relation_size(to_regclass($1))")
                .bind(keys_table(step))
                .fetch_one(pool)
                .await
                .map_err(|e| db(format!("measuring the keys of step `{step}`"), e))?;
        out.push((step.clone(), bytes.unwrap_or(0)));
    }
    Ok(out)
}

/// The bytes of the whole bookkeeping schema, and of the embedding cache within it.
pub async fn schema_bytes(pool: &PgPool) -> Result<(i64, i64), StoreError> {
    sqlx::query_as(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint,
                coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname = 'embedding_cache'), 0)::bigint
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(crate::namespace::current().book_schema())
    .fetch_one(pool)
    .await
    .map_err(|e| db("measuring the bookkeeping schema", e))
}
