//! Vector indexes set aside while an embedding step loads many rows.
//!
//! Inserting into a pgvector HNSW index row by row costs about ten times what building the
//! index over the loaded table does (30,000 vectors of 256 dimensions here: 70 s against 7 s).
//! So when a run is about to write many rows compared with what the table holds, the step
//! records the table's vector indexes in `etl.deferred_indexes`, drops them, loads, and makes
//! them again from the recorded definitions when the run ends. Whether it is about to write is
//! told by its first batch that must ask the model for many of its texts ([`Candidate`]): texts
//! the cache holds mostly give back the rows already stored. A run that dies in between
//! leaves the definitions recorded; the step's next run makes the indexes again. Meanwhile,
//! searches still work, by scanning the table.

use sqlx::PgPool;

use etl_core::StepError;
use etl_postgres::ident::qualified;

/// Defer when the pending keys are at least this fraction of the rows the table has.
const MIN_FRACTION: f64 = 0.125;

/// A batch that must send the model at least this share of its texts makes a candidate run a
/// bulk load. Texts already in the cache mostly come back as the rows already stored (a full
/// refresh, or a data-model edit that touches every node without changing its texts), and
/// those write nothing.
const BULK_MISS_SHARE: f64 = 0.125;

/// A run that may turn out a bulk load: its pending keys, until the first batch that has to
/// ask the model for [`BULK_MISS_SHARE`] of its texts takes them (see [`Candidate::take`]).
#[derive(Debug, Default)]
pub struct Candidate(std::sync::Mutex<Option<u64>>);

impl Candidate {
    /// Starts a run: a candidate with `pending` keys, or none.
    pub fn start(&self, pending: Option<u64>) {
        *self.0.lock().expect("bulk candidate lock") = pending;
    }

    /// The run's pending keys, once, when a batch that must send the model `misses` of its
    /// `texts` (distinct) shows the candidate run to be a bulk load.
    pub fn take(&self, misses: usize, texts: usize) -> Option<u64> {
        if misses == 0 || (misses as f64) < BULK_MISS_SHARE * texts as f64 {
            return None;
        }
        self.0.lock().expect("bulk candidate lock").take()
    }
}

fn sql_error(what: &str, table: &str, e: sqlx::Error) -> StepError {
    StepError::transient(format!("{what} of table `{table}`: {e}"))
}

/// Drops `table`'s vector indexes for a load of about `pending` rows, if that pays, recording
/// their definitions first. (The caller decides from how many rows a load is a bulk load.)
pub async fn defer(pool: &PgPool, table: &str, pending: u64) -> Result<(), StepError> {
    let rows: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}",
        etl_postgres::ident::quote_ident(table)
    ))
    .fetch_one(pool)
    .await
    .map_err(|e| sql_error("counting the rows", table, e))?;
    if (pending as f64) < MIN_FRACTION * rows as f64 {
        return Ok(());
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| sql_error("deferring the vector indexes", table, e))?;
    let indexes: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, pg_get_indexdef(i.indexrelid)
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_am a ON a.oid = c.relam
          WHERE i.indrelid = to_regclass(quote_ident($1)) AND a.amname IN ('hnsw', 'ivfflat')",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| sql_error("reading the vector indexes", table, e))?;
    for (schema, name, definition) in &indexes {
        sqlx::query(&format!(
            "INSERT INTO {book}.deferred_indexes (table_name, index_name, definition)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            book = etl_postgres::namespace::book_schema()
        ))
        .bind(table)
        .bind(qualified(schema, name))
        .bind(definition)
        .execute(&mut *tx)
        .await
        .map_err(|e| sql_error("recording a vector index", table, e))?;
        sqlx::query(&format!("DROP INDEX IF EXISTS {}", qualified(schema, name)))
            .execute(&mut *tx)
            .await
            .map_err(|e| sql_error("dropping a vector index", table, e))?;
    }
    tx.commit()
        .await
        .map_err(|e| sql_error("deferring the vector indexes", table, e))?;
    if !indexes.is_empty() {
        tracing::info!(
            table,
            indexes = indexes.len(),
            pending,
            "vector indexes set aside for a bulk load"
        );
    }
    Ok(())
}

/// How Postgres builds an index again.
#[derive(Debug, Clone, Copy)]
pub struct Build<'a> {
    /// `maintenance_work_mem` for the build (e.g. `512MB`): an HNSW build whose graph does not
    /// fit in it is several times slower (300,000 vectors of 256 dimensions: over 10 minutes
    /// with Postgres's default 64MB). Empty: the server's setting.
    pub memory: &'a str,
    /// Parallel workers for the build, beside the building process, which works too. Postgres
    /// plans workers by the size of the table's main fork, and a 1024-dimension vector lives
    /// in TOAST, so it would plan none: the table's `parallel_workers` is set for the build and
    /// reset after. 30,000 vectors of 1024 dimensions on 2 cores: 40.7 s alone, 18.4 s with
    /// 1 worker, 22.0 s with 2 (three processes on two cores, each slower for the others).
    pub workers: u64,
}

/// Makes again every vector index of `table` that a run set aside (this run's or a run that
/// died), and forgets it.
pub async fn restore(pool: &PgPool, table: &str, build: Build<'_>) -> Result<(), StepError> {
    let build_memory = build.memory;
    let quoted = etl_postgres::ident::quote_ident(table);
    let deferred: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT index_name, definition FROM {book}.deferred_indexes WHERE table_name = $1",
        book = etl_postgres::namespace::book_schema()
    ))
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("reading the deferred vector indexes", table, e))?;
    for (name, definition) in deferred {
        let started = std::time::Instant::now();
        let mut tx = pool
            .begin()
            .await
            .map_err(|e| sql_error("making a vector index", table, e))?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| sql_error("looking up a vector index", table, e))?;
        if !exists {
            if !build_memory.is_empty() {
                sqlx::query("SELECT set_config('maintenance_work_mem', $1, true)")
                    .bind(build_memory)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        StepError::fatal(format!(
                            "index_build_memory `{build_memory}` is not a memory size Postgres accepts (e.g. 512MB): {e}"
                        ))
                    })?;
            }
            if build.workers > 0 {
                sqlx::query("SELECT set_config('max_parallel_maintenance_workers', $1, true)")
                    .bind(build.workers.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| sql_error("allowing a parallel index build", table, e))?;
                sqlx::query(&format!(
                    "ALTER TABLE {quoted} SET (parallel_workers = {})",
                    build.workers.min(64)
                ))
                .execute(&mut *tx)
                .await
                .map_err(|e| sql_error("allowing a parallel index build", table, e))?;
            }
            // The definition is Postgres's own text for the index (pg_get_indexdef).
            sqlx::query(&definition)
                .execute(&mut *tx)
                .await
                .map_err(|e| sql_error("making a vector index", table, e))?;
            if build.workers > 0 {
                sqlx::query(&format!("ALTER TABLE {quoted} RESET (parallel_workers)"))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| sql_error("allowing a parallel index build", table, e))?;
            }
        }
        sqlx::query(&format!(
            "DELETE FROM {book}.deferred_indexes WHERE table_name = $1 AND index_name = $2",
            book = etl_postgres::namespace::book_schema()
        ))
        .bind(table)
        .bind(&name)
        .execute(&mut *tx)
        .await
        .map_err(|e| sql_error("forgetting a deferred vector index", table, e))?;
        tx.commit()
            .await
            .map_err(|e| sql_error("making a vector index", table, e))?;
        tracing::info!(
            table,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "vector index made again after the load"
        );
    }
    Ok(())
}
