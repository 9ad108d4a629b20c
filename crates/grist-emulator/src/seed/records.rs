//! Records: adding them (fields in column order, blanks at their type's default), updating
//! and removing them, with writes checked against the table's columns as Grist does.

use serde_json::{json, Value};

use super::payload::{bad, list_of, record_id};
use crate::error::EmulatorError;
use crate::model::{default_for_type, object_fields, Doc, Fields, Record, Table};

/// Checks the fields of a write against the table's columns; an empty formula column that
/// gets a value becomes a data column, as in Grist.
fn check_write(table: &mut Table, fields: &Fields) -> Result<(), EmulatorError> {
    for key in fields.keys() {
        let Some(col) = table.column_mut(key) else {
            return Err(bad(format!("Invalid column \"{key}\"")));
        };
        if col.is_formula() {
            if !col.formula().is_empty() {
                return Err(bad(format!("Can't save value to formula column {key}")));
            }
            col.fields.insert("isFormula".into(), json!(false));
        }
    }
    Ok(())
}

/// Adds records (fields in column order, blanks at their type's default); returns their ids.
pub(super) fn insert_records(
    table: &mut Table,
    rows: Vec<Fields>,
) -> Result<Vec<i64>, EmulatorError> {
    let mut ids = Vec::new();
    for given in rows {
        check_write(table, &given)?;
        let mut given = given;
        let mut fields = Fields::new();
        for col in &table.columns {
            if col.is_hidden() || col.is_formula() {
                continue;
            }
            let value = given
                .shift_remove(&col.id)
                .unwrap_or_else(|| default_for_type(col.col_type()));
            fields.insert(col.id.clone(), value);
        }
        fields.extend(given);
        let id = table.next_row_id();
        table.records.push(Record {
            id,
            fields,
            errors: Fields::new(),
        });
        ids.push(id);
    }
    Ok(ids)
}

pub(super) fn update_one(table: &mut Table, id: i64, fields: Fields) -> Result<(), EmulatorError> {
    check_write(table, &fields)?;
    let table_id = table.id.clone();
    let rec =
        table
            .records
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(EmulatorError::UnknownRecord {
                table: table_id,
                id,
            })?;
    for (k, v) in fields {
        rec.errors.shift_remove(&k);
        rec.fields.insert(k, v);
    }
    Ok(())
}

pub(super) fn remove_one(table: &mut Table, id: i64) -> Result<(), EmulatorError> {
    let before = table.records.len();
    table.records.retain(|r| r.id != id);
    if before == table.records.len() {
        return Err(EmulatorError::UnknownRecord {
            table: table.id.clone(),
            id,
        });
    }
    Ok(())
}

/// What Grist does to references when rows go: a `Ref:<table>` cell naming a removed row
/// becomes 0, and a `RefList:<table>` cell loses it (an empty list becomes null).
pub(crate) fn clear_references(doc: &mut Doc, table_id: &str, removed: &[i64]) {
    if removed.is_empty() {
        return;
    }
    let (as_ref, as_list) = (format!("Ref:{table_id}"), format!("RefList:{table_id}"));
    let gone = |v: &Value| v.as_i64().is_some_and(|id| removed.contains(&id));
    for t in 0..doc.tables.len() {
        let columns: Vec<(String, bool)> = doc.tables[t]
            .columns
            .iter()
            .filter(|c| c.col_type() == as_ref || c.col_type() == as_list)
            .map(|c| (c.id.clone(), c.col_type() == as_list))
            .collect();
        let touched = doc.tables[t].records.iter().any(|r| {
            columns.iter().any(|(c, _)| match r.fields.get(c) {
                Some(Value::Array(items)) => items.iter().any(gone),
                Some(v) => gone(v),
                None => false,
            })
        });
        if !touched {
            continue;
        }
        let table = std::sync::Arc::make_mut(&mut doc.tables[t]);
        for r in &mut table.records {
            for (c, is_list) in &columns {
                let Some(v) = r.fields.get_mut(c) else {
                    continue;
                };
                match v {
                    Value::Array(items) if *is_list && items.iter().any(gone) => {
                        items.retain(|i| !gone(i));
                        if items.len() <= 1 {
                            *v = Value::Null;
                        }
                    }
                    other if gone(other) => *other = json!(0),
                    _ => {}
                }
            }
        }
    }
}

/// `POST /api/docs/{doc}/tables/{T}/records`: `{"records": [{"fields": {...}}]}`.
pub fn add_records(doc: &mut Doc, table_id: &str, body: &Value) -> Result<Vec<i64>, EmulatorError> {
    let rows = list_of(body, "records")?
        .iter()
        .map(|r| object_fields(r.get("fields").cloned().unwrap_or(Value::Null)))
        .collect::<Result<Vec<_>, _>>()?;
    insert_records(doc.table_mut_or_err(table_id)?, rows)
}

/// `PATCH /api/docs/{doc}/tables/{T}/records`: `{"records": [{"id": n, "fields": {...}}]}`.
pub fn update_records(doc: &mut Doc, table_id: &str, body: &Value) -> Result<(), EmulatorError> {
    let table = doc.table_mut_or_err(table_id)?;
    for r in list_of(body, "records")? {
        let id = record_id(r.get("id"))?;
        let fields = object_fields(r.get("fields").cloned().unwrap_or(Value::Null))?;
        update_one(table, id, fields)?;
    }
    Ok(())
}

/// `POST /api/docs/{doc}/tables/{T}/records/delete`: `[id, ...]`.
pub fn delete_records(doc: &mut Doc, table_id: &str, body: &Value) -> Result<(), EmulatorError> {
    let table = doc.table_mut_or_err(table_id)?;
    let ids = body
        .as_array()
        .ok_or_else(|| bad("Invalid payload: expected a list of row ids"))?
        .iter()
        .map(|id| record_id(Some(id)))
        .collect::<Result<Vec<_>, _>>()?;
    for id in &ids {
        remove_one(table, *id)?;
    }
    clear_references(doc, table_id, &ids);
    Ok(())
}
