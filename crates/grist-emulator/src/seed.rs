//! Owns the write side of the API, used to seed docs: creating docs, tables and columns the way
//! Grist does (table ids capitalized, a `manualSort` column first, colRefs and positions
//! assigned), updating column fields, display formulas of Ref columns (a
//! `gristHelper_Display*` helper column `$col.visible`, made by `/apply` `SetDisplayFormula`
//! or, as a convenience, by giving a Ref column a `visibleCol`), and adding, updating and
//! removing records. Each call changes a copy of the doc, which replaces it only on success.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use serde_json::{json, Value};

use crate::error::EmulatorError;
use crate::model::{
    default_for_type, object_fields, referenced_table, synthesized_table_fields, Column, Doc,
    Fields, Record, Table, MANUAL_SORT,
};

static ACTION_NUM: AtomicU64 = AtomicU64::new(1);

const DOC_ID_ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A fresh doc id in Grist's style (22 characters).
pub fn new_doc_id() -> String {
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| char::from(DOC_ID_ALPHABET[rng.gen_range(0..DOC_ID_ALPHABET.len())]))
        .collect()
}

fn bad(message: impl Into<String>) -> EmulatorError {
    EmulatorError::bad_request(message)
}

/// Grist's identifier sanitizing: runs of characters other than `[A-Za-z0-9_]` become `_`,
/// leading `_` go, a leading digit gets `prefix`, and table ids start upper-case.
pub fn sanitize_ident(raw: &str, prefix: &str, capitalize: bool) -> String {
    let mut out = String::new();
    let mut in_bad = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_bad = false;
        } else if !in_bad {
            out.push('_');
            in_bad = true;
        }
    }
    let mut out = out.trim_start_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("{prefix}{out}");
    }
    if out.is_empty() {
        out = prefix.to_string();
    }
    if capitalize {
        let mut chars = out.chars();
        if let Some(first) = chars.next() {
            out = first.to_ascii_uppercase().to_string() + chars.as_str();
        }
    }
    out
}

/// `base`, or `base2`, `base3`, ... : the first not taken.
fn unique_ident(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|c| !taken(c))
        .unwrap_or_else(|| base.to_string())
}

/// A column spec of the API: `{"id": c, "fields": {...}}` (fields may also sit beside `id`,
/// as in `/apply` `AddTable`).
struct ColumnSpec {
    id: Option<String>,
    fields: Fields,
}

fn column_spec(value: &Value) -> Result<ColumnSpec, EmulatorError> {
    let Value::Object(map) = value else {
        return Err(bad(format!("invalid column: {value}")));
    };
    let id = match map.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(other) => return Err(bad(format!("invalid column id: {other}"))),
    };
    let mut fields: Fields = match map.get("fields") {
        Some(f) => object_fields(f.clone())?,
        None => Fields::new(),
    };
    for (k, v) in map {
        if k != "id" && k != "fields" {
            fields.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(ColumnSpec { id, fields })
}

fn list_of<'a>(body: &'a Value, key: &str) -> Result<&'a Vec<Value>, EmulatorError> {
    body.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("Invalid payload: expected a \"{key}\" list")))
}

/// Normalizes a field value the API accepts in several forms (`widgetOptions` as an object).
fn normalize_field(key: &str, value: Value) -> Value {
    match (key, value) {
        ("widgetOptions", v @ Value::Object(_)) => Value::String(v.to_string()),
        ("widgetOptions", Value::Null) => Value::String(String::new()),
        (_, v) => v,
    }
}

/// A `visibleCol` given for a Ref column, resolved once all tables exist.
struct PendingVisible {
    table: String,
    column: String,
    visible: Value,
}

fn next_parent_pos(table: &Table) -> f64 {
    table
        .columns
        .iter()
        .filter_map(Column::parent_pos)
        .fold(0.0, f64::max)
        + 1.0
}

fn pos_value(pos: f64) -> Value {
    if pos.fract() == 0.0 {
        json!(pos as i64)
    } else {
        json!(pos)
    }
}

/// Adds one column to a table; returns its id. A `visibleCol` is left for the caller.
fn add_column(
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

fn resolve_pending(doc: &mut Doc, pending: Vec<PendingVisible>) -> Result<(), EmulatorError> {
    for p in pending {
        set_visible_col(doc, &p.table, &p.column, &p.visible, true)?;
    }
    Ok(())
}

/// Sets `visibleCol` of a column (given as a colRef, or as a column id of the referenced
/// table); with `display`, also points the column's display formula at it.
fn set_visible_col(
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

/// Creates one table (with `manualSort` first) from `{"id": T, "columns": [...]}`.
fn add_table(
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
    doc.tables.push(table);
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
fn update_column(
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
fn insert_records(table: &mut Table, rows: Vec<Fields>) -> Result<Vec<i64>, EmulatorError> {
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

fn update_one(table: &mut Table, id: i64, fields: Fields) -> Result<(), EmulatorError> {
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

fn remove_one(table: &mut Table, id: i64) -> Result<(), EmulatorError> {
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

/// `POST /api/docs/{doc}/tables/{T}/records`: `{"records": [{"fields": {...}}]}`.
pub fn add_records(doc: &mut Doc, table_id: &str, body: &Value) -> Result<Vec<i64>, EmulatorError> {
    let rows = list_of(body, "records")?
        .iter()
        .map(|r| object_fields(r.get("fields").cloned().unwrap_or(Value::Null)))
        .collect::<Result<Vec<_>, _>>()?;
    insert_records(doc.table_mut_or_err(table_id)?, rows)
}

fn record_id(value: Option<&Value>) -> Result<i64, EmulatorError> {
    value
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("Invalid payload: records need an integer \"id\""))
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
        .ok_or_else(|| bad("Invalid payload: expected a list of row ids"))?;
    for id in ids {
        remove_one(table, record_id(Some(id))?)?;
    }
    Ok(())
}

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
        "RemoveRecord" => {
            remove_one(
                doc.table_mut_or_err(arg_str(action, 1)?)?,
                record_id(action.get(2))?,
            )?;
            Ok(Value::Null)
        }
        "BulkRemoveRecord" => {
            let table = doc.table_mut_or_err(arg_str(action, 1)?)?;
            for id in ids_of(arg(action, 2))? {
                remove_one(table, id)?;
            }
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
