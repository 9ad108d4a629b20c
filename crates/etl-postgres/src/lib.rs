//! `etl-postgres`: the engine's state store on Postgres, its migrations and its step locks.
//!
//! | module | owns |
//! | --- | --- |
//! | [`store`] | [`PgStore`]: the engine's `Store` (row metadata, capture, batches, runs, memos) |
//! | [`reads`] | the reads a step may make of the engine's state (`StoreReads`): drift checks |
//! | [`history`] | the run history (`etl.runs`, `etl.run_steps`): written as runs go, read back |
//! | [`sizes`] | the bookkeeping's size beside the data (rows, tombstones, bytes) |
//! | [`queue`] | the work queue: batches leased to workers (`etl.batches`, `etl.workers`) |
//! | [`pending`] | how long a step's oldest unprocessed change has waited (for the metrics) |
//! | [`deletions`] | what a transform's run would delete, counted before it deletes anything |
//! | [`schema`] | the data tables' columns and the bookkeeping tables beside them |
//! | [`lock`] | the session advisory locks a step holds while it runs |
//! | [`vector_index`] | the embedding tables' vector indexes and dimension, as settings say |
//! | [`session`] | how the engine's connections start: `application_name`, one round trip of settings |
//! | [`namespace`] | which pipeline the process serves: its data and bookkeeping schemas |
//! | [`migrate`] | the SQL migrations (`migrations/`) and `etl migrate` |
//! | [`ident`] | the one quoting helper for SQL identifiers |
//! | [`error`] | database errors as the engine's, transient or not |

pub mod deletions;
pub mod error;
pub mod history;
pub mod ident;
pub mod lock;
pub mod migrate;
pub mod namespace;
pub mod pending;
pub mod queue;
pub mod reads;
pub mod schema;
pub mod session;
pub mod sizes;
pub mod store;
pub mod vector_index;

pub use migrate::{migrate, migrations_digest, MigrateError};
pub use store::PgStore;
