//! Columns: adding them (ids sanitized and made unique, colRef, parent and position assigned,
//! defaults filled), changing their fields (`colId` renames a column, its records' fields and
//! the display formulas naming it), and removing them with their display helper.

use serde_json::{json, Value};

use super::display::{resolve_pending, set_visible_col, PendingVisible};
use super::idents::{sanitize_ident, unique_ident};
use super::payload::{bad, column_spec, list_of, normalize_field, ColumnSpec};
use crate::error::EmulatorError;
use crate::model::{Column, Doc, Fields, Table};

pub(super) fn next_parent_pos(table: &Table) -> f64 {
    table
        .columns
        .iter()
        .filter_map(Column::parent_pos)
        .fold(0.0, f64::max)
        + 1.0
}

pub(super) fn pos_value(pos: f64) -> Value {
    if pos.fract() == 0.0 {
        json!(pos as i64)
    } else {
        json!(pos)
    }
}

/// Adds one column to a table; returns its id. A `visibleCol` is left for the caller.
pub(super) fn add_column(
    doc: &mut Doc,
    table_id: &str,
    spec: ColumnSpec,
    pending: &mut Vec<PendingVisible>,
) -> Result<String, EmulatorError> {
    let col_ref = doc.next_col_ref();
    let table = doc.table_mut_or_err(table_id)?;
    let table_ref = table.table_ref();
    let label = spec
        .fields
        .get("label")
        .and_then(Value::as_str)
        .map(str::to_string);
    let base = match (&spec.id, &label) {
        (Some(id), _) => sanitize_ident(id, "c", false),
        (None, Some(label)) => sanitize_ident(label, "c", false),
        (None, None) => {
            let letters: Vec<String> = (b'A'..=b'Z').map(|c| char::from(c).to_string()).collect();
            letters
                .into_iter()
                .find(|l| table.column(l).is_none())
                .unwrap_or_else(|| "A".into())
        }
    };
    let col_id = unique_ident(&base, |c| c == "id" || table.column(c).is_some());
    let mut fields = Fields::new();
    let mut visible = None;
    for (k, v) in spec.fields {
        match k.as_str() {
            "visibleCol" => visible = Some(v),
            "colRef" | "parentId" | "parentPos" | "displayCol" | "colId" => {}
            _ => {
                let v = normalize_field(&k, v);
                fields.insert(k, v);
            }
        }
    }
    fields.insert("colRef".into(), json!(col_ref));
    fields.insert("parentId".into(), json!(table_ref));
    fields.insert("parentPos".into(), pos_value(next_parent_pos(table)));
    let mut col = Column {
        id: col_id.clone(),
        fields,
    };
    col.fill_defaults();
    table.columns.push(col);
    if let Some(v) = visible {
        pending.push(PendingVisible {
            table: table_id.to_string(),
            column: col_id.clone(),
            visible: v,
        });
    }
    Ok(col_id)
}

/// `POST /api/docs/{doc}/tables/{T}/columns`: returns the ids of the new columns.
pub fn add_columns(
    doc: &mut Doc,
    table_id: &str,
    body: &Value,
) -> Result<Vec<String>, EmulatorError> {
    doc.table_or_err(table_id)?;
    let mut pending = Vec::new();
    let mut ids = Vec::new();
    for spec in list_of(body, "columns")? {
        ids.push(add_column(doc, table_id, column_spec(spec)?, &mut pending)?);
    }
    resolve_pending(doc, pending)?;
    Ok(ids)
}

/// Changes fields of one column (`colId` renames it); with `display`, a `visibleCol` of a Ref
/// column also sets its display formula.
pub(super) fn update_column(
    doc: &mut Doc,
    table_id: &str,
    col_id: &str,
    fields: Fields,
    display: bool,
) -> Result<(), EmulatorError> {
    let mut visible = None;
    let mut rename = None;
    {
        let table = doc.table_mut_or_err(table_id)?;
        let col = table
            .column_mut(col_id)
            .ok_or_else(|| EmulatorError::UnknownColumn {
                table: table_id.to_string(),
                column: col_id.to_string(),
            })?;
        for (k, v) in fields {
            match k.as_str() {
                "visibleCol" => visible = Some(v),
                "colId" => rename = v.as_str().map(str::to_string),
                "colRef" | "parentId" => {}
                _ => {
                    let v = normalize_field(&k, v);
                    col.fields.insert(k, v);
                }
            }
        }
    }
    let mut col_id = col_id.to_string();
    if let Some(new_id) = rename.filter(|n| *n != col_id) {
        col_id = rename_column(doc, table_id, &col_id, &new_id)?;
    }
    if let Some(v) = visible {
        set_visible_col(doc, table_id, &col_id, &v, display)?;
    }
    Ok(())
}

fn rename_column(
    doc: &mut Doc,
    table_id: &str,
    old: &str,
    new: &str,
) -> Result<String, EmulatorError> {
    let table = doc.table_mut_or_err(table_id)?;
    let new_id = unique_ident(&sanitize_ident(new, "c", false), |c| {
        c == "id" || table.column(c).is_some()
    });
    if let Some(col) = table.column_mut(old) {
        col.id = new_id.clone();
        if col.label() == old {
            col.fields.insert("label".into(), json!(new_id));
        }
    }
    for rec in &mut table.records {
        if let Some(v) = rec.fields.shift_remove(old) {
            rec.fields.insert(new_id.clone(), v);
        }
        if let Some(v) = rec.errors.shift_remove(old) {
            rec.errors.insert(new_id.clone(), v);
        }
    }
    // Display formulas naming the old id follow it.
    let old_prefix = format!("${old}.");
    for col in &mut table.columns {
        if let Some(rest) = col.formula().strip_prefix(&old_prefix) {
            let formula = format!("${new_id}.{rest}");
            col.fields.insert("formula".into(), json!(formula));
        }
    }
    Ok(new_id)
}

/// `PATCH /api/docs/{doc}/tables/{T}/columns`: `{"columns": [{"id": c, "fields": {...}}]}`.
pub fn update_columns(doc: &mut Doc, table_id: &str, body: &Value) -> Result<(), EmulatorError> {
    doc.table_or_err(table_id)?;
    for spec in list_of(body, "columns")? {
        let spec = column_spec(spec)?;
        let col_id = spec.id.ok_or_else(|| bad("column id is required"))?;
        update_column(doc, table_id, &col_id, spec.fields, true)?;
    }
    Ok(())
}

/// `DELETE /api/docs/{doc}/tables/{T}/columns/{c}` (its display helper goes too).
pub fn remove_column(doc: &mut Doc, table_id: &str, col_id: &str) -> Result<(), EmulatorError> {
    let table = doc.table_mut_or_err(table_id)?;
    let col = table
        .column(col_id)
        .ok_or_else(|| EmulatorError::UnknownColumn {
            table: table_id.to_string(),
            column: col_id.to_string(),
        })?;
    let helper = table
        .column_by_ref(col.display_col())
        .filter(|h| h.is_hidden())
        .map(|h| h.id.clone());
    table
        .columns
        .retain(|c| c.id != col_id && Some(&c.id) != helper.as_ref());
    for rec in &mut table.records {
        rec.fields.shift_remove(col_id);
        rec.errors.shift_remove(col_id);
    }
    Ok(())
}
