//! `etl-core`: the incremental engine, independent of any database or connector.
//!
//! * [`value`]: rows, values and keys; [`row_hash`]: their content hash; [`diff`]: what a batch
//!   changes.
//! * [`step`]: the traits steps implement (with the input roles they declare); [`store`]: the
//!   traits the state store implements (`Store`, and `StoreReads`, what steps may read).
//! * [`config`]: `pipelines.toml` (parsing, `${VAR}` interpolation, a step's settings); [`dag`]:
//!   compiling it in passes into the validated pipeline (roles bound, order found), and step
//!   selection.
//! * [`runner`]: runs a pipeline (extracts' snapshots, transforms' batches); [`guard`]: no run
//!   deletes most of a target unless allowed; [`retry`]: backoff for transient failures;
//!   [`history`]: what a run records about itself; [`queue`]: how workers share a run's batches;
//!   [`report`]: what a run did.

pub mod config;
pub mod dag;
pub mod diff;
pub mod guard;
pub mod history;
pub mod queue;
pub mod report;
pub mod retry;
pub mod row_hash;
pub mod runner;
pub mod step;
pub mod store;
pub mod value;

pub use dag::{Pipeline, Selection, StepDef, StepKind, TableDef};
pub use runner::{RunOptions, Runner};
pub use step::{
    BatchOutput, ErrorClass, Extract, InputBatch, StepContext, StepError, StepImpl, Transform,
};
pub use store::Store;
pub use value::{Key, Row, Value};
