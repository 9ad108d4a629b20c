//! The write side of the API, used to seed docs: creating docs, tables and columns the way
//! Grist does (table ids capitalized, a `manualSort` column first, colRefs and positions
//! assigned), updating column fields, display formulas of Ref columns (a
//! `gristHelper_Display*` helper column `$col.visible`, made by `/apply` `SetDisplayFormula`
//! or, as a convenience, by giving a Ref column a `visibleCol`), and adding, updating and
//! removing records. Each call changes a copy of the doc, which replaces it only on success.
//!
//! Submodules:
//! * `payload` – reading the JSON payloads: named lists, column specs, row ids, field values.
//! * `idents` – doc ids, and table and column ids sanitized and made unique as Grist does.
//! * `tables` – creating tables.
//! * `columns` – adding, changing, renaming and removing columns.
//! * `display` – `visibleCol` and the display formulas (helper columns) of Ref columns.
//! * `records` – adding, updating and removing records.
//! * `apply` – the user actions of `POST /apply`.

mod apply;
mod columns;
mod display;
mod idents;
mod payload;
mod records;
mod tables;

pub use apply::apply_actions;
pub use columns::{add_columns, remove_column, update_columns};
pub use display::set_display_formula;
pub use idents::{new_doc_id, sanitize_ident};
pub(crate) use records::clear_references;
pub use records::{add_records, delete_records, update_records};
pub use tables::add_tables;
