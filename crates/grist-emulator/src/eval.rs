//! Owns cell values as the renderers need them: a stored value, a formula error (as Grist's
//! `["E", name]` encoding), a column's default, the value of a simple formula (`$col`,
//! `$ref.col`) for cells that have none stored, and the display values of Ref/RefList columns
//! (what their `gristHelper_Display*` helper holds: the referenced rows' visible column).

use serde_json::{json, Value};

use crate::cellvalue::as_f64;
use crate::format::visible_column;
use crate::model::{
    base_type, default_for_type, referenced_table, type_arg, Column, Doc, Record, Table,
};

/// Formulas referencing formulas stop here (cycles give `null`).
const MAX_DEPTH: usize = 8;

/// A parsed simple formula.
enum Formula<'f> {
    /// `$col`
    Col(&'f str),
    /// `$ref.col`
    RefCol(&'f str, &'f str),
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn parse_formula(formula: &str) -> Option<Formula<'_>> {
    let body = formula.trim().strip_prefix('$')?;
    match body.split_once('.') {
        None if is_ident(body) => Some(Formula::Col(body)),
        Some((r, c)) if is_ident(r) && is_ident(c) => Some(Formula::RefCol(r, c)),
        _ => None,
    }
}

/// The column `X` of a display formula `$X.Y`, if the formula has that shape.
pub fn display_formula_target(formula: &str) -> Option<(&str, &str)> {
    match parse_formula(formula)? {
        Formula::RefCol(r, c) => Some((r, c)),
        Formula::Col(_) => None,
    }
}

/// The value of `col_id` in `rec`: its error, its stored value, its formula's value, or the
/// default of its type.
pub fn cell(doc: &Doc, table: &Table, rec: &Record, col_id: &str) -> Value {
    cell_at(doc, table, rec, col_id, 0)
}

fn cell_at(doc: &Doc, table: &Table, rec: &Record, col_id: &str, depth: usize) -> Value {
    if let Some(err) = rec.errors.get(col_id) {
        return json!(["E", err]);
    }
    if col_id == "id" {
        return json!(rec.id);
    }
    if let Some(v) = rec.fields.get(col_id) {
        return v.clone();
    }
    let Some(col) = table.column(col_id) else {
        return Value::Null;
    };
    if col.is_formula() {
        if depth >= MAX_DEPTH {
            return Value::Null;
        }
        return eval_formula(doc, table, rec, col, depth + 1).unwrap_or(Value::Null);
    }
    default_for_type(col.col_type())
}

/// Whether [`formula_value`] can compute this column.
pub fn is_simple_formula(col: &Column) -> bool {
    col.is_formula() && parse_formula(col.formula()).is_some()
}

/// The value of a formula column for one record (`None` when the formula is not simple).
pub fn formula_value(doc: &Doc, table: &Table, rec: &Record, col: &Column) -> Option<Value> {
    eval_formula(doc, table, rec, col, 1)
}

fn eval_formula(
    doc: &Doc,
    table: &Table,
    rec: &Record,
    col: &Column,
    depth: usize,
) -> Option<Value> {
    let any_result = base_type(col.col_type()) == "Any";
    match parse_formula(col.formula())? {
        Formula::Col(src) => {
            let value = cell_at(doc, table, rec, src, depth);
            Some(match (any_result, table.column(src)) {
                (true, Some(src_col)) => reencode(value, src_col.col_type()),
                _ => value,
            })
        }
        Formula::RefCol(ref_col, target_col) => {
            let ref_column = table.column(ref_col)?;
            let value = follow(doc, table, rec, ref_column, target_col, depth);
            Some(value)
        }
    }
}

/// `$ref_col.target_col` for one record: a value for a Ref column, a list for a RefList.
fn follow(
    doc: &Doc,
    table: &Table,
    rec: &Record,
    ref_column: &Column,
    target_col: &str,
    depth: usize,
) -> Value {
    let ref_type = ref_column.col_type();
    let Some(target_table) = referenced_table(ref_type).and_then(|t| doc.table(t)) else {
        return Value::Null;
    };
    let raw = cell_at(doc, table, rec, &ref_column.id, depth);
    lookup_through(doc, target_table, ref_type, &raw, target_col, depth)
}

/// Values of `target_col` in the rows a Ref/RefList value points to, encoded as a formula
/// column of type Any holds them.
fn lookup_through(
    doc: &Doc,
    target: &Table,
    ref_type: &str,
    raw: &Value,
    target_col: &str,
    depth: usize,
) -> Value {
    let one = |v: &Value| lookup_one(doc, target, ref_type, v, target_col, depth);
    if base_type(ref_type) == "RefList" {
        return match raw {
            Value::Array(items) if items.first().and_then(Value::as_str) == Some("L") => {
                let mut out = vec![json!("L")];
                out.extend(items[1..].iter().map(one));
                Value::Array(out)
            }
            Value::Null => json!(["L"]),
            Value::String(s) => json!(["E", "InvalidTypedValue", "RefList", s]),
            other => one(other),
        };
    }
    one(raw)
}

fn lookup_one(
    doc: &Doc,
    target: &Table,
    ref_type: &str,
    id: &Value,
    target_col: &str,
    depth: usize,
) -> Value {
    if let Value::String(s) = id {
        return json!(["E", "InvalidTypedValue", base_type(ref_type), s]);
    }
    let row_id = match id {
        Value::Number(n) => as_f64(n),
        _ => 0.0,
    };
    if target_col == "id" {
        return json!(if row_id > 0.0 && target.record(row_id as i64).is_some() {
            row_id as i64
        } else {
            0
        });
    }
    let col_type = target.column(target_col).map_or("Any", Column::col_type);
    let row = if row_id > 0.0 && row_id.fract() == 0.0 {
        target.record(row_id as i64)
    } else {
        None
    };
    let value = match row {
        Some(row) if depth < MAX_DEPTH => cell_at(doc, target, row, target_col, depth + 1),
        Some(_) => Value::Null,
        None => default_for_type(col_type),
    };
    reencode(value, col_type)
}

/// How a typed value looks once a formula of type Any returns it (Grist's `reencodeAsAny`,
/// plus RecordSets for RefList values).
fn reencode(value: Value, col_type: &str) -> Value {
    match (base_type(col_type), &value) {
        ("Date", Value::Number(_)) => json!(["d", value]),
        ("DateTime", Value::Number(_)) => json!(["D", value, type_arg(col_type)]),
        ("Ref", Value::Number(_)) => json!(["R", type_arg(col_type), value]),
        ("RefList", Value::Array(items)) if items.first().and_then(Value::as_str) == Some("L") => {
            json!(["r", type_arg(col_type), items[1..].to_vec()])
        }
        ("RefList", Value::Null) => json!(["r", type_arg(col_type), []]),
        _ => value,
    }
}

/// The display value of a Ref/RefList column `col` whose helper column is `helper`: the
/// referenced rows' visible column (or what the helper's `$col.target` formula names); the
/// stored helper value when neither can be resolved.
pub fn display_value(
    doc: &Doc,
    table: &Table,
    rec: &Record,
    col: &Column,
    helper: &Column,
) -> Value {
    let ref_type = col.col_type();
    let target = referenced_table(ref_type).and_then(|t| doc.table(t));
    if let Some(target) = target {
        let target_col = visible_column(doc, col)
            .filter(|v| target.column_by_ref(v.col_ref()).is_some())
            .map(|v| v.id.as_str())
            .or_else(|| {
                display_formula_target(helper.formula())
                    .filter(|(r, c)| *r == col.id && target.column(c).is_some())
                    .map(|(_, c)| c)
            });
        if let Some(target_col) = target_col {
            let raw = cell(doc, table, rec, &col.id);
            return lookup_through(doc, target, ref_type, &raw, target_col, 1);
        }
    }
    if let Some(err) = rec.errors.get(&helper.id) {
        return json!(["E", err]);
    }
    rec.fields.get(&helper.id).cloned().unwrap_or(Value::Null)
}

/// Recomputes the stored cells of simple formulas and display helpers after a change, as Grist
/// recalculates them (a stored value is what a recorded doc holds; an edit elsewhere can make
/// it stale). Cells with an error, and formulas the emulator cannot compute, are left as they
/// are. Returns whether any cell changed.
pub fn refresh_stored_formulas(doc: &mut Doc) -> bool {
    let mut any = false;
    // A formula of a formula settles in a few passes.
    for _ in 0..3 {
        let mut updates: Vec<(usize, usize, String, Value)> = Vec::new();
        for (ti, table) in doc.tables.iter().enumerate() {
            let computed: Vec<(&Column, Option<&Column>)> = table
                .columns
                .iter()
                .filter_map(|c| {
                    let owner = table
                        .columns
                        .iter()
                        .find(|o| o.display_col() > 0 && o.display_col() == c.col_ref());
                    (owner.is_some() || is_simple_formula(c)).then_some((c, owner))
                })
                .collect();
            if computed.is_empty() {
                continue;
            }
            for (ri, rec) in table.records.iter().enumerate() {
                for (col, owner) in &computed {
                    let Some(stored) = rec.fields.get(&col.id) else {
                        continue;
                    };
                    if rec.errors.contains_key(&col.id) {
                        continue;
                    }
                    let fresh = match owner {
                        Some(owner) => Some(display_value(doc, table, rec, owner, col)),
                        None => formula_value(doc, table, rec, col),
                    };
                    if let Some(fresh) = fresh.filter(|f| f != stored) {
                        updates.push((ti, ri, col.id.clone(), fresh));
                    }
                }
            }
        }
        if updates.is_empty() {
            break;
        }
        any = true;
        for (ti, ri, col, value) in updates {
            std::sync::Arc::make_mut(&mut doc.tables[ti]).records[ri]
                .fields
                .insert(col, value);
        }
    }
    any
}
