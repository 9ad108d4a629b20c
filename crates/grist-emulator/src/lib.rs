//! `grist-emulator`: a local HTTP server that answers like Grist's REST API (grist-core 1.7),
//! serving documents from folders. Tests use it as a fake Grist; `etl grist serve DIR...` serves
//! folders with it.
//!
//! A doc is a folder whose name is the doc id, holding per table `<T>.columns.json` (as
//! `GET /tables/{T}/columns?hidden=true` answers) and `<T>.records.json` (as
//! `GET /tables/{T}/records` answers), and optionally `tables.json` (as `GET /tables` answers;
//! served as given, and giving the table order). Recordings of a real Grist are valid folders.
//!
//! Modules:
//! * [`server`] holds [`Emulator`] and [`RunningEmulator`] and the router; its submodules hold
//!   the request gate (request log, faults, auth), the answers, and the endpoint handlers
//!   (workspaces and docs, reads, CSV download, writes).
//! * [`docs`] holds [`Docs`], the handle tests use to edit docs, inject faults and count
//!   requests; [`fault`] holds the fault rules and the request log.
//! * [`model`] holds docs, tables, columns and records; [`load`] reads doc folders.
//! * [`csv_export`] renders `/download/csv` through [`format`](mod@format) (column
//!   formatters), [`cellvalue`] (Grist's generic value rendering), [`number`] and [`datefmt`];
//!   [`eval`] gives cell values, simple formulas and Ref display values.
//! * [`seed`] does the writes behind the endpoints (create docs, tables, columns, records;
//!   display formulas; `/apply`), split by what they change.
//! * [`history`] keeps each doc's action states, behind `/states` and `/compare`.
//! * [`error`] holds [`EmulatorError`].

pub mod cellvalue;
pub mod csv_export;
pub mod datefmt;
pub mod docs;
pub mod error;
pub mod eval;
pub mod fault;
pub mod format;
pub mod history;
pub mod load;
pub mod model;
pub mod number;
pub mod seed;
pub mod server;

pub use csv_export::{render_csv, HeaderMode};
pub use docs::Docs;
pub use error::EmulatorError;
pub use fault::{Fault, FaultKind, RequestInfo};
pub use model::{Column, Doc, Fields, Record, Table};
pub use server::{Emulator, RunningEmulator};
