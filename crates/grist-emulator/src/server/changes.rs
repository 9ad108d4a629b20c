//! The change feed: `GET /states` (the doc's states, newest first) and `GET /compare?left=H`
//! (what changed from state `H` to the newest, per table), in the shapes real Grist answers
//! (`../shared/grist/recorded/changes/`).
//!
//! A comparison diffs the doc as it was at `H` against HEAD (`crate::history` keeps the docs).
//! Tables are matched by table ref and columns by col ref, so renames show as renames:
//! * a row in both with cells that differ is in `updateRows`, with `[[old], [new]]` per cell
//!   that changed; formula cells and display helpers that changed with it are cells too;
//! * a row only at `H` is in `removeRows`, with `[[old], null]` for every column;
//! * a row only at HEAD is in `addRows`, with `[null, [new]]` for every cell that is not its
//!   column's default (what Grist's add action carries);
//! * columns added, removed or renamed are `columnRenames` (`[null, new]`, `[old, null]`,
//!   `[old, new]`) and rows of `_grist_Tables_column`; tables likewise in `tableRenames` and
//!   `_grist_Tables`.
//!
//! `maxRows` (10 when absent, as in Grist; `null` for no cap) keeps the cells of only that many
//! rows of a kind (updated, added, removed) per table, the first ones and the last, and marks
//! the table `mayBeIncomplete`. Grist counts per action, the emulator per comparison.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::answers::{emulator_error, error_answer, json_answer};
use super::narrowing::rows_that_can_differ;
use super::reads::records_out;
use super::request::{query_pairs, query_param};
use crate::docs::Docs;
use crate::model::{default_for_type, Column, Doc, Fields, Table};

/// Grist's cap on the rows a comparison details when `maxRows` is not given.
const DEFAULT_MAX_ROWS: usize = 10;

pub(super) async fn get_states(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
) -> Response {
    match docs.with_history(&doc_id, |h| h.newest_first()) {
        Ok(states) => json_answer(&json!({
            "states": states.iter().map(|(n, h)| json!({"n": n, "h": h})).collect::<Vec<_>>()
        })),
        Err(e) => emulator_error(&e),
    }
}

pub(super) async fn get_compare(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let max_rows = match query_param(&pairs, "maxRows") {
        None => Some(DEFAULT_MAX_ROWS),
        Some("null") => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => return error_answer(400, &format!("maxRows parameter is not valid: {v}")),
        },
    };
    let left = query_param(&pairs, "left").unwrap_or("HEAD").to_string();
    if query_param(&pairs, "right").is_some_and(|r| r != "HEAD") {
        return error_answer(400, "the emulator compares with HEAD only");
    }
    let states = docs.with_history(&doc_id, |h| {
        let head = h.head().clone();
        let left = if left == "HEAD" {
            Some(head.clone())
        } else {
            h.find(&left).cloned()
        };
        (left, head)
    });
    match states {
        Err(e) => emulator_error(&e),
        Ok((None, _)) => error_answer(500, "Cannot read hash"),
        Ok((Some(left), head)) => {
            let state = |s: &crate::history::State| json!({"n": s.n, "h": s.h});
            let same = left.h == head.h;
            let right_changes = if same {
                json!({"tableRenames": [], "tableDeltas": {}})
            } else {
                changes(&left.doc, &head.doc, max_rows)
            };
            json_answer(&json!({
                "left": state(&left),
                "right": state(&head),
                "parent": state(&left),
                "summary": if same { "same" } else { "right" },
                "details": {
                    "leftChanges": {"tableRenames": [], "tableDeltas": {}},
                    "rightChanges": right_changes,
                },
            }))
        }
    }
}

/// A table's cells by row id: stored fields (a missing one is its column's default), or the
/// computed ones when the table has formulas or display helpers.
struct Cells<'a> {
    by_id: BTreeMap<i64, Cow<'a, Fields>>,
    defaults: HashMap<&'a str, Value>,
}

impl<'a> Cells<'a> {
    /// The cells of every row of `table`, or of the rows `only` names.
    fn of(doc: &'a Doc, table: &'a Table, only: Option<&HashSet<i64>>) -> Cells<'a> {
        let computed = table
            .columns
            .iter()
            .any(|c| c.is_formula() || c.id.starts_with("gristHelper_") || c.id == "manualSort");
        let by_id = if computed {
            records_out(doc, table, true, only)
                .into_iter()
                .map(|r| {
                    let mut fields = r.fields;
                    for (col, error) in r.errors {
                        fields.insert(col, json!(["E", error]));
                    }
                    (r.id, Cow::Owned(fields))
                })
                .collect()
        } else {
            table
                .records
                .iter()
                .filter(|r| only.is_none_or(|ids| ids.contains(&r.id)))
                .map(|r| (r.id, Cow::Borrowed(&r.fields)))
                .collect()
        };
        Cells {
            by_id,
            defaults: table
                .columns
                .iter()
                .map(|c| (c.id.as_str(), default_for_type(c.col_type())))
                .collect(),
        }
    }

    fn get(&self, id: i64, col: &str) -> Value {
        let fields = &self.by_id[&id];
        fields
            .get(col)
            .or_else(|| self.defaults.get(col))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// One table's delta, as Grist shapes it.
#[derive(Default)]
struct TableDelta {
    update_rows: Vec<i64>,
    remove_rows: Vec<i64>,
    add_rows: Vec<i64>,
    /// column → row → `[old, new]`.
    cells: BTreeMap<String, BTreeMap<i64, [Value; 2]>>,
    /// `(col ref, [old, new])`.
    column_renames: Vec<(i64, [Value; 2])>,
}

impl TableDelta {
    fn is_empty(&self) -> bool {
        self.update_rows.is_empty()
            && self.remove_rows.is_empty()
            && self.add_rows.is_empty()
            && self.cells.is_empty()
            && self.column_renames.is_empty()
    }

    fn cell(&mut self, col: &str, row: i64, old: Option<Value>, new: Option<Value>) {
        let wrap = |v: Option<Value>| v.map_or(Value::Null, |v| json!([v]));
        self.cells
            .entry(col.to_string())
            .or_default()
            .insert(row, [wrap(old), wrap(new)]);
    }

    /// Keeps the cells of at most `max` rows of each kind, marking the table incomplete.
    fn into_json(mut self, max: Option<usize>) -> Value {
        let mut incomplete = false;
        if let Some(max) = max {
            for rows in [&self.update_rows, &self.add_rows, &self.remove_rows] {
                if rows.len() > max {
                    incomplete = true;
                    let kept: Vec<i64> =
                        rows[..max - 1].iter().chain(rows.last()).copied().collect();
                    for cells in self.cells.values_mut() {
                        cells.retain(|id, _| !rows.contains(id) || kept.contains(id));
                    }
                }
            }
            self.cells.retain(|_, c| !c.is_empty());
        }
        let cells: Map<String, Value> = self
            .cells
            .into_iter()
            .map(|(col, rows)| {
                let rows: Map<String, Value> = rows
                    .into_iter()
                    .map(|(id, [old, new])| (id.to_string(), json!([old, new])))
                    .collect();
                (col, Value::Object(rows))
            })
            .collect();
        let mut out = json!({
            "updateRows": self.update_rows,
            "removeRows": self.remove_rows,
            "addRows": self.add_rows,
            "columnDeltas": cells,
            "columnRenames": self.column_renames.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        });
        if incomplete {
            out["mayBeIncomplete"] = json!(true);
        }
        out
    }
}

/// The metadata fields of a column whose change is a schema change.
const COLUMN_META: [&str; 9] = [
    "colId",
    "type",
    "formula",
    "isFormula",
    "label",
    "widgetOptions",
    "visibleCol",
    "displayCol",
    "parentId",
];

fn column_meta(c: &Column, field: &str) -> Value {
    match field {
        "colId" => json!(c.id),
        f => c.fields.get(f).cloned().unwrap_or(Value::Null),
    }
}

/// Renames in the order Grist's answers show them: additions first, then by ref (the recorded
/// answers list them in the order of the actions; the emulator keeps no actions).
fn rename_order(a: &(i64, [Value; 2]), b: &(i64, [Value; 2])) -> std::cmp::Ordering {
    let key = |r: &(i64, [Value; 2])| (!r.1[0].is_null(), r.0);
    key(a).cmp(&key(b))
}

/// `rightChanges` from `left` to `right`.
fn changes(left: &Doc, right: &Doc, max_rows: Option<usize>) -> Value {
    changes_with(left, right, max_rows, Narrowing::ByStoredRecords)
}

/// Which rows of a changed table a comparison computes the cells of.
#[derive(Clone, Copy)]
enum Narrowing {
    /// Only those [`rows_that_can_differ`] names, when it can tell.
    ByStoredRecords,
    /// All of them (what the narrowed comparison must always equal).
    #[cfg(test)]
    EveryRow,
}

fn changes_with(left: &Doc, right: &Doc, max_rows: Option<usize>, narrowing: Narrowing) -> Value {
    let mut deltas: BTreeMap<String, TableDelta> = BTreeMap::new();
    let mut table_renames: Vec<(i64, [Value; 2])> = Vec::new();
    let mut meta_tables = TableDelta::default();
    let mut meta_columns = TableDelta::default();
    let left_by_ref: HashMap<i64, &Arc<Table>> =
        left.tables.iter().map(|t| (t.table_ref(), t)).collect();
    let right_refs: HashSet<i64> = right.tables.iter().map(|t| t.table_ref()).collect();

    for lt in left
        .tables
        .iter()
        .filter(|t| !right_refs.contains(&t.table_ref()))
    {
        table_renames.push((lt.table_ref(), [json!(lt.id), Value::Null]));
        meta_tables.remove_rows.push(lt.table_ref());
        meta_tables.cell("tableId", lt.table_ref(), Some(json!(lt.id)), None);
    }
    for rt in &right.tables {
        let lt = left_by_ref.get(&rt.table_ref()).copied();
        let mut d = TableDelta::default();
        match lt {
            None => {
                table_renames.push((rt.table_ref(), [Value::Null, json!(rt.id)]));
                meta_tables.add_rows.push(rt.table_ref());
                meta_tables.cell("tableId", rt.table_ref(), None, Some(json!(rt.id)));
            }
            Some(lt) if lt.id != rt.id => {
                table_renames.push((rt.table_ref(), [json!(lt.id), json!(rt.id)]));
                meta_tables.update_rows.push(rt.table_ref());
                meta_tables.cell(
                    "tableId",
                    rt.table_ref(),
                    Some(json!(lt.id)),
                    Some(json!(rt.id)),
                );
            }
            Some(_) => {}
        }
        // Columns, by col ref.
        let empty = Table::new("", Vec::new(), Vec::new());
        let lt_table: &Table = lt.map_or(&empty, |t| t);
        let mut pairs: Vec<(&Column, &Column)> = Vec::new();
        for lc in &lt_table.columns {
            match rt.column_by_ref(lc.col_ref()) {
                Some(rc) => pairs.push((lc, rc)),
                None => {
                    d.column_renames
                        .push((lc.col_ref(), [json!(lc.id), Value::Null]));
                    meta_columns.remove_rows.push(lc.col_ref());
                    meta_columns.cell("colId", lc.col_ref(), Some(json!(lc.id)), None);
                }
            }
        }
        for rc in &rt.columns {
            let Some(lc) = lt_table.column_by_ref(rc.col_ref()) else {
                d.column_renames
                    .push((rc.col_ref(), [Value::Null, json!(rc.id)]));
                meta_columns.add_rows.push(rc.col_ref());
                for f in COLUMN_META {
                    meta_columns.cell(f, rc.col_ref(), None, Some(column_meta(rc, f)));
                }
                continue;
            };
            if lc.id != rc.id {
                d.column_renames
                    .push((rc.col_ref(), [json!(lc.id), json!(rc.id)]));
            }
            let mut meta_changed = false;
            for f in COLUMN_META {
                let (old, new) = (column_meta(lc, f), column_meta(rc, f));
                if old != new && f != "parentId" {
                    meta_changed = true;
                    meta_columns.cell(f, rc.col_ref(), Some(old), Some(new));
                }
            }
            if meta_changed {
                meta_columns.update_rows.push(rc.col_ref());
            }
        }
        // Rows: a table shared by both states changes only through its formulas.
        let unchanged_data = lt.is_some_and(|lt| {
            Arc::ptr_eq(lt, rt)
                && !rt
                    .columns
                    .iter()
                    .any(|c| c.is_formula() || c.display_col() > 0)
        });
        if !unchanged_data {
            let only = match narrowing {
                Narrowing::ByStoredRecords => rows_that_can_differ(left, lt_table, right, rt),
                #[cfg(test)]
                Narrowing::EveryRow => None,
            };
            row_deltas(left, lt_table, right, rt, &pairs, only.as_ref(), &mut d);
        }
        d.column_renames.sort_by(rename_order);
        if !d.is_empty() {
            deltas.insert(rt.id.clone(), d);
        }
    }
    for (name, meta) in [
        ("_grist_Tables", meta_tables),
        ("_grist_Tables_column", meta_columns),
    ] {
        if !meta.is_empty() {
            deltas.insert(name.to_string(), meta);
        }
    }
    table_renames.sort_by(rename_order);
    let table_deltas: Map<String, Value> = deltas
        .into_iter()
        .map(|(t, d)| {
            let cap = if t.starts_with("_grist_") {
                None
            } else {
                max_rows
            };
            (t, d.into_json(cap))
        })
        .collect();
    let table_renames: Vec<[Value; 2]> = table_renames.into_iter().map(|(_, r)| r).collect();
    json!({"tableRenames": table_renames, "tableDeltas": table_deltas})
}

/// The rows of `rt` (HEAD) against those of `lt` (the earlier state), over the columns both
/// have (`pairs`: earlier column, HEAD column); of the rows `only` names, when it names some.
fn row_deltas(
    left: &Doc,
    lt: &Table,
    right: &Doc,
    rt: &Table,
    pairs: &[(&Column, &Column)],
    only: Option<&HashSet<i64>>,
    d: &mut TableDelta,
) {
    let old = Cells::of(left, lt, only);
    let new = Cells::of(right, rt, only);
    for &id in old.by_id.keys() {
        if !new.by_id.contains_key(&id) {
            d.remove_rows.push(id);
            for c in &lt.columns {
                let name = pairs
                    .iter()
                    .find(|(l, _)| l.col_ref() == c.col_ref())
                    .map_or(c.id.as_str(), |(_, r)| r.id.as_str());
                d.cell(name, id, Some(old.get(id, &c.id)), None);
            }
        }
    }
    // Columns kept with the same ids: a row whose stored fields are equal did not change.
    let same_columns = pairs.len() == lt.columns.len()
        && pairs.len() == rt.columns.len()
        && pairs.iter().all(|(l, r)| l.id == r.id);
    for (&id, fields) in &new.by_id {
        if let Some(before) = old.by_id.get(&id) {
            if same_columns && before == fields {
                continue;
            }
            let mut changed = false;
            for (lc, rc) in pairs {
                let (a, b) = (old.get(id, &lc.id), new.get(id, &rc.id));
                if a != b {
                    changed = true;
                    d.cell(&rc.id, id, Some(a), Some(b));
                }
            }
            if changed {
                d.update_rows.push(id);
            }
        } else {
            d.add_rows.push(id);
            for c in &rt.columns {
                let v = new.get(id, &c.id);
                if v != default_for_type(c.col_type()) {
                    d.cell(&c.id, id, None, Some(v));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "changes_narrowing_tests.rs"]
mod narrowing_tests;
