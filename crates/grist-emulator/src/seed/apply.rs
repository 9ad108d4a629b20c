//! `POST /api/docs/{doc}/apply`: the user actions the emulator knows (records, bulk records,
//! column metadata, `SetDisplayFormula`, adding, renaming and removing tables and columns), applied
//! together, answered with Grist's action number, hash and return values.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::columns::{add_column, remove_column, update_column};
use super::display::{resolve_pending, set_display_formula};
use super::payload::{bad, record_id, ColumnSpec};
use super::records::{clear_references, insert_records, remove_rows, update_one};
use super::tables::add_table;
use crate::error::EmulatorError;
use crate::model::{object_fields, Column, Doc, Fields};

static ACTION_NUM: AtomicU64 = AtomicU64::new(1);

/// Bulk column values `{col: [v1, v2, ...]}` as one field map per row.
fn bulk_rows(count: usize, columns: &Value) -> Result<Vec<Fields>, EmulatorError> {
    let mut rows = vec![Fields::new(); count];
    for (col, values) in object_fields(columns.clone())? {
        let values = values
            .as_array()
            .ok_or_else(|| bad(format!("Invalid bulk values of column {col}")))?;
        for (row, v) in rows.iter_mut().zip(values) {
            row.insert(col.clone(), v.clone());
        }
    }
    Ok(rows)
}

fn arg(action: &[Value], i: usize) -> &Value {
    action.get(i).unwrap_or(&Value::Null)
}

fn arg_str(action: &[Value], i: usize) -> Result<&str, EmulatorError> {
    arg(action, i)
        .as_str()
        .ok_or_else(|| bad(format!("Invalid action argument {i}: {}", arg(action, i))))
}

fn ids_of(value: &Value) -> Result<Vec<i64>, EmulatorError> {
    value
        .as_array()
        .ok_or_else(|| bad(format!("Invalid row ids: {value}")))?
        .iter()
        .map(|v| record_id(Some(v)))
        .collect()
}

fn column_by_ref_ids(doc: &Doc, col_ref: i64) -> Result<(String, String), EmulatorError> {
    doc.column_by_ref(col_ref)
        .map(|(t, c)| (t.id.clone(), c.id.clone()))
        .ok_or_else(|| bad(format!("No column with colRef {col_ref}")))
}

/// `["RenameTable", old, new]`: the table's id, and the `Ref:`/`RefList:` types naming it.
fn rename_table(doc: &mut Doc, old: &str, new: &str) -> Result<(), EmulatorError> {
    if doc.table(new).is_some() {
        return Err(bad(format!("Table {new} already exists")));
    }
    doc.table_mut_or_err(old)?.id = new.to_string();
    for t in 0..doc.tables.len() {
        let renamed = |c: &Column| match c.col_type().split_once(':') {
            Some((kind @ ("Ref" | "RefList"), target)) if target == old => {
                Some(format!("{kind}:{new}"))
            }
            _ => None,
        };
        if !doc.tables[t].columns.iter().any(|c| renamed(c).is_some()) {
            continue;
        }
        for c in &mut std::sync::Arc::make_mut(&mut doc.tables[t]).columns {
            if let Some(ty) = renamed(c) {
                c.fields.insert("type".into(), json!(ty));
            }
        }
    }
    Ok(())
}

/// One user action of `POST /api/docs/{doc}/apply`; returns its `retValue`.
fn apply_action(doc: &mut Doc, action: &[Value]) -> Result<Value, EmulatorError> {
    let name = arg_str(action, 0)?;
    let is_meta = arg(action, 1).as_str() == Some("_grist_Tables_column");
    match name {
        "SetDisplayFormula" => {
            let table_id = arg_str(action, 1)?;
            let formula = arg(action, 4).as_str().unwrap_or("");
            if let Some(col_ref) = arg(action, 3).as_i64().filter(|r| *r > 0) {
                let col_id = doc
                    .table_or_err(table_id)?
                    .column_by_ref(col_ref)
                    .map(|c| c.id.clone())
                    .ok_or_else(|| bad(format!("No column with colRef {col_ref} in {table_id}")))?;
                set_display_formula(doc, table_id, &col_id, formula)?;
            }
            Ok(Value::Null)
        }
        "UpdateRecord" if is_meta => {
            let col_ref = record_id(action.get(2))?;
            let (table_id, col_id) = column_by_ref_ids(doc, col_ref)?;
            update_column(
                doc,
                &table_id,
                &col_id,
                object_fields(arg(action, 3).clone())?,
                false,
            )?;
            Ok(Value::Null)
        }
        "BulkUpdateRecord" if is_meta => {
            let refs = ids_of(arg(action, 2))?;
            for (col_ref, fields) in refs.iter().zip(bulk_rows(refs.len(), arg(action, 3))?) {
                let (table_id, col_id) = column_by_ref_ids(doc, *col_ref)?;
                update_column(doc, &table_id, &col_id, fields, false)?;
            }
            Ok(Value::Null)
        }
        "AddRecord" => {
            let table = doc.table_mut_or_err(arg_str(action, 1)?)?;
            let ids = insert_records(table, vec![object_fields(arg(action, 3).clone())?])?;
            Ok(json!(ids.first()))
        }
        "BulkAddRecord" => {
            let count = arg(action, 2).as_array().map_or(0, Vec::len);
            let rows = bulk_rows(count, arg(action, 3))?;
            let table = doc.table_mut_or_err(arg_str(action, 1)?)?;
            Ok(json!(insert_records(table, rows)?))
        }
        "UpdateRecord" => {
            let table = doc.table_mut_or_err(arg_str(action, 1)?)?;
            update_one(
                table,
                record_id(action.get(2))?,
                object_fields(arg(action, 3).clone())?,
            )?;
            Ok(Value::Null)
        }
        "BulkUpdateRecord" => {
            let ids = ids_of(arg(action, 2))?;
            let rows = bulk_rows(ids.len(), arg(action, 3))?;
            let table = doc.table_mut_or_err(arg_str(action, 1)?)?;
            for (id, fields) in ids.into_iter().zip(rows) {
                update_one(table, id, fields)?;
            }
            Ok(Value::Null)
        }
        "RemoveRecord" | "BulkRemoveRecord" => {
            let table_id = arg_str(action, 1)?;
            let ids = match name {
                "RemoveRecord" => vec![record_id(action.get(2))?],
                _ => ids_of(arg(action, 2))?,
            };
            let table = doc.table_mut_or_err(table_id)?;
            remove_rows(table, &ids)?;
            clear_references(doc, table_id, &ids);
            Ok(Value::Null)
        }
        "RenameTable" => {
            rename_table(doc, arg_str(action, 1)?, arg_str(action, 2)?)?;
            Ok(Value::Null)
        }
        "AddTable" => {
            let spec = json!({"id": arg(action, 1), "columns": arg(action, 2)});
            let mut pending = Vec::new();
            let table_id = add_table(doc, &spec, &mut pending)?;
            resolve_pending(doc, pending)?;
            let table = doc.table_or_err(&table_id)?;
            Ok(json!({
                "table_id": table_id,
                "id": table.table_ref(),
                "columns": table.columns.iter().filter(|c| !c.is_hidden()).map(|c| c.id.clone()).collect::<Vec<_>>(),
            }))
        }
        "AddColumn" => {
            let table_id = arg_str(action, 1)?;
            let mut fields = object_fields(arg(action, 3).clone())?;
            fields.shift_remove("id");
            let spec = ColumnSpec {
                id: arg(action, 2).as_str().map(str::to_string),
                fields,
            };
            let mut pending = Vec::new();
            let col_id = add_column(doc, table_id, spec, &mut pending)?;
            resolve_pending(doc, pending)?;
            let col_ref = doc
                .table_or_err(table_id)?
                .column(&col_id)
                .map_or(0, Column::col_ref);
            Ok(json!({"colRef": col_ref, "colId": col_id}))
        }
        "RemoveColumn" => {
            remove_column(doc, arg_str(action, 1)?, arg_str(action, 2)?)?;
            Ok(Value::Null)
        }
        "RemoveTable" => {
            let table_id = arg_str(action, 1)?;
            doc.table_or_err(table_id)?;
            doc.tables.retain(|t| t.id != table_id);
            Ok(Value::Null)
        }
        other => Err(bad(format!("Unsupported action {other} (grist-emulator)"))),
    }
}

/// `POST /api/docs/{doc}/apply`: a list of user actions, applied together.
pub fn apply_actions(doc: &mut Doc, body: &Value) -> Result<Value, EmulatorError> {
    let actions = body
        .as_array()
        .ok_or_else(|| bad("Invalid payload: expected a list of actions"))?;
    let mut ret_values = Vec::new();
    for action in actions {
        let action = action
            .as_array()
            .ok_or_else(|| bad(format!("Invalid action: {action}")))?;
        ret_values.push(apply_action(doc, action)?);
    }
    let num = ACTION_NUM.fetch_add(1, Ordering::Relaxed);
    Ok(json!({
        "actionNum": num,
        "actionHash": format!("{num:064x}"),
        "retValues": ret_values,
        "isModification": !actions.is_empty(),
    }))
}
