//! An extract's run: its snapshot is diffed batch by batch against the store (written in the
//! background while the extract reads on), and once it is complete the keys it did not contain
//! are deleted, within the mass-delete guard. A table the extract marked `changes_only` keeps
//! the keys not written, and loses only those the extract deleted by name.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use crate::dag::{Pipeline, StepDef};
use crate::diff::{diff, FreshRow, TableDiff};
use crate::report::{StepReport, TableCounts};
use crate::retry::{retry, RetryPolicy};
use crate::step::{SnapshotSink, StepContext, StepError, StepImpl};
use crate::store::{Commit, Store};
use crate::value::{Key, Row};

use super::batches::clone_commit;
use super::{RunOptions, Runner, Stop};

impl Runner {
    pub(super) async fn run_extract(
        &self,
        step: &StepDef,
        opts: &RunOptions,
        ctx: &StepContext,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let StepImpl::Extract(extract) = &step.implementation else {
            unreachable!("run_extract is called for extracts")
        };
        self.progress.started(&step.name, None);
        if let Some(memo) = ctx.memo.as_deref().filter(|_| !opts.full_refresh) {
            if extract.unchanged_since(ctx, memo).await? {
                tracing::info!("the source is unchanged since the last complete snapshot");
                ctx.counters.add("source_unchanged", 1);
                if ctx.dry_run {
                    report.plan = Some(crate::store::PlanCounts::default());
                }
                return Ok(());
            }
            // Whatever this run writes, the old memo no longer describes the tables.
            if !ctx.dry_run {
                retry(&opts.retry, "forget the step's memo", || {
                    self.store.set_memo(step, None)
                })
                .await?;
            }
        }
        let mut writer = SnapshotWriter::new(
            self.store.clone(),
            self.pipeline.clone(),
            step,
            opts.retry,
            ctx.dry_run,
        );
        writer.stop = opts.stop.clone();
        // A full refresh reads the source in full: the extract sees no memo.
        let read = if opts.full_refresh {
            extract.extract(&ctx.without_memo(), &mut writer).await
        } else {
            extract.extract(ctx, &mut writer).await
        };
        let flushed = writer.flush_all().await;
        report.tables = writer.counts.clone();
        read?;
        flushed?;
        writer.finish(opts.allow_mass_delete).await?;
        report.tables = writer.counts.clone();
        self.keep_memo(step, ctx, opts).await;
        if writer.duplicates > 0 {
            ctx.counters
                .add("duplicate_keys_ignored", writer.duplicates);
        }
        if ctx.dry_run {
            let mut plan = crate::store::PlanCounts::default();
            for c in writer.counts.values() {
                plan.new += c.inserted;
                plan.changed += c.updated;
                plan.deleted += c.deleted;
            }
            report.plan = Some(plan);
            report.tables.clear();
        }
        Ok(())
    }
}

/// Receives an extract's snapshot, diffs it batch by batch, and decides deletions at the end.
pub struct SnapshotWriter {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    step: StepDef,
    retry: RetryPolicy,
    dry_run: bool,
    buffers: BTreeMap<String, Vec<FreshRow>>,
    /// Digests of the keys seen so far, per table: 16 bytes a key, not the rows.
    seen: BTreeMap<String, HashSet<[u8; 16]>>,
    counts: BTreeMap<String, TableCounts>,
    /// Tables whose rows this run are changes, not a snapshot.
    changes_only: BTreeSet<String>,
    /// Keys named for deletion, per `changes_only` table.
    deletes: BTreeMap<String, Vec<Key>>,
    duplicates: u64,
    in_flight: FuturesUnordered<tokio::task::JoinHandle<Result<(String, TableCounts), StepError>>>,
    /// The run's stop signal: once asked, no new batch is sent.
    stop: Stop,
}

/// Batches of a snapshot compared and written at once, while the extract reads on.
const FLUSHES_IN_FLIGHT: usize = 2;

impl SnapshotWriter {
    fn new(
        store: Arc<dyn Store>,
        pipeline: Arc<Pipeline>,
        step: &StepDef,
        retry: RetryPolicy,
        dry_run: bool,
    ) -> Self {
        let mut counts = BTreeMap::new();
        let mut seen = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for o in &step.outputs {
            counts.insert(o.clone(), TableCounts::default());
            seen.insert(o.clone(), HashSet::new());
            buffers.insert(o.clone(), Vec::new());
        }
        SnapshotWriter {
            store,
            pipeline,
            step: step.clone(),
            retry,
            dry_run,
            buffers,
            seen,
            counts,
            changes_only: BTreeSet::new(),
            deletes: BTreeMap::new(),
            duplicates: 0,
            in_flight: FuturesUnordered::new(),
            stop: Stop::default(),
        }
    }

    /// Sends a table's buffered rows to be compared and written, in the background: the
    /// extract goes on reading while up to [`FLUSHES_IN_FLIGHT`] batches are looked up and
    /// committed (their keys are distinct: duplicates never reach a buffer).
    async fn flush(&mut self, table: &str) -> Result<(), StepError> {
        let fresh = std::mem::take(self.buffers.get_mut(table).expect("output table"));
        if fresh.is_empty() {
            return Ok(());
        }
        if self.stop.requested() {
            // The batches in flight finish; this one and the rest of the snapshot wait for
            // the next run, which reads the source again.
            return Err(StepError::interrupted());
        }
        let def = self.pipeline.tables[table].clone();
        let store = self.store.clone();
        let step = self.step.clone();
        let retry_policy = self.retry;
        let dry_run = self.dry_run;
        let table = table.to_string();
        let span = tracing::debug_span!("batch", table = %table, rows = fresh.len());
        self.in_flight.push(tokio::spawn(
            async move {
                let keys: Vec<Key> = fresh.iter().map(|r| r.key.clone()).collect();
                let started = Instant::now();
                let stored = retry(&retry_policy, "read stored hashes", || {
                    store.stored(&def, &keys)
                })
                .await?;
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "stored hashes read"
                );
                let d = diff(fresh, &stored, |_| false);
                let counts = TableCounts {
                    inserted: d.inserts.len() as u64,
                    updated: d.updates.len() as u64,
                    unchanged: d.unchanged as u64,
                    deleted: 0,
                };
                if !dry_run && !d.is_empty() {
                    let commit = Commit {
                        tables: vec![(table.clone(), d)],
                        ..Commit::default()
                    };
                    retry(&retry_policy, "write batch", || {
                        store.commit(&step, clone_commit(&commit))
                    })
                    .await?;
                }
                Ok((table, counts))
            }
            .instrument(span),
        ));
        while self.in_flight.len() > FLUSHES_IN_FLIGHT {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Waits for one background flush and adds up its counts.
    async fn settle_one(&mut self) -> Result<(), StepError> {
        let Some(done) = self.in_flight.next().await else {
            return Ok(());
        };
        let (table, counts) =
            done.map_err(|e| StepError::fatal(format!("writing a batch panicked: {e}")))??;
        let c = self.counts.get_mut(&table).expect("output table");
        c.inserted += counts.inserted;
        c.updated += counts.updated;
        c.unchanged += counts.unchanged;
        Ok(())
    }

    /// Flushes every buffer and waits for every background flush.
    async fn flush_all(&mut self) -> Result<(), StepError> {
        let tables: Vec<String> = self.buffers.keys().cloned().collect();
        let mut first_error = None;
        for t in tables {
            if let Err(e) = self.flush(&t).await {
                first_error.get_or_insert(e);
            }
        }
        while !self.in_flight.is_empty() {
            if let Err(e) = self.settle_one().await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The snapshot is complete: delete what it no longer holds (for a `changes_only` table,
    /// the keys named for deletion that it holds and this run did not write), within the
    /// mass-delete guard.
    async fn finish(&mut self, allow_mass_delete: bool) -> Result<(), StepError> {
        for table in self.step.outputs.clone() {
            let def = self.pipeline.tables[&table].clone();
            let seen = &self.seen[&table];
            let (live, gone) = if self.changes_only.contains(&table) {
                let named: Vec<Key> = self
                    .deletes
                    .remove(&table)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|k| !seen.contains(&k.digest()))
                    .collect();
                if named.is_empty() {
                    continue;
                }
                let stored = retry(&self.retry, "read the keys to delete", || {
                    self.store.stored(&def, &named)
                })
                .await?;
                let gone: Vec<Key> = named
                    .into_iter()
                    .filter(|k| stored.contains_key(k))
                    .collect();
                if gone.is_empty() {
                    continue;
                }
                // Counted only as far as the limit needs: 1% of a 2,000,000-row table's rows
                // removed in Grist no longer reads the whole table to count it. A run allowed
                // to delete anything does not count at all.
                let live = if allow_mass_delete {
                    0
                } else {
                    let enough =
                        crate::guard::live_needed(gone.len() as u64, self.step.max_delete_fraction);
                    retry(&self.retry, "count stored rows", || {
                        self.store.count_live_to(&def, enough)
                    })
                    .await?
                };
                (live, gone)
            } else {
                // One pass over the stored keys, counting first, so that the guard decides
                // before anything is deleted.
                let in_snapshot = |k: &Key| seen.contains(&k.digest());
                retry(&self.retry, "list stored keys", || {
                    self.store.live_keys_not_in(&def, &in_snapshot)
                })
                .await?
            };
            self.delete(&table, live, gone, allow_mass_delete).await?;
        }
        Ok(())
    }

    /// Deletes `gone` from `table`, unless that is more than the step's `max_delete_fraction`
    /// of its `live` rows and the run does not allow it. `live` may be counted only as far as
    /// that decides ([`crate::guard::live_needed`]; nothing when the run allows it), so it is
    /// the table's size only when the run refuses.
    async fn delete(
        &mut self,
        table: &str,
        live: u64,
        gone: Vec<Key>,
        allow_mass_delete: bool,
    ) -> Result<(), StepError> {
        let missing = gone.len() as u64;
        tracing::debug!(table, missing, "rows to delete");
        if missing == 0 {
            return Ok(());
        }
        if !allow_mass_delete && !crate::guard::within(missing, live, self.step.max_delete_fraction)
        {
            return Err(StepError::fatal(format!(
                "refusing to delete {missing} of the {live} rows of table `{table}` ({:.0}%, more than the step's max_delete_fraction of {:.0}%): \
                 check that the source is complete; if the deletion is intended, rerun with --allow-mass-delete",
                100.0 * missing as f64 / live as f64,
                100.0 * self.step.max_delete_fraction
            )));
        }
        self.counts.get_mut(table).expect("output table").deleted += missing;
        if self.dry_run {
            return Ok(());
        }
        for chunk in gone.chunks(self.step.batch_size) {
            let commit = Commit {
                tables: vec![(
                    table.to_string(),
                    TableDiff {
                        deletes: chunk.to_vec(),
                        ..TableDiff::default()
                    },
                )],
                ..Commit::default()
            };
            retry(&self.retry, "delete vanished rows", || {
                self.store.commit(&self.step, clone_commit(&commit))
            })
            .await?;
        }
        Ok(())
    }

    /// The definition of an output table, or an error naming the step's outputs.
    fn output_def(&self, table: &str) -> Result<crate::dag::TableDef, StepError> {
        self.pipeline
            .tables
            .get(table)
            .filter(|_| self.buffers.contains_key(table))
            .cloned()
            .ok_or_else(|| {
                StepError::fatal(format!(
                    "step `{}` wrote to table `{table}`, which is not among its outputs ({})",
                    self.step.name,
                    self.step.outputs.join(", ")
                ))
            })
    }

    /// The keys of `rows` in `table`.
    fn keys_of(&self, table: &str, rows: &[Row]) -> Result<Vec<Key>, StepError> {
        let def = self.output_def(table)?;
        rows.iter()
            .map(|row| {
                row.key(&def.primary_key).map_err(|e| {
                    StepError::data(format!("a row for table `{table}` has no usable key: {e}"))
                })
            })
            .collect()
    }
}

#[async_trait]
impl SnapshotSink for SnapshotWriter {
    async fn write(&mut self, table: &str, rows: Vec<Row>) -> Result<(), StepError> {
        let keys = self.keys_of(table, &rows)?;
        for (key, row) in keys.into_iter().zip(rows) {
            if !self
                .seen
                .get_mut(table)
                .expect("output table")
                .insert(key.digest())
            {
                self.duplicates += 1;
                continue;
            }
            let buffer = self.buffers.get_mut(table).expect("output table");
            buffer.push(FreshRow {
                key,
                row,
                producer: None,
            });
            if buffer.len() >= self.step.batch_size {
                self.flush(table).await?;
            }
        }
        Ok(())
    }

    fn changes_only(&mut self, table: &str) -> Result<(), StepError> {
        self.output_def(table)?;
        self.changes_only.insert(table.to_string());
        Ok(())
    }

    async fn delete(&mut self, table: &str, keys: Vec<Row>) -> Result<(), StepError> {
        if !self.changes_only.contains(table) {
            return Err(StepError::fatal(format!(
                "step `{}` deleted rows of table `{table}` by key without marking it changes_only (a bug of the step)",
                self.step.name
            )));
        }
        let keys = self.keys_of(table, &keys)?;
        self.deletes
            .entry(table.to_string())
            .or_default()
            .extend(keys);
        Ok(())
    }

    async fn stored_keys(&mut self, table: &str, keys: &[Row]) -> Result<Vec<bool>, StepError> {
        let def = self.output_def(table)?;
        let keys = self.keys_of(table, keys)?;
        let stored = retry(&self.retry, "read stored keys", || {
            self.store.stored(&def, &keys)
        })
        .await?;
        Ok(keys.iter().map(|k| stored.contains_key(k)).collect())
    }
}
