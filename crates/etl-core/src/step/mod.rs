//! What a step is: the [`Extract`] and [`Transform`] traits, their inputs and outputs, and how
//! their errors are classified.
//!
//! * An **extract** reads a complete snapshot of a source and hands rows to a [`SnapshotSink`];
//!   the engine diffs them against what is stored and, once the snapshot is complete, deletes what
//!   vanished. An extract that reads only its source's changes marks a table `changes_only` and
//!   names the keys to delete. An extract that returns an error deletes nothing.
//! * A **transform** is called with a batch of transform keys whose inputs changed, and the input
//!   rows of those keys; it returns output rows, each tagged with the key that produced it. The
//!   engine stores them with the diff and deletes the rows a key no longer produces.
//! * A **sink** is a transform with no output tables: its effect is outside (pgvector rows, a
//!   graph). It gets the same batches; a key with no input rows left is one to remove there.
//!
//! Contract for implementations: a call must be safe to repeat (the engine retries transient
//! errors and reruns after a crash), must not hold keys across calls, and must report a problem
//! with one key through [`BatchOutput::failed`] or an [`ErrorClass::Data`] error, not by
//! panicking.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::value::{Key, Row};

pub use crate::store::StepReads;
pub use error::{ErrorClass, StepError};

mod error;

/// Counters a step reports for the run summary (e.g. `edges_dropped`), by name.
#[derive(Debug, Default, Clone)]
pub struct Counters(Arc<Mutex<BTreeMap<String, u64>>>);

impl Counters {
    pub fn add(&self, name: &str, n: u64) {
        if n > 0 {
            *self
                .0
                .lock()
                .expect("counters lock")
                .entry(name.to_string())
                .or_default() += n;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("counters lock").clone()
    }
}

/// What [`Transform::starting`] learns about the run ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStart {
    /// Keys the run will process.
    pub pending_keys: u64,
    /// True when the batches go through the work queue, to be processed by other tasks or
    /// processes (`etl worker`), each with its own instance of the step: state the step keeps
    /// in itself from `starting` is not seen by them.
    pub queued: bool,
}

/// What a step gets besides its data.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub step: String,
    pub counters: Counters,
    /// True for `etl plan`: nothing may be written anywhere, the source may only be read.
    pub dry_run: bool,
    /// The memo the step left at the end of its last complete run under its current
    /// fingerprint (see [`StepContext::remember`]); `None` when there is none or it no longer holds.
    pub memo: Option<String>,
    /// The tables the step writes, as configured (`outputs`), in order: step code writes to
    /// these, never to a table it names itself.
    pub outputs: Vec<String>,
    /// The engine's state as the step may read it (set by the runner).
    pub reads: Option<StepReads>,
    remembered: Arc<Mutex<Option<String>>>,
}

impl StepContext {
    pub fn new(step: impl Into<String>, dry_run: bool, memo: Option<String>) -> Self {
        StepContext {
            step: step.into(),
            counters: Counters::default(),
            dry_run,
            memo,
            outputs: Vec::new(),
            reads: None,
            remembered: Arc::default(),
        }
    }

    /// The same context (counters and what it remembers shared) without the memo: what a
    /// full refresh gives an extract.
    pub fn without_memo(&self) -> StepContext {
        StepContext {
            memo: None,
            ..self.clone()
        }
    }

    /// The same context for a step that writes `outputs`.
    pub fn with_outputs(mut self, outputs: Vec<String>) -> Self {
        self.outputs = outputs;
        self
    }

    /// The same context with the engine's state to read.
    pub fn with_reads(mut self, reads: StepReads) -> Self {
        self.reads = Some(reads);
        self
    }

    /// The engine's state as the step may read it; an error outside a run.
    pub fn reads(&self) -> Result<&StepReads, StepError> {
        self.reads.as_ref().ok_or_else(|| {
            StepError::fatal(format!(
                "step `{}` reads the engine's state, which only a run gives it (a bug)",
                self.step
            ))
        })
    }

    /// The `i`-th configured output table (the catalog checks how many a step has).
    pub fn output(&self, i: usize) -> Result<&str, StepError> {
        self.outputs.get(i).map(String::as_str).ok_or_else(|| {
            StepError::fatal(format!(
                "step `{}` writes {} output table(s) but {} are configured (a bug: the catalog checks this)",
                self.step,
                i + 1,
                self.outputs.len()
            ))
        })
    }

    /// Leaves a memo for the step's next run: an extract's description of the source it read
    /// (see [`Extract::unchanged_since`]), a sink's view of its target. It is kept only if this
    /// run completes; a run that writes anything forgets the previous memo first, so a memo
    /// always describes the state after a complete run.
    pub fn remember(&self, memo: impl Into<String>) {
        *self.remembered.lock().expect("memo lock") = Some(memo.into());
    }

    /// What [`StepContext::remember`] was given during this run, if anything.
    pub fn remembered(&self) -> Option<String> {
        self.remembered.lock().expect("memo lock").clone()
    }
}

/// Where an extract puts the rows of its snapshot.
///
/// By default a table's rows are a complete snapshot: once the extract returns `Ok`, the keys
/// it did not write are deleted. An extract that reads only what changed in its source calls
/// [`SnapshotSink::changes_only`] for a table first: then the keys it does not write are kept,
/// and only the keys it names in [`SnapshotSink::delete`] go (a key written in the same run is
/// kept). Deletes of either kind wait for the extract's `Ok` and pass the mass-delete guard.
#[async_trait]
pub trait SnapshotSink: Send {
    /// Adds rows to the snapshot of one of the step's output tables.
    async fn write(&mut self, table: &str, rows: Vec<Row>) -> Result<(), StepError>;

    /// This run's rows of `table` are changes: keys not written are kept.
    fn changes_only(&mut self, table: &str) -> Result<(), StepError>;

    /// Deletes the rows of these keys (rows holding at least the table's key columns) from a
    /// table marked [`SnapshotSink::changes_only`], once the extract has returned `Ok`.
    async fn delete(&mut self, table: &str, keys: Vec<Row>) -> Result<(), StepError>;

    /// Which of these keys the table holds now (as of the last committed run), in order.
    async fn stored_keys(&mut self, table: &str, keys: &[Row]) -> Result<Vec<bool>, StepError>;
}

#[async_trait]
pub trait Extract: Send + Sync {
    /// The tables the step writes, in the order `outputs` binds them. Empty: any (tests' steps).
    fn outputs(&self) -> Vec<OutputRole> {
        Vec::new()
    }

    /// Checks that the source can be reached with the configured credentials (`etl check`).
    async fn check(&self) -> Result<(), StepError> {
        Ok(())
    }

    /// Reads a complete snapshot of every output table. Returning `Err` means the snapshot is
    /// incomplete: what was written stays, nothing is deleted.
    ///
    /// An extract that can tell cheaply whether its source changed calls
    /// [`StepContext::remember`] with a description of what it read; the next run then asks
    /// [`Extract::unchanged_since`] first.
    async fn extract(&self, ctx: &StepContext, out: &mut dyn SnapshotSink)
        -> Result<(), StepError>;

    /// Whether the source is still exactly what `memo` (remembered by the last complete
    /// snapshot under the same fingerprint) describes. When true, the run reads nothing more
    /// and leaves the step's tables as they are: the snapshot would be the same. Answer true
    /// only when sure; the default reads the source every run.
    async fn unchanged_since(&self, _ctx: &StepContext, _memo: &str) -> Result<bool, StepError> {
        Ok(false)
    }

    /// Mistakes in the source that do not stop a run but leave something out (for `etl
    /// check`), each naming where to fix it. Reads the source; the default finds none.
    async fn problems(&self) -> Result<Vec<String>, StepError> {
        Ok(Vec::new())
    }

    /// Where the row with `key` of output `role` comes from in the source, in the source's
    /// own terms, for lineage (`etl serve`'s `/lineage`). Reads nothing: it says where to look.
    fn origin(&self, _role: &str, _key: &Key) -> Option<Origin> {
        None
    }
}

/// Where an extract's row comes from, for a person to find it in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The source, e.g. "Grist doc `Data` on https://grist.example.com".
    pub source: String,
    /// The source's table, e.g. `Anchor_person`.
    pub table: String,
    /// Which row, e.g. "the row whose `person_id` is `p1`".
    pub row: String,
    /// A link to the source's page, when it has one.
    pub url: Option<String>,
}

/// The names of the input roles steps declare: what `pipelines.toml` binds tables to, and what
/// step code reads its inputs through.
pub mod roles {
    /// The rows a step works on, one or more per key (`nodes`, `edges`, `dm_anchors`).
    pub const ROWS: &str = "rows";
    /// The data model's attribute list, joined to the key by type (`dm_anchor_attributes`).
    pub const ATTRIBUTES: &str = "attributes";

    /// The key of a knowledge graph's node, wherever it is stored (`grist_nodes`, `nodes`).
    pub const NODE_KEY: &[&str] = &["node_id", "node_type"];

    /// The key of a knowledge graph's edge, wherever it is stored (`grist_edges`, `edges`).
    pub const EDGE_KEY: &[&str] = &[
        "from_node_id",
        "to_node_id",
        "from_node_type",
        "to_node_type",
        "edge_label",
    ];
}

/// An input a transform reads, by the role it plays for it (`rows`, `attributes`): declared by
/// the implementation, bound to a table by `pipelines.toml`, checked when the pipeline compiles.
/// Step code reads its inputs through their roles, never by table name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputRole {
    pub name: &'static str,
    /// Columns the bound table's primary key must have.
    pub key: &'static [&'static str],
    /// Other columns the step reads from it (checked against the database by `etl check` and
    /// before a run).
    pub columns: &'static [&'static str],
    /// What the role is, for messages.
    pub about: &'static str,
}

/// A table a step writes, by what it holds (`nodes`, `edges`, `vectors`): declared by the
/// implementation, bound by `pipelines.toml`'s `outputs` list in the declared order, and checked
/// like an input: the table's primary key must be the role's key, and the database's table must
/// have the role's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRole {
    pub name: &'static str,
    /// The primary key the bound table must have, in order.
    pub key: &'static [&'static str],
    /// Other columns the step writes (checked against the database).
    pub columns: &'static [&'static str],
}

/// The rows of one input for a batch of keys.
#[derive(Debug, Clone)]
pub struct InputRows {
    /// The role the table is bound to, when the implementation declares roles.
    pub role: Option<String>,
    pub table: String,
    /// For each transform key column, the input column it joins (empty for a global input).
    pub join: Vec<(String, String)>,
    /// Whether the join covers the whole transform key (the input enumerates keys).
    pub covers_key: bool,
    pub rows: Vec<Row>,
}

/// A batch of transform keys and the input rows that belong to them.
#[derive(Debug, Clone)]
pub struct InputBatch {
    pub key_columns: Vec<String>,
    pub keys: Vec<Key>,
    pub inputs: Vec<InputRows>,
    /// The keys some key-covering input still has rows for, as the engine found them. A key of
    /// the batch not in it has vanished: its outputs (and a sink's items) are to be removed.
    pub present: std::collections::HashSet<Key>,
}

impl InputBatch {
    /// The input bound to `role`.
    pub fn role(&self, role: &str) -> Option<&InputRows> {
        self.inputs.iter().find(|i| i.role.as_deref() == Some(role))
    }

    /// All rows of the input bound to `role`.
    pub fn role_rows(&self, role: &str) -> &[Row] {
        self.role(role).map(|i| i.rows.as_slice()).unwrap_or(&[])
    }

    /// The rows of the input bound to `role` (one that covers the key), by transform key.
    pub fn role_rows_by_key(&self, role: &str) -> HashMap<Key, Vec<&Row>> {
        self.role(role).map(group_by_key).unwrap_or_default()
    }

    /// Whether `key` has vanished: no key-covering input has a row for it.
    pub fn vanished(&self, key: &Key) -> bool {
        !self.present.contains(key)
    }

    /// All rows of an input table in this batch.
    pub fn rows(&self, table: &str) -> &[Row] {
        self.inputs
            .iter()
            .find(|i| i.table == table)
            .map(|i| i.rows.as_slice())
            .unwrap_or(&[])
    }

    /// The rows of an input that covers the key, grouped by transform key.
    pub fn rows_by_key(&self, table: &str) -> HashMap<Key, Vec<&Row>> {
        self.inputs
            .iter()
            .find(|i| i.table == table)
            .map(group_by_key)
            .unwrap_or_default()
    }
}

fn group_by_key(input: &InputRows) -> HashMap<Key, Vec<&Row>> {
    let mut out: HashMap<Key, Vec<&Row>> = HashMap::new();
    let cols: Vec<String> = input.join.iter().map(|(_, c)| c.clone()).collect();
    for row in &input.rows {
        if let Ok(key) = row.key(&cols) {
            out.entry(key).or_default().push(row);
        }
    }
    out
}

/// One row produced by a transform.
#[derive(Debug, Clone)]
pub struct OutputRow {
    pub table: String,
    /// The transform key that produced the row.
    pub producer: Key,
    pub row: Row,
}

/// What a transform returns for a batch.
#[derive(Debug, Default)]
pub struct BatchOutput {
    pub rows: Vec<OutputRow>,
    /// Keys that failed, with why; the other keys of the batch are processed.
    pub failed: Vec<(Key, StepError)>,
}

impl BatchOutput {
    pub fn push(&mut self, table: &str, producer: &Key, row: Row) {
        self.rows.push(OutputRow {
            table: table.to_string(),
            producer: producer.clone(),
            row,
        });
    }
}

#[async_trait]
pub trait Transform: Send + Sync {
    /// The columns of the transform key, in order.
    fn key_columns(&self) -> Vec<String>;

    /// The tables the step writes, in the order `outputs` binds them. Empty: any (tests' steps).
    fn outputs(&self) -> Vec<OutputRole> {
        Vec::new()
    }

    /// The inputs the step reads, by role, in the order a list in `pipelines.toml` binds them.
    /// Empty: the step takes its inputs as configured and reads them by table (tests' steps).
    fn inputs(&self) -> Vec<InputRole> {
        Vec::new()
    }

    /// The join of the key to an input when the config gives none: (key column, input column).
    /// By default each key column joins the input column of the same name, if the input's
    /// primary key has one.
    fn default_join(&self, _input_table: &str) -> Option<Vec<(String, String)>> {
        None
    }

    async fn process(&self, ctx: &StepContext, batch: InputBatch)
        -> Result<BatchOutput, StepError>;

    /// Checks that the services the step uses can be reached (`etl check`).
    async fn check(&self) -> Result<(), StepError> {
        Ok(())
    }

    /// What a sink holds outside the database, one item per key, as the mass-delete guard names
    /// it ("the graph's nodes").
    fn outside_target(&self) -> String {
        "the step's target outside the database".to_string()
    }

    /// Asked before each run: a sink whose outside state no longer matches what it wrote (a
    /// graph emptied by a restart) answers true, and every key of the step is reprocessed.
    /// The runner may ask it at the start of the run, before the step's upstream steps ran:
    /// the answer must depend only on the outside state and the step's own bookkeeping (and
    /// `ctx.memo`), not on its inputs.
    async fn drifted(&self, _ctx: &StepContext) -> Result<bool, StepError> {
        Ok(false)
    }

    /// What processing these keys would cost, doing nothing (for `etl plan`), as counters:
    /// e.g. texts to embed and how many the cache already holds. The default says nothing.
    async fn estimate(
        &self,
        _ctx: &StepContext,
        _batch: InputBatch,
    ) -> Result<BTreeMap<String, u64>, StepError> {
        Ok(BTreeMap::new())
    }

    /// Asked when keys are pending, before any of them is read: true when the step can tell
    /// from its side inputs alone (read whole through [`StepReads::whole_input`]) that no key
    /// would produce a row, as an embedding step whose attribute list marks nothing
    /// embeddable. The engine then settles the pending keys without reading them
    /// ([`crate::store::Store::settle_unread`]), unless an output table still holds rows, which
    /// only the batches may delete, or the step writes no table (a sink's state is outside,
    /// where only its batches see it). The default, false: the batches decide.
    async fn produces_nothing(&self, _ctx: &StepContext) -> Result<bool, StepError> {
        Ok(false)
    }

    /// Called once the run knows its work and before its first batch, when there is any: a
    /// step writing many rows can prepare for a bulk load (and undo that in
    /// [`Transform::finished`]).
    async fn starting(&self, _ctx: &StepContext, _run: RunStart) -> Result<(), StepError> {
        Ok(())
    }

    /// Called once every batch of the run committed (some keys may have failed), with the
    /// number of keys processed: the place to [`StepContext::remember`] the outside state.
    async fn finished(&self, _ctx: &StepContext, _keys_processed: u64) -> Result<(), StepError> {
        Ok(())
    }
}

/// A step's implementation, as built by the binary's catalog.
#[derive(Clone)]
pub enum StepImpl {
    Extract(Arc<dyn Extract>),
    Transform(Arc<dyn Transform>),
}

impl fmt::Debug for StepImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepImpl::Extract(_) => f.write_str("Extract(..)"),
            StepImpl::Transform(_) => f.write_str("Transform(..)"),
        }
    }
}

/// An implementation together with the code version it declares (bump it when the code's output
/// changes for the same input: every key of the step is then reprocessed).
#[derive(Debug, Clone)]
pub struct BuiltStep {
    pub implementation: StepImpl,
    pub version: u32,
}
