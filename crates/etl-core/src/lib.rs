//! `etl-core`: the incremental engine, independent of any database or connector.
//!
//! * [`value`]: rows, values and keys; [`row_hash`]: their content hash; [`diff`]: what a batch
//!   changes.
//! * [`step`]: the traits steps implement; [`store`]: the trait the state store implements.
//! * [`config`]: `pipelines.toml`; [`dag`]: the validated pipeline and step selection.
//! * [`runner`]: runs a pipeline; [`retry`]: backoff for transient failures; [`report`]: what a
//!   run did.

pub mod config;
pub mod dag;
pub mod diff;
pub mod guard;
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
