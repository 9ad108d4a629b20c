//! Steps for exercising the engine without any connector.
//!
//! * [`MemorySource`]: an extract whose snapshot tests edit between runs, and which can be told
//!   to fail part way through reading, or to pause between batches.
//! * [`FnTransform`]: a transform from a closure, recording every key it was called with, with
//!   keys that can be poisoned (fail with a data error) on demand.
//! * [`TestCatalog`]: a catalog of such steps by name, to compile a `pipelines.toml` text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use etl_core::config::{Settings, StepConfig};
use etl_core::dag::{Built, Catalog};
use etl_core::step::{BuiltStep, SnapshotSink, StepImpl};
use etl_core::{BatchOutput, Extract, InputBatch, Key, Row, StepContext, StepError, Transform};

/// How a [`MemorySource`] read goes wrong.
#[derive(Debug, Clone)]
pub enum ReadFailure {
    /// Fails with a transient error after handing over this many rows (retries won't help: it
    /// fails every time, like a server that keeps timing out).
    TransientAfter(usize),
    /// Fails with a fatal error after this many rows.
    FatalAfter(usize),
}

#[derive(Debug, Default)]
struct SourceState {
    tables: BTreeMap<String, Vec<Row>>,
    failure: Option<ReadFailure>,
    pause: Option<Duration>,
    reads: u32,
    /// Whether the source remembers what it read (see [`MemorySource::remembering`]).
    remembers: bool,
    /// How many times [`Extract::unchanged_since`] answered true.
    skipped: u32,
}

/// A snapshot source held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    state: Arc<Mutex<SourceState>>,
    /// Rows handed to the engine per write call.
    pub chunk: usize,
}

impl MemorySource {
    pub fn new() -> Self {
        MemorySource {
            state: Arc::default(),
            chunk: 100,
        }
    }

    pub fn set_table(&self, table: &str, rows: Vec<Row>) {
        self.state
            .lock()
            .unwrap()
            .tables
            .insert(table.to_string(), rows);
    }

    /// Edits one table's rows in place.
    pub fn edit(&self, table: &str, f: impl FnOnce(&mut Vec<Row>)) {
        let mut s = self.state.lock().unwrap();
        f(s.tables.entry(table.to_string()).or_default());
    }

    pub fn fail(&self, failure: Option<ReadFailure>) {
        self.state.lock().unwrap().failure = failure;
    }

    /// Sleeps this long after each chunk (to kill a run in the middle).
    pub fn pause(&self, pause: Option<Duration>) {
        self.state.lock().unwrap().pause = pause;
    }

    pub fn reads(&self) -> u32 {
        self.state.lock().unwrap().reads
    }

    /// A source that remembers a digest of what it read, so that the engine skips it while
    /// its tables stay the same.
    pub fn remembering(self) -> Self {
        self.state.lock().unwrap().remembers = true;
        self
    }

    /// How many runs found the source unchanged and did not read it.
    pub fn skipped(&self) -> u32 {
        self.state.lock().unwrap().skipped
    }
}

/// What a remembering source's memo is: a digest of its tables.
fn digest_of(tables: &BTreeMap<String, Vec<Row>>) -> String {
    blake3::hash(format!("{tables:?}").as_bytes())
        .to_hex()
        .to_string()
}

#[async_trait]
impl Extract for MemorySource {
    async fn unchanged_since(&self, _ctx: &StepContext, memo: &str) -> Result<bool, StepError> {
        let mut s = self.state.lock().unwrap();
        let same = s.remembers && digest_of(&s.tables) == memo;
        if same {
            s.skipped += 1;
        }
        Ok(same)
    }

    async fn extract(
        &self,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<(), StepError> {
        let (tables, failure, pause, remembers) = {
            let mut s = self.state.lock().unwrap();
            s.reads += 1;
            (s.tables.clone(), s.failure.clone(), s.pause, s.remembers)
        };
        if remembers {
            ctx.remember(digest_of(&tables));
        }
        let mut handed = 0usize;
        for (table, rows) in tables {
            for chunk in rows.chunks(self.chunk.max(1)) {
                match &failure {
                    Some(ReadFailure::TransientAfter(n)) if handed + chunk.len() > *n => {
                        return Err(StepError::transient("source timed out (test)"));
                    }
                    Some(ReadFailure::FatalAfter(n)) if handed + chunk.len() > *n => {
                        return Err(StepError::fatal("source refused (test)"));
                    }
                    _ => {}
                }
                out.write(&table, chunk.to_vec()).await?;
                handed += chunk.len();
                if let Some(p) = pause {
                    tokio::time::sleep(p).await;
                }
            }
        }
        Ok(())
    }
}

type TransformFn = dyn Fn(&InputBatch) -> BatchOutput + Send + Sync;

/// A transform from a closure, recording its calls.
#[derive(Clone)]
pub struct FnTransform {
    key: Vec<String>,
    f: Arc<TransformFn>,
    calls: Arc<Mutex<Vec<Vec<Key>>>>,
    poisoned: Arc<Mutex<BTreeSet<Key>>>,
    pause: Arc<Mutex<Option<Duration>>>,
    transient_failures: Arc<Mutex<u32>>,
    claims_nothing: Arc<Mutex<bool>>,
}

impl std::fmt::Debug for FnTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTransform")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl FnTransform {
    pub fn new(
        key: &[&str],
        f: impl Fn(&InputBatch) -> BatchOutput + Send + Sync + 'static,
    ) -> Self {
        FnTransform {
            key: key.iter().map(|s| s.to_string()).collect(),
            f: Arc::new(f),
            calls: Arc::default(),
            poisoned: Arc::default(),
            pause: Arc::default(),
            transient_failures: Arc::default(),
            claims_nothing: Arc::default(),
        }
    }

    /// From now on the step says it produces nothing from its pending keys
    /// (`Transform::produces_nothing`), and its batches, when the engine still runs them,
    /// produce nothing indeed (its closure is not called).
    pub fn claim_nothing(&self, on: bool) {
        *self.claims_nothing.lock().unwrap() = on;
    }

    /// Every key the transform was called with, over all calls.
    pub fn keys_seen(&self) -> Vec<Key> {
        let mut all: Vec<Key> = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect();
        all.sort();
        all
    }

    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn reset_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// A batch holding any of these keys fails as a whole with a data error.
    pub fn poison(&self, keys: impl IntoIterator<Item = Key>) {
        *self.poisoned.lock().unwrap() = keys.into_iter().collect();
    }

    pub fn pause(&self, pause: Option<Duration>) {
        *self.pause.lock().unwrap() = pause;
    }

    /// The next `n` calls fail with a transient error (a timeout).
    pub fn fail_transiently(&self, n: u32) {
        *self.transient_failures.lock().unwrap() = n;
    }
}

#[async_trait]
impl Transform for FnTransform {
    fn key_columns(&self) -> Vec<String> {
        self.key.clone()
    }

    async fn produces_nothing(&self, _ctx: &StepContext) -> Result<bool, StepError> {
        Ok(*self.claims_nothing.lock().unwrap())
    }

    /// For `etl plan`: `estimated_keys`, the keys it was shown.
    async fn estimate(
        &self,
        _ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<std::collections::BTreeMap<String, u64>, StepError> {
        Ok([("estimated_keys".to_string(), batch.keys.len() as u64)].into())
    }

    async fn process(
        &self,
        _ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BatchOutput, StepError> {
        self.calls.lock().unwrap().push(batch.keys.clone());
        {
            let mut left = self.transient_failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(StepError::transient("timed out (test)"));
            }
        }
        let pause = *self.pause.lock().unwrap();
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
        let poisoned = self.poisoned.lock().unwrap().clone();
        if batch.keys.iter().any(|k| poisoned.contains(k)) {
            return Err(StepError::data("poisoned key in batch (test)"));
        }
        if *self.claims_nothing.lock().unwrap() {
            return Ok(BatchOutput::default());
        }
        Ok((self.f)(&batch))
    }
}

/// Steps by `uses` name.
#[derive(Clone, Default)]
pub struct TestCatalog {
    steps: BTreeMap<String, StepImpl>,
    versions: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl std::fmt::Debug for TestCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCatalog")
            .field("steps", &self.steps.keys())
            .finish()
    }
}

impl TestCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn extract(mut self, name: &str, source: MemorySource) -> Self {
        self.steps
            .insert(name.to_string(), StepImpl::Extract(Arc::new(source)));
        self
    }

    pub fn transform(mut self, name: &str, t: FnTransform) -> Self {
        self.steps
            .insert(name.to_string(), StepImpl::Transform(Arc::new(t)));
        self
    }

    /// Changes the code version a step declares (its fingerprint changes).
    pub fn set_version(&self, name: &str, version: u32) {
        self.versions
            .lock()
            .unwrap()
            .insert(name.to_string(), version);
    }
}

impl Catalog for TestCatalog {
    fn build(&self, step: &StepConfig, settings: &mut Settings) -> Built {
        // Test steps take one optional setting, to show that settings change fingerprints.
        let _ = settings.string_or("flavour", "plain");
        match self.steps.get(&step.uses) {
            Some(i) => Built::Step(BuiltStep {
                implementation: i.clone(),
                version: self
                    .versions
                    .lock()
                    .unwrap()
                    .get(&step.uses)
                    .copied()
                    .unwrap_or(1),
            }),
            None => Built::Unknown,
        }
    }

    fn names(&self) -> Vec<String> {
        self.steps.keys().cloned().collect()
    }
}

/// A row of text columns, for brevity in tests.
pub fn text_row(pairs: &[(&str, &str)]) -> Row {
    pairs.iter().fold(Row::new(), |r, (k, v)| r.with(*k, *v))
}
