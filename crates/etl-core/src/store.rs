//! The store contract: what the engine needs from the database that holds the tables and the
//! engine's own bookkeeping.
//!
//! The engine decides *what* changes (see [`crate::diff`] and [`crate::runner`]); a store only
//! reads and writes, and guarantees:
//! * **Atomic batches.** [`Store::commit`] applies a batch's table changes and its key
//!   bookkeeping in one transaction: after a crash, either all of it happened or none of it.
//! * **Sequenced changes.** Every row it inserts, updates or deletes gets a fresh change number
//!   (greater than any before); [`Store::capture`] turns the changes a step has not seen yet into
//!   pending keys, and records how far it has seen, in one transaction.
//! * **Exclusive steps.** [`Store::lock`] returns a lock that no other process can hold for the
//!   same step or for a step that writes a table this step reads or writes, until released or the
//!   holder dies.
//! * **Nothing logged.** Errors name tables and steps, never row values.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::dag::{Pipeline, StepDef, TableDef};
use crate::diff::{Stored, TableDiff};
use crate::history::{Invocation, RunOutcome};
use crate::report::StepReport;
use crate::step::{ErrorClass, InputBatch, StepError};
use crate::value::{Key, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database error while {context}: {source}")]
    Database {
        context: String,
        transient: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A table does not have the shape the configuration says (missing table or column, wrong key).
    #[error("table `{table}`: {message}")]
    Schema { table: String, message: String },
    /// A row does not fit its table.
    #[error("table `{table}`: {message}")]
    Row { table: String, message: String },
    /// Another process holds the step's lock.
    #[error(
        "step `{step}` is locked by another etl run ({holder}); rerun with --wait to wait for it"
    )]
    Locked { step: String, holder: String },
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Database {
                transient: true,
                ..
            }
        )
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        let class = match &e {
            StoreError::Database {
                transient: true, ..
            } => ErrorClass::Transient,
            StoreError::Row { .. } => ErrorClass::Data,
            _ => ErrorClass::Fatal,
        };
        StepError::new(class, e.to_string()).with_source(e)
    }
}

/// The bookkeeping and table changes of one batch, committed together.
#[derive(Debug, Default)]
pub struct Commit {
    pub tables: Vec<(String, TableDiff)>,
    /// Keys processed successfully: no longer pending.
    pub processed: Vec<Key>,
    /// Keys processed whose inputs are all gone: their bookkeeping is removed.
    pub vanished: Vec<Key>,
    /// Keys that failed, with the error text: stay pending, attempts counted.
    pub failed: Vec<(Key, String)>,
}

/// A step of a run and the keys it processed or failed, for [`Store::after_run`].
#[derive(Debug, Clone, Copy)]
pub struct ProcessedKeys<'a> {
    pub step: &'a StepDef,
    pub keys: u64,
}

/// What [`Store::capture`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capture {
    /// Keys pending after capture (new work plus earlier failures).
    pub pending: u64,
    /// Whether everything was made pending (new fingerprint or full refresh).
    pub full: bool,
}

/// One target of a transform and what processing its pending keys that vanished would delete
/// there, counted before anything is (see `crate::guard`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDeletes {
    /// An output table (`` table `nodes` ``), or a sink's outside target ("the graph's nodes").
    pub target: String,
    /// Rows (or items) there now, counted only as far as the guard needs to let `deleting` go
    /// ([`crate::guard::live_needed`]): below that, the whole count.
    pub live: u64,
    /// Of those, the ones the vanished keys produced.
    pub deleting: u64,
}

/// `etl plan`'s view of a transform: what a run would do, without doing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounts {
    pub new: u64,
    pub changed: u64,
    pub deleted: u64,
    pub failed_due: u64,
    /// Set when the fingerprint changed: every key would be reprocessed.
    pub all_keys: bool,
}

impl PlanCounts {
    pub fn total(&self) -> u64 {
        self.new + self.changed + self.deleted + self.failed_due
    }
}

/// How a step's last run ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Finished, but some keys failed.
    KeysFailed(u64),
    Failed(String),
    /// Asked to stop before it finished.
    Interrupted,
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Succeeded => "ok".into(),
            Outcome::KeysFailed(n) => format!("{n} keys failed"),
            Outcome::Failed(_) => "failed".into(),
            Outcome::Interrupted => "interrupted".into(),
        }
    }
}

/// `etl status`'s view of a step.
#[derive(Debug, Clone, Default)]
pub struct StepStatus {
    pub keys_total: u64,
    pub keys_pending: u64,
    pub keys_failed: u64,
    pub last_started: Option<String>,
    pub last_finished: Option<String>,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    /// Latest errors of failed keys: (key as stored, attempts, error).
    pub latest_errors: Vec<(String, i32, String)>,
}

/// A held step lock. Dropping it also releases it (the database session ends).
#[async_trait]
pub trait StepLock: Send {
    async fn release(self: Box<Self>) -> Result<(), StoreError>;
}

/// What a sink compares its outside state with: a per-name view of the keys it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The rows of the sink's input table, less the keys it failed on (`etl verify`).
    Table,
    /// The keys the sink wrote, as a range: at least those whose rows still exist, at most all
    /// of them (before a run: changes upstream in the same run stay within it).
    Written,
}

/// The reads a step may make of the engine's state, besides its batches: what a sink needs to
/// check its outside target against (drift). Steps get it through their context; they never
/// query the store's own tables.
#[async_trait]
pub trait StoreReads: Send + Sync {
    /// Per value of `name_column` (a node type, an edge label): how many of `step`'s keys the
    /// target should hold, as (at least, at most), by [`Expected`].
    async fn expected_by_name(
        &self,
        step: &StepDef,
        table: &str,
        name_column: &str,
        expected: Expected,
    ) -> Result<BTreeMap<String, (i64, i64)>, StoreError>;

    /// Up to `limit` of the keys the target should hold (by [`Expected`]), from `offset` on.
    async fn sample_keys(
        &self,
        step: &StepDef,
        table: &str,
        expected: Expected,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Key>, StoreError>;

    /// About `wanted` of the keys `step` wrote whose rows still exist in `table`, drawn from
    /// random pages of its bookkeeping: the cost does not grow with the step's size. `total` is
    /// roughly how many keys the step holds (it sets the share of pages read); fewer than
    /// `wanted`, or none, may come back.
    async fn sample_written_keys(
        &self,
        step: &StepDef,
        table: &str,
        wanted: i64,
        total: i64,
    ) -> Result<Vec<Key>, StoreError>;

    /// The values of `name_column` among the keys `step` processed successfully.
    async fn written_names(
        &self,
        step: &StepDef,
        name_column: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// How many keys `step` has processed successfully.
    async fn succeeded_keys(&self, step: &StepDef) -> Result<u64, StoreError>;

    /// Every row of `table`, one of `step`'s inputs (refused otherwise): for a side input, a
    /// data model's list, never for the inputs that hold the step's keys.
    async fn whole_input(&self, step: &StepDef, table: &str) -> Result<Vec<Row>, StoreError>;
}

#[async_trait]
pub trait Store: StoreReads + Send + Sync {
    /// Creates the engine's bookkeeping for the pipeline where missing and checks that every
    /// table exists with the primary key the configuration gives. Idempotent.
    async fn prepare(&self, pipeline: &Pipeline) -> Result<(), StoreError>;

    /// Takes the lock of a step: exclusive on the tables it writes and on the step itself, shared
    /// on the tables it reads. With `wait`, waits; otherwise fails with [`StoreError::Locked`].
    async fn lock(&self, step: &StepDef, wait: bool) -> Result<Box<dyn StepLock>, StoreError>;

    /// The live rows among `keys`, with hash and producer.
    async fn stored(
        &self,
        table: &TableDef,
        keys: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError>;

    /// The live rows that any of `producers` produced.
    async fn stored_by_producer(
        &self,
        table: &TableDef,
        producers: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError>;

    /// In one pass over the live keys of `table` (in any order): how many there are, and those
    /// for which `keep` is false.
    async fn live_keys_not_in(
        &self,
        table: &TableDef,
        keep: &(dyn for<'k> Fn(&'k Key) -> bool + Sync),
    ) -> Result<(u64, Vec<Key>), StoreError>;

    async fn count_live(&self, table: &TableDef) -> Result<u64, StoreError>;

    /// The live rows of `table`, counted no further than `enough`: `min(live, enough)`. The
    /// mass-delete guard asks for no more than decides ([`crate::guard::live_needed`]), so a run
    /// deleting a few rows of a large table reads a few rows to count, not the table.
    async fn count_live_to(&self, table: &TableDef, enough: u64) -> Result<u64, StoreError> {
        Ok(self.count_live(table).await?.min(enough))
    }

    /// Applies a batch. For a transform step, also records its keys (see [`Commit`]).
    async fn commit(&self, step: &StepDef, commit: Commit) -> Result<(), StoreError>;

    /// Called once a transform's run has committed all its batches (not after a failed or
    /// stopped run, nor when it had no key to process): the store completes key bookkeeping
    /// it put off for the run. A run that never gets here leaves it to the next [`prepare`].
    ///
    /// [`prepare`]: Store::prepare
    async fn batches_done(&self, _step: &StepDef) -> Result<(), StoreError> {
        Ok(())
    }

    /// Called once every step of a run has ended, whatever their outcomes, when at least one
    /// step processed keys (never by `etl plan`, nor after the run was asked to stop), with
    /// those steps and how many keys each processed or failed: the store's upkeep that has to
    /// wait until no step of the run holds a transaction, such as clearing the rows the run
    /// left dead. It changes no row a step reads; an error here is logged and leaves the run's
    /// outcome as it was.
    async fn after_run(&self, _processed: &[ProcessedKeys<'_>]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Settles every pending key of `step` without reading it, for a transform that said it
    /// produces nothing ([`crate::step::Transform::produces_nothing`]), in one transaction:
    /// the keys no key-covering input holds any more are forgotten, the rest recorded as
    /// processed. Only when the step writes tables and none of them holds a live row:
    /// otherwise nothing changes and the answer is `None` (the batches must delete those rows;
    /// a step with no output table keeps its state outside, where only batches see it). The
    /// answer counts the keys settled, forgotten ones included, as batches count them.
    async fn settle_unread(&self, _step: &StepDef) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Turns input changes the step has not seen into pending keys. When the step's fingerprint
    /// differs from the recorded one, or `full_refresh`, every key is made pending; the new
    /// fingerprint is recorded in the same transaction.
    async fn capture(&self, step: &StepDef, full_refresh: bool) -> Result<Capture, StoreError>;

    /// Pending keys in key order after `after`, at most `limit`.
    async fn pending_keys(
        &self,
        step: &StepDef,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError>;

    /// The input rows of a batch of keys.
    async fn read_inputs(&self, step: &StepDef, keys: &[Key]) -> Result<InputBatch, StoreError>;

    /// What processing the step's pending keys whose inputs are all gone would delete, per
    /// output table; for a step without output tables (a sink), per the keys it holds outside
    /// (named `outside`).
    async fn deletion_preview(
        &self,
        step: &StepDef,
        outside: &str,
    ) -> Result<Vec<TargetDeletes>, StoreError>;

    /// What [`Store::capture`] plus processing would do now, without writing.
    async fn plan(&self, step: &StepDef) -> Result<PlanCounts, StoreError>;

    /// The keys a run would process now and not delete (new, changed, failed and due), in key
    /// order, at most `limit`: what `etl plan` estimates the cost of. Writes nothing.
    async fn plan_keys(&self, step: &StepDef, limit: usize) -> Result<Vec<Key>, StoreError>;

    /// Records that a step run started.
    async fn run_started(&self, step: &StepDef) -> Result<(), StoreError>;

    /// Records how a step run ended, with counters.
    async fn run_finished(
        &self,
        step: &StepDef,
        outcome: &Outcome,
        counters: &BTreeMap<String, u64>,
        elapsed: Duration,
    ) -> Result<(), StoreError>;

    async fn status(&self, step: &StepDef) -> Result<StepStatus, StoreError>;

    /// The run history (see [`crate::history`]): records that a run began and returns its id.
    async fn run_begun(&self, invocation: &Invocation) -> Result<i64, StoreError>;

    /// Records one step's report under run `run`, as the step ends (or is skipped). A run
    /// killed mid-way keeps the steps it finished.
    async fn step_reported(&self, run: i64, report: &StepReport) -> Result<(), StoreError>;

    /// Records how run `run` ended, and prunes the runs that began more than `retention` ago.
    async fn run_ended(
        &self,
        run: i64,
        outcome: RunOutcome,
        retention: Duration,
    ) -> Result<(), StoreError>;

    /// The memos of `steps` (see [`crate::step::StepContext::remember`]) recorded under their
    /// current fingerprints, by step name. A memo recorded under another fingerprint is absent.
    async fn memos(&self, steps: &[&StepDef]) -> Result<HashMap<String, String>, StoreError>;

    /// Records a step's memo under its current fingerprint, or forgets it (`None`).
    async fn set_memo(&self, step: &StepDef, memo: Option<&str>) -> Result<(), StoreError>;
}

/// The engine's state as one step may read it ([`StoreReads`]), for that step.
#[derive(Clone)]
pub struct StepReads {
    store: Arc<dyn StoreReads>,
    step: Arc<StepDef>,
}

impl fmt::Debug for StepReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepReads")
            .field("step", &self.step.name)
            .finish_non_exhaustive()
    }
}

impl StepReads {
    pub fn new(store: Arc<dyn StoreReads>, step: StepDef) -> Self {
        StepReads {
            store,
            step: Arc::new(step),
        }
    }

    /// The step's definition (its key, inputs and outputs).
    pub fn step(&self) -> &StepDef {
        &self.step
    }

    /// See [`StoreReads::expected_by_name`].
    pub async fn expected_by_name(
        &self,
        table: &str,
        name_column: &str,
        expected: Expected,
    ) -> Result<BTreeMap<String, (i64, i64)>, StepError> {
        Ok(self
            .store
            .expected_by_name(&self.step, table, name_column, expected)
            .await?)
    }

    /// See [`StoreReads::sample_keys`].
    pub async fn sample_keys(
        &self,
        table: &str,
        expected: Expected,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Key>, StepError> {
        Ok(self
            .store
            .sample_keys(&self.step, table, expected, offset, limit)
            .await?)
    }

    /// See [`StoreReads::sample_written_keys`].
    pub async fn sample_written_keys(
        &self,
        table: &str,
        wanted: i64,
        total: i64,
    ) -> Result<Vec<Key>, StepError> {
        Ok(self
            .store
            .sample_written_keys(&self.step, table, wanted, total)
            .await?)
    }

    /// See [`StoreReads::written_names`].
    pub async fn written_names(&self, name_column: &str) -> Result<Vec<String>, StepError> {
        Ok(self.store.written_names(&self.step, name_column).await?)
    }

    /// See [`StoreReads::whole_input`].
    pub async fn whole_input(&self, table: &str) -> Result<Vec<Row>, StepError> {
        Ok(self.store.whole_input(&self.step, table).await?)
    }

    /// See [`StoreReads::succeeded_keys`].
    pub async fn succeeded_keys(&self) -> Result<u64, StepError> {
        Ok(self.store.succeeded_keys(&self.step).await?)
    }
}
