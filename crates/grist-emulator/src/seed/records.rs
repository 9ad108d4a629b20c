//! Records: adding them (fields in column order, blanks at their type's default), updating
//! and removing them, with writes checked against the table's columns as Grist does.

use std::collections::HashSet;

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
    // Each new row takes max + 1: found once, not once per row (a scan of every row each).
    let mut next_id = table.next_row_id();
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
        let id = next_id;
        next_id += 1;
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
    let rec = table.record_mut(id).ok_or(EmulatorError::UnknownRecord {
        table: table_id,
        id,
    })?;
    for (k, v) in fields {
        rec.errors.shift_remove(&k);
        rec.fields.insert(k, v);
    }
    Ok(())
}

/// Removes the rows `ids` in one pass over the table, failing as removing them one at a time
/// would: at the first id the table does not hold, or no longer holds (given twice).
pub(super) fn remove_rows(table: &mut Table, ids: &[i64]) -> Result<(), EmulatorError> {
    let held: HashSet<i64> = table.records.iter().map(|r| r.id).collect();
    let mut gone = HashSet::with_capacity(ids.len());
    for &id in ids {
        if !held.contains(&id) || !gone.insert(id) {
            return Err(EmulatorError::UnknownRecord {
                table: table.id.clone(),
                id,
            });
        }
    }
    table.records.retain(|r| !gone.contains(&r.id));
    Ok(())
}

/// What Grist does to references when rows go: a `Ref:<table>` cell naming a removed row
/// becomes 0, and a `RefList:<table>` cell loses it (an empty list becomes null).
pub(crate) fn clear_references(doc: &mut Doc, table_id: &str, removed: &[i64]) {
    if removed.is_empty() {
        return;
    }
    let (as_ref, as_list) = (format!("Ref:{table_id}"), format!("RefList:{table_id}"));
    let removed: HashSet<i64> = removed.iter().copied().collect();
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
    remove_rows(table, &ids)?;
    clear_references(doc, table_id, &ids);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Column;

    fn people(n: i64) -> Doc {
        let mut doc = Doc::new("d");
        let rows = (1..=n)
            .map(|id| Record::new(id, json!({"Name": format!("p{id}")})).unwrap())
            .collect();
        doc.push_table(Table::new(
            "People",
            vec![Column::new("Name", "Text")],
            rows,
        ));
        doc
    }

    fn remaining(doc: &Doc) -> Vec<i64> {
        doc.table("People")
            .unwrap()
            .records
            .iter()
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn removing_rows_in_one_pass_fails_at_an_id_removing_them_one_by_one_would() {
        let mut doc = people(5);
        delete_records(&mut doc, "People", &json!([4, 2])).unwrap();
        assert_eq!(remaining(&doc), vec![1, 3, 5]);
        for (body, unknown) in [(json!([1, 9]), 9), (json!([3, 3]), 3), (json!([2]), 2)] {
            let mut copy = doc.clone();
            match delete_records(&mut copy, "People", &body) {
                Err(EmulatorError::UnknownRecord { id, .. }) => assert_eq!(id, unknown, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn rows_added_together_take_the_ids_after_the_last() {
        let mut doc = people(3);
        delete_records(&mut doc, "People", &json!([2])).unwrap();
        let body = json!({"records": [{"fields": {"Name": "a"}}, {"fields": {"Name": "b"}}]});
        assert_eq!(add_records(&mut doc, "People", &body).unwrap(), vec![4, 5]);
        update_records(
            &mut doc,
            "People",
            &json!({"records": [{"id": 5, "fields": {"Name": "c"}}]}),
        )
        .unwrap();
        assert_eq!(
            doc.table("People").unwrap().record(5).unwrap().fields["Name"],
            "c"
        );
        assert!(update_records(
            &mut doc,
            "People",
            &json!({"records": [{"id": 2, "fields": {}}]})
        )
        .is_err());
    }
}
