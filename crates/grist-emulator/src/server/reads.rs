//! The read endpoints of a doc: `GET /tables`, `GET /tables/{T}/columns` and
//! `GET /tables/{T}/records` (stored fields plus computed ones, then the `filter`, `sort` and
//! `limit` query options).

use std::borrow::Cow;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};

use super::answers::{answer, emulator_error, respond, JSON_TYPE};
use super::doc_access::with_doc;
use super::request::{affirmative, query_pairs, query_param};
use crate::docs::Docs;
use crate::error::EmulatorError;
use crate::eval::{cell, display_value};
use crate::model::{is_hidden_col, Column, Doc, Fields, Table, MANUAL_SORT};

pub(super) async fn get_tables(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
) -> Response {
    match with_doc(&docs, &doc_id, |doc| Ok(doc.tables_json())) {
        Ok(body) => answer(200, JSON_TYPE, body),
        Err(e) => emulator_error(&e),
    }
}

pub(super) async fn get_columns(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let hidden = affirmative(query_param(&pairs, "hidden"));
    #[derive(Serialize)]
    struct Answer<'a> {
        columns: Vec<&'a Column>,
    }
    let result = with_doc(&docs, &doc_id, |doc| {
        let table = doc.table_or_err(&table_id)?;
        let columns = table
            .columns
            .iter()
            .filter(|c| hidden || !c.is_hidden())
            .collect();
        serde_json::to_string(&Answer { columns })
            .map_err(|e| EmulatorError::bad_request(e.to_string()))
    });
    match result {
        Ok(body) => answer(200, JSON_TYPE, body),
        Err(e) => emulator_error(&e),
    }
}

#[derive(Serialize)]
pub(super) struct RecordOut {
    pub(super) id: i64,
    pub(super) fields: Fields,
    #[serde(skip_serializing_if = "Fields::is_empty")]
    pub(super) errors: Fields,
}

/// The `/records` entries of a table (only the rows in `only`, when given): stored fields,
/// then the columns a record has no stored value for (simple formulas computed, data columns
/// at their default).
pub(super) fn records_out(
    doc: &Doc,
    table: &Table,
    hidden: bool,
    only: Option<&std::collections::HashSet<i64>>,
) -> Vec<RecordOut> {
    let columns = table.columns_in_position_order();
    let mut records: Vec<_> = table
        .records
        .iter()
        .filter(|r| only.is_none_or(|ids| ids.contains(&r.id)))
        .collect();
    records.sort_by_key(|r| r.id);
    records
        .into_iter()
        .map(|rec| {
            let keep = |k: &str| hidden || !is_hidden_col(k);
            let mut fields: Fields = rec
                .fields
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let errors: Fields = rec
                .errors
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for col in &columns {
                if fields.contains_key(&col.id) || !keep(&col.id) {
                    continue;
                }
                let value = if col.id == MANUAL_SORT {
                    json!(rec.id)
                } else if let Some(owner) = columns
                    .iter()
                    .find(|c| c.display_col() > 0 && c.display_col() == col.col_ref())
                {
                    display_value(doc, table, rec, owner, col)
                } else {
                    cell(doc, table, rec, &col.id)
                };
                fields.insert(col.id.clone(), value);
            }
            RecordOut {
                id: rec.id,
                fields,
                errors,
            }
        })
        .collect()
}

/// The row ids of a `filter={"id": [...]}` parameter, if it has one.
fn ids_filter(pairs: &[(String, String)]) -> Option<std::collections::HashSet<i64>> {
    let filter: Value = serde_json::from_str(query_param(pairs, "filter")?).ok()?;
    let ids = filter.get("id")?.as_array()?;
    ids.iter().map(Value::as_i64).collect()
}

fn sort_rank(v: &Value) -> (u8, f64, Cow<'_, str>) {
    match v {
        Value::Null => (0, 0.0, Cow::Borrowed("")),
        Value::Bool(b) => (1, if *b { 1.0 } else { 0.0 }, Cow::Borrowed("")),
        Value::Number(n) => (1, n.as_f64().unwrap_or(0.0), Cow::Borrowed("")),
        Value::String(s) => (2, 0.0, Cow::Borrowed(s.as_str())),
        other => (3, 0.0, Cow::Owned(other.to_string())),
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Applies `/records` query options: `filter` (JSON `{col: [values]}`), `sort`
/// (`col,-col2`) and `limit`.
fn query_records(
    mut records: Vec<RecordOut>,
    pairs: &[(String, String)],
) -> Result<Vec<RecordOut>, EmulatorError> {
    if let Some(filter) = query_param(pairs, "filter").filter(|f| !f.is_empty()) {
        let filter: Value = serde_json::from_str(filter)
            .map_err(|e| EmulatorError::bad_request(format!("Invalid filter parameter: {e}")))?;
        let Value::Object(filter) = filter else {
            return Err(EmulatorError::bad_request(
                "Invalid filter parameter: expected an object",
            ));
        };
        for (col, allowed) in &filter {
            let Value::Array(allowed) = allowed else {
                return Err(EmulatorError::bad_request(format!(
                    "Invalid filter parameter: values of {col} must be a list"
                )));
            };
            records.retain(|r| {
                let value = if col == "id" {
                    json!(r.id)
                } else {
                    r.fields.get(col).cloned().unwrap_or(Value::Null)
                };
                allowed.iter().any(|a| values_equal(a, &value))
            });
        }
    }
    if let Some(sort) = query_param(pairs, "sort").filter(|s| !s.is_empty()) {
        let keys: Vec<(bool, String)> = sort
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| match k.strip_prefix('-') {
                Some(rest) => (true, rest.to_string()),
                None => (false, k.to_string()),
            })
            .collect();
        records.sort_by(|a, b| {
            for (desc, col) in &keys {
                let get = |r: &RecordOut| {
                    if col == "id" {
                        json!(r.id)
                    } else {
                        r.fields.get(col).cloned().unwrap_or(Value::Null)
                    }
                };
                let (va, vb) = (get(a), get(b));
                let (ra, rb) = (sort_rank(&va), sort_rank(&vb));
                let ord =
                    ra.0.cmp(&rb.0)
                        .then(ra.1.total_cmp(&rb.1))
                        .then(ra.2.cmp(&rb.2));
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            a.id.cmp(&b.id)
        });
    }
    if let Some(limit) = query_param(pairs, "limit").filter(|l| !l.is_empty()) {
        let limit: usize = limit.parse().map_err(|_| {
            EmulatorError::bad_request(format!("limit parameter should be an integer: {limit}"))
        })?;
        if limit > 0 {
            records.truncate(limit);
        }
    }
    Ok(records)
}

pub(super) async fn get_records(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let hidden = affirmative(query_param(&pairs, "hidden"));
    #[derive(Serialize)]
    struct Answer {
        records: Vec<RecordOut>,
    }
    respond(with_doc(&docs, &doc_id, |doc| {
        let table = doc.table_or_err(&table_id)?;
        // A filter on row ids (what a change feed asks) computes only those rows.
        let only = ids_filter(&pairs);
        let records = query_records(records_out(doc, table, hidden, only.as_ref()), &pairs)?;
        Ok(Answer { records })
    }))
}
