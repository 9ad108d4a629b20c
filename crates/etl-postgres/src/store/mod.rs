//! [`PgStore`]: the engine's [`Store`] on Postgres.
//!
//! Every read and write is set-based: keys travel as one `text[]` parameter per key column and
//! are joined with `unnest`, rows as one `text[]` per column cast to the column's type, so a batch
//! of any size is a handful of statements, never a round trip per row.

//!
//! | module | owns |
//! | --- | --- |
//! | `sql` | the SQL pieces every statement is built from: keys as arrays, joins, values as text |
//! | `writes` | a batch's commit: upserts, deletes and key bookkeeping in one transaction |
//! | `capture` | turning input changes into pending keys, paging them, `etl plan`'s counts |
//! | `first_capture` | a step's first capture, loaded into its key table without the indexes |
//! | `lookups` | stored hashes, produced rows, input rows of a batch, what a run would delete |
//! | `runs` | run records, memos and `etl status` |
//! | `settle` | settling the pending keys of a step that produces nothing, unread |
//! | `tombstones` | pruning deleted rows' metadata once every reader has seen it |
//! | `vacuum` | vacuuming the key tables a run rewrote, once its steps have ended |

mod capture;
mod first_capture;
mod lookups;
mod runs;
mod settle;
mod sql;
mod tombstones;
mod vacuum;
mod writes;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use etl_core::diff::Stored;
use etl_core::history::{Invocation, RunOutcome};
use etl_core::report::StepReport;
use etl_core::step::InputBatch;
use etl_core::store::{
    Capture, Commit, Outcome, PlanCounts, ProcessedKeys, StepLock, StepStatus, Store, StoreError,
    TargetDeletes,
};
use etl_core::{Key, Pipeline, StepDef, StepKind, TableDef};

use crate::error::db;
use crate::schema::{self, meta_table, TableInfo};

pub struct PgStore {
    pool: PgPool,
    /// Sessions for step locks (see [`crate::lock`]).
    locks: PgPool,
    tables: RwLock<HashMap<String, Arc<TableInfo>>>,
    /// Per table, the steps of the pipeline that read it (transforms and sinks): their
    /// watermarks decide which of its tombstones every consumer has seen (see `capture`).
    consumers: RwLock<HashMap<String, Vec<String>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects a pool. The URL is never part of an error message (it may hold a password).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = crate::session::connect_options(url)
            .map_err(|e| db("reading the database URL (check DB_CONN_URI)", e))?;
        let settings = crate::session::store_settings();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let settings = settings.clone();
                Box::pin(async move { crate::session::apply(conn, &settings).await })
            })
            .connect_with(options.clone())
            .await
            .map_err(|e| db("connecting to Postgres (check DB_CONN_URI)", e))?;
        Ok(PgStore {
            pool,
            locks: crate::lock::lock_pool(options),
            tables: RwLock::new(HashMap::new()),
            consumers: RwLock::new(HashMap::new()),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// What `prepare` found of a table: its columns and key (none before `prepare`).
    pub fn table_info(&self, table: &str) -> Option<Arc<TableInfo>> {
        self.tables.read().expect("table cache").get(table).cloned()
    }

    fn info(&self, table: &str) -> Result<Arc<TableInfo>, StoreError> {
        self.tables
            .read()
            .expect("table cache")
            .get(table)
            .cloned()
            .ok_or_else(|| StoreError::Schema {
                table: table.to_string(),
                message: "is not prepared (a bug: prepare() runs before any read or write)".into(),
            })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn prepare(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
        // Three catalogue queries for every table and step; on a prepared database nothing
        // else (no DDL), and all on one connection, so a run's start opens no more.
        let existing = schema::existing_bookkeeping(&self.pool).await?;
        let defs: Vec<TableDef> = pipeline.tables.values().cloned().collect();
        let infos = schema::inspect_all(&self.pool, &defs).await?;
        let steps: Vec<&StepDef> = pipeline
            .steps
            .iter()
            .filter(|s| s.kind != StepKind::Extract)
            .collect();
        let names: Vec<String> = defs
            .iter()
            .map(|d| format!("meta__{}", d.name))
            .chain(steps.iter().map(|s| format!("keys__{}", s.name)))
            .collect();
        let keys = schema::bookkeeping_keys(&self.pool, &names).await?;
        let (existing, keys) = (&existing, &keys);
        futures::future::try_join_all(
            defs.iter()
                .map(|def| schema::ensure_meta(&self.pool, def, existing, keys)),
        )
        .await?;
        futures::future::try_join_all(
            steps
                .iter()
                .map(|step| schema::ensure_keys(&self.pool, step, existing, keys)),
        )
        .await?;
        let infos = infos
            .into_iter()
            .map(|info| (info.def.name.clone(), Arc::new(info)));
        *self.tables.write().expect("table cache") = infos.into_iter().collect();
        let mut consumers: HashMap<String, Vec<String>> = HashMap::new();
        for step in pipeline
            .steps
            .iter()
            .filter(|s| s.kind != StepKind::Extract)
        {
            for input in &step.inputs {
                let readers = consumers.entry(input.table.clone()).or_default();
                if !readers.contains(&step.name) {
                    readers.push(step.name.clone());
                }
            }
        }
        *self.consumers.write().expect("consumers") = consumers;
        Ok(())
    }

    async fn lock(&self, step: &StepDef, wait: bool) -> Result<Box<dyn StepLock>, StoreError> {
        Ok(Box::new(
            crate::lock::acquire(&self.locks, step, wait).await?,
        ))
    }

    async fn stored(
        &self,
        table: &TableDef,
        keys: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError> {
        self.stored_hashes(table, keys).await
    }

    async fn stored_by_producer(
        &self,
        table: &TableDef,
        producers: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError> {
        self.produced_by(table, producers).await
    }

    async fn live_keys_not_in(
        &self,
        table: &TableDef,
        keep: &(dyn for<'k> Fn(&'k Key) -> bool + Sync),
    ) -> Result<(u64, Vec<Key>), StoreError> {
        self.live_keys_outside(table, keep).await
    }

    async fn count_live(&self, table: &TableDef) -> Result<u64, StoreError> {
        self.count_live_to(table, u64::MAX).await
    }

    async fn count_live_to(&self, table: &TableDef, enough: u64) -> Result<u64, StoreError> {
        crate::deletions::count_to(
            &self.pool,
            &meta_table(&table.name),
            "delete_ts IS NULL",
            enough,
            &format!("counting rows of `{}`", table.name),
        )
        .await
    }

    async fn commit(&self, step: &StepDef, commit: Commit) -> Result<(), StoreError> {
        self.commit_batch(step, commit).await
    }

    async fn capture(&self, step: &StepDef, full_refresh: bool) -> Result<Capture, StoreError> {
        self.capture_changes(step, full_refresh).await
    }

    async fn pending_keys(
        &self,
        step: &StepDef,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError> {
        self.pending_page(step, after, limit).await
    }

    async fn settle_unread(&self, step: &StepDef) -> Result<Option<u64>, StoreError> {
        self.settle_pending(step).await
    }

    async fn read_inputs(&self, step: &StepDef, keys: &[Key]) -> Result<InputBatch, StoreError> {
        self.input_rows(step, keys).await
    }

    async fn deletion_preview(
        &self,
        step: &StepDef,
        outside: &str,
    ) -> Result<Vec<TargetDeletes>, StoreError> {
        self.deletions_preview(step, outside).await
    }

    async fn plan(&self, step: &StepDef) -> Result<PlanCounts, StoreError> {
        self.plan_step(step).await
    }

    async fn plan_keys(&self, step: &StepDef, limit: usize) -> Result<Vec<Key>, StoreError> {
        self.plan_step_keys(step, limit).await
    }

    async fn run_started(&self, step: &StepDef) -> Result<(), StoreError> {
        self.record_start(step).await
    }

    async fn run_finished(
        &self,
        step: &StepDef,
        outcome: &Outcome,
        counters: &BTreeMap<String, u64>,
        elapsed: Duration,
    ) -> Result<(), StoreError> {
        self.record_finish(step, outcome, counters, elapsed).await
    }

    async fn memos(&self, steps: &[&StepDef]) -> Result<HashMap<String, String>, StoreError> {
        self.read_memos(steps).await
    }

    async fn batches_done(&self, step: &StepDef) -> Result<(), StoreError> {
        // The index of pending keys a first capture left out (see `first_capture`).
        let what = || format!("making the index of pending keys of step `{}`", step.name);
        let present: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(schema::pending_index(&step.name))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db(what(), e))?;
        if !present {
            sqlx::query(&schema::create_pending_index(step))
                .execute(&self.pool)
                .await
                .map_err(|e| db(what(), e))?;
            // The table was just loaded whole, and autovacuum may not sample it for minutes.
            // Without statistics the planner takes half the keys for pending and counts them
            // with a scan of the table (2,000,000 keys: 0.8 s of a run with nothing to do)
            // instead of reading the empty index.
            sqlx::query(&format!("ANALYZE {}", schema::keys_table(&step.name)))
                .execute(&self.pool)
                .await
                .map_err(|e| db(format!("sampling the key table of step `{}`", step.name), e))?;
        }
        Ok(())
    }

    async fn after_run(&self, processed: &[ProcessedKeys<'_>]) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let asked = vacuum::vacuum_rewritten(&self.pool, processed).await?;
        if !asked.is_empty() {
            tracing::debug!(tables = asked.len(), elapsed = ?started.elapsed(), "asked Postgres to vacuum the key tables the run rewrote");
        }
        Ok(())
    }

    async fn set_memo(&self, step: &StepDef, memo: Option<&str>) -> Result<(), StoreError> {
        self.write_memo(step, memo).await
    }

    async fn status(&self, step: &StepDef) -> Result<StepStatus, StoreError> {
        self.step_status(step).await
    }

    async fn run_begun(&self, invocation: &Invocation) -> Result<i64, StoreError> {
        crate::history::run_begun(&self.pool, invocation).await
    }

    async fn step_reported(&self, run: i64, report: &StepReport) -> Result<(), StoreError> {
        crate::history::step_reported(&self.pool, run, report).await
    }

    async fn run_ended(
        &self,
        run: i64,
        outcome: RunOutcome,
        retention: Duration,
    ) -> Result<(), StoreError> {
        crate::history::run_ended(&self.pool, run, outcome, retention).await
    }
}
