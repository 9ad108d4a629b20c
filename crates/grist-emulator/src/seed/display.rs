//! Display formulas of Ref columns: `visibleCol` (given as a colRef or as a column id of the
//! referenced table, resolved once all tables exist) and Grist's `SetDisplayFormula`, which
//! keeps a `gristHelper_Display*` helper column and points `displayCol` at it.

use serde_json::{json, Value};

use super::columns::{next_parent_pos, pos_value};
use super::idents::unique_ident;
use super::payload::bad;
use crate::error::EmulatorError;
use crate::model::{referenced_table, Column, Doc};

/// A `visibleCol` given for a Ref column, resolved once all tables exist.
pub(super) struct PendingVisible {
    pub(super) table: String,
    pub(super) column: String,
    pub(super) visible: Value,
}

pub(super) fn resolve_pending(
    doc: &mut Doc,
    pending: Vec<PendingVisible>,
) -> Result<(), EmulatorError> {
    for p in pending {
        set_visible_col(doc, &p.table, &p.column, &p.visible, true)?;
    }
    Ok(())
}

/// Sets `visibleCol` of a column (given as a colRef, or as a column id of the referenced
/// table); with `display`, also points the column's display formula at it.
pub(super) fn set_visible_col(
    doc: &mut Doc,
    table_id: &str,
    col_id: &str,
    visible: &Value,
    display: bool,
) -> Result<(), EmulatorError> {
    let table = doc.table_or_err(table_id)?;
    let col = table
        .column(col_id)
        .ok_or_else(|| EmulatorError::UnknownColumn {
            table: table_id.to_string(),
            column: col_id.to_string(),
        })?;
    let target = referenced_table(col.col_type()).map(str::to_string);
    let resolved: Option<(i64, String)> = match (visible, &target) {
        (Value::Null, _) => None,
        (Value::Number(n), _) if n.as_f64() == Some(0.0) => None,
        (Value::Number(n), target) => {
            let col_ref = n.as_i64().unwrap_or(0);
            let found = target
                .as_deref()
                .and_then(|t| doc.table(t))
                .and_then(|t| t.column_by_ref(col_ref))
                .or_else(|| doc.column_by_ref(col_ref).map(|(_, c)| c));
            match found {
                Some(c) => Some((col_ref, c.id.clone())),
                None if target.is_none() => Some((col_ref, String::new())),
                None => {
                    return Err(bad(format!(
                        "visibleCol {col_ref} is not a column of {}",
                        target.as_deref().unwrap_or_default()
                    )))
                }
            }
        }
        (Value::String(name), Some(t)) => {
            let target_table = doc
                .table(t)
                .ok_or_else(|| bad(format!("visibleCol {name}: no table {t}")))?;
            let c = target_table
                .column(name)
                .ok_or_else(|| bad(format!("visibleCol {name} is not a column of {t}")))?;
            Some((c.col_ref(), c.id.clone()))
        }
        (other, _) => {
            return Err(bad(format!(
                "invalid visibleCol {other} for column {col_id}"
            )))
        }
    };
    let table = doc.table_mut_or_err(table_id)?;
    if let Some(col) = table.column_mut(col_id) {
        col.fields.insert(
            "visibleCol".into(),
            json!(resolved.as_ref().map_or(0, |(r, _)| *r)),
        );
    }
    if display && target.is_some() {
        let formula = match &resolved {
            Some((_, vis_id)) if !vis_id.is_empty() => format!("${col_id}.{vis_id}"),
            _ => String::new(),
        };
        set_display_formula(doc, table_id, col_id, &formula)?;
    }
    Ok(())
}

/// Grist's `SetDisplayFormula` for a column: creates, updates or (with an empty formula)
/// removes its `gristHelper_Display*` helper column and points `displayCol` at it.
pub fn set_display_formula(
    doc: &mut Doc,
    table_id: &str,
    col_id: &str,
    formula: &str,
) -> Result<(), EmulatorError> {
    let next_ref = doc.next_col_ref();
    let table = doc.table_mut_or_err(table_id)?;
    let col = table
        .column(col_id)
        .ok_or_else(|| EmulatorError::UnknownColumn {
            table: table_id.to_string(),
            column: col_id.to_string(),
        })?;
    let helper_ref = table
        .column_by_ref(col.display_col())
        .filter(|h| h.id.starts_with("gristHelper_"))
        .map(Column::col_ref);
    if formula.is_empty() {
        if let Some(helper_ref) = helper_ref {
            table.columns.retain(|c| c.col_ref() != helper_ref);
        }
        if let Some(col) = table.column_mut(col_id) {
            col.fields.insert("displayCol".into(), json!(0));
        }
        return Ok(());
    }
    if let Some(helper_ref) = helper_ref {
        if let Some(helper) = table.columns.iter_mut().find(|c| c.col_ref() == helper_ref) {
            helper.fields.insert("formula".into(), json!(formula));
        }
        return Ok(());
    }
    let helper_id = unique_ident("gristHelper_Display", |c| table.column(c).is_some());
    let table_ref = table.table_ref();
    let mut helper = Column::new(helper_id.clone(), "Any")
        .with("isFormula", json!(true))
        .with("formula", json!(formula))
        .with("colRef", json!(next_ref))
        .with("parentId", json!(table_ref))
        .with("parentPos", pos_value(next_parent_pos(table)));
    helper.fill_defaults();
    table.columns.push(helper);
    if let Some(col) = table.column_mut(col_id) {
        col.fields.insert("displayCol".into(), json!(next_ref));
    }
    Ok(())
}
