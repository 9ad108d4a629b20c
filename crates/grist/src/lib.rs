//! `grist`: a client for the parts of Grist's REST API an ETL needs.
//!
//! * [`client`]: the HTTP client (auth, timeouts, retries, errors a user can act on);
//! * [`api`]: the shapes of Grist's answers (tables, columns, records);
//! * [`changes`]: the change feed (`/states`, `/compare`, records by id);
//! * [`csv_stream`]: a CSV download parsed as a stream of records;
//! * [`cells`]: one typing of Grist cells for every column type and endpoint, and which
//!   endpoint a table is read through;
//! * [`read_log`]: what an extract read, to tell cheaply on the next run whether it changed;
//! * [`steps`]: the Grist extracts (`grist.data_model`, `grist.graph`, `grist.test_set`);
//! * [`workspaces`]: which workspace `etl grist seed` creates docs in;
//! * [`folder`]: the doc folder format; [`seed`]: creating a doc from one; [`export`]: a doc into
//!   one.

pub mod api;
pub mod cells;
pub mod changes;
pub mod client;
pub mod csv_stream;
pub mod error;
pub mod export;
pub mod folder;
pub mod read_log;
pub mod seed;
pub mod steps;
pub mod workspaces;

pub use api::{Column, ColumnType, Record};
pub use client::{GristClient, GristConfig};
pub use error::GristError;
