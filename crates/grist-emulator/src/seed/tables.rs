//! Creating tables: `POST /tables`, and the table of `/apply` `AddTable` (id sanitized and made
//! unique, table metadata synthesized, `manualSort` first, then the given columns).

use serde_json::{json, Value};

use super::columns::add_column;
use super::display::{resolve_pending, PendingVisible};
use super::idents::{sanitize_ident, unique_ident};
use super::payload::{bad, column_spec, list_of};
use crate::error::EmulatorError;
use crate::model::{synthesized_table_fields, Column, Doc, Table, MANUAL_SORT};

/// Creates one table (with `manualSort` first) from `{"id": T, "columns": [...]}`.
pub(super) fn add_table(
    doc: &mut Doc,
    spec: &Value,
    pending: &mut Vec<PendingVisible>,
) -> Result<String, EmulatorError> {
    let raw_id = spec.get("id").and_then(Value::as_str).unwrap_or("Table1");
    let base = sanitize_ident(raw_id, "Table", true);
    let table_id = unique_ident(&base, |t| doc.table(t).is_some());
    let table_ref = doc.next_table_ref();
    let mut table = Table::new(table_id.clone(), Vec::new(), Vec::new());
    table.meta = Some(synthesized_table_fields(table_ref));
    let col_ref = doc.next_col_ref();
    let manual = Column::new(MANUAL_SORT, "ManualSortPos")
        .with("colRef", json!(col_ref))
        .with("parentId", json!(table_ref))
        .with("parentPos", json!(1));
    table.columns.push(manual);
    doc.push_table(table);
    let columns = match spec.get("columns") {
        Some(Value::Array(cols)) => cols.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(other) => return Err(bad(format!("invalid columns of table {raw_id}: {other}"))),
    };
    for c in &columns {
        add_column(doc, &table_id, column_spec(c)?, pending)?;
    }
    Ok(table_id)
}

/// `POST /api/docs/{doc}/tables`: returns the ids of the new tables.
pub fn add_tables(doc: &mut Doc, body: &Value) -> Result<Vec<String>, EmulatorError> {
    let mut pending = Vec::new();
    let mut ids = Vec::new();
    for spec in list_of(body, "tables")? {
        ids.push(add_table(doc, spec, &mut pending)?);
    }
    resolve_pending(doc, pending)?;
    Ok(ids)
}
