//! Owns the in-memory document model: [`Doc`], [`Table`], [`Column`], [`Record`], in the shapes
//! the Grist API returns them (`/columns` entries, `/records` entries), plus typed accessors for
//! the column metadata the renderers need and the defaults Grist gives new columns and cells.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::EmulatorError;

/// An ordered JSON object: keeps the key order of the files and of the requests.
pub type Fields = IndexMap<String, Value>;

/// The column id Grist uses for manual row order.
pub const MANUAL_SORT: &str = "manualSort";

/// Whether Grist hides this column (`manualSort` and `gristHelper_*`).
pub fn is_hidden_col(col_id: &str) -> bool {
    col_id == MANUAL_SORT || col_id.starts_with("gristHelper_")
}

/// The base type of a column type: `Ref:People` -> `Ref`, `DateTime:UTC` -> `DateTime`.
pub fn base_type(col_type: &str) -> &str {
    col_type.split_once(':').map_or(col_type, |(base, _)| base)
}

/// The argument of a column type: `Ref:People` -> `People`, `Text` -> ``.
pub fn type_arg(col_type: &str) -> &str {
    col_type.split_once(':').map_or("", |(_, arg)| arg)
}

/// The table a `Ref:T` / `RefList:T` type points to.
pub fn referenced_table(col_type: &str) -> Option<&str> {
    col_type
        .strip_prefix("Ref:")
        .or_else(|| col_type.strip_prefix("RefList:"))
}

/// The default cell value of a column type (what Grist stores for a blank cell).
pub fn default_for_type(col_type: &str) -> Value {
    match base_type(col_type) {
        "Bool" => Value::Bool(false),
        "Choice" | "Text" => Value::String(String::new()),
        "Id" | "Int" | "Numeric" | "Ref" => json!(0),
        _ => Value::Null,
    }
}

/// One column, as an entry of `GET /tables/{T}/columns`: `{"id": ..., "fields": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub id: String,
    #[serde(default)]
    pub fields: Fields,
}

impl Column {
    /// A data column of the given type with every field Grist reports, at their defaults
    /// (`colRef`, `parentId` and `parentPos` are 0 until the column joins a table).
    pub fn new(id: impl Into<String>, col_type: impl Into<String>) -> Column {
        let id = id.into();
        let mut col = Column {
            id: id.clone(),
            fields: Fields::new(),
        };
        col.fields
            .insert("type".into(), Value::String(col_type.into()));
        col.fill_defaults();
        col
    }

    /// Sets one field (builder style).
    pub fn with(mut self, key: &str, value: Value) -> Column {
        self.fields.insert(key.to_string(), value);
        self
    }

    /// Adds the fields Grist always reports that are missing, in Grist's order.
    pub(crate) fn fill_defaults(&mut self) {
        let formula = self.formula().to_string();
        let defaults: [(&str, Value); 17] = [
            ("colRef", json!(0)),
            ("label", Value::String(self.id.clone())),
            ("isFormula", Value::Bool(!formula.is_empty())),
            ("type", Value::String("Any".into())),
            ("parentId", json!(0)),
            ("parentPos", json!(0)),
            ("widgetOptions", Value::String(String::new())),
            ("formula", Value::String(String::new())),
            ("description", Value::String(String::new())),
            ("untieColIdFromLabel", Value::Bool(false)),
            ("summarySourceCol", json!(0)),
            ("displayCol", json!(0)),
            ("visibleCol", json!(0)),
            ("rules", Value::Null),
            ("reverseCol", json!(0)),
            ("recalcWhen", json!(0)),
            ("recalcDeps", Value::Null),
        ];
        let mut ordered = Fields::new();
        for (key, default) in defaults {
            let value = self.fields.shift_remove(key).unwrap_or(default);
            ordered.insert(key.to_string(), value);
        }
        ordered.extend(std::mem::take(&mut self.fields));
        self.fields = ordered;
    }

    fn int_field(&self, key: &str) -> i64 {
        match self.fields.get(key) {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .unwrap_or(0),
            _ => 0,
        }
    }

    fn str_field(&self, key: &str) -> &str {
        self.fields.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// `colRef`: the column's row id in `_grist_Tables_column` (0 when unknown).
    pub fn col_ref(&self) -> i64 {
        self.int_field("colRef")
    }

    /// The label (the column id when there is none).
    pub fn label(&self) -> &str {
        match self.fields.get("label").and_then(Value::as_str) {
            Some(label) => label,
            None => &self.id,
        }
    }

    /// The column type (`Any` when there is none).
    pub fn col_type(&self) -> &str {
        match self.fields.get("type").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => t,
            _ => "Any",
        }
    }

    pub fn formula(&self) -> &str {
        self.str_field("formula")
    }

    pub fn is_formula(&self) -> bool {
        self.fields
            .get("isFormula")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `displayCol`: colRef of the helper column holding display values (0: none).
    pub fn display_col(&self) -> i64 {
        self.int_field("displayCol")
    }

    /// `visibleCol`: colRef of the referenced table's column shown by a Ref column (0: none).
    pub fn visible_col(&self) -> i64 {
        self.int_field("visibleCol")
    }

    /// `parentPos`, the column's position in its table.
    pub fn parent_pos(&self) -> Option<f64> {
        self.fields.get("parentPos").and_then(Value::as_f64)
    }

    /// The widget options, parsed (`{}` when empty or invalid, as Grist's `safeJsonParse`).
    pub fn widget_options(&self) -> Value {
        match self.fields.get("widgetOptions") {
            Some(Value::String(s)) if !s.is_empty() => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v,
                _ => json!({}),
            },
            Some(v @ Value::Object(_)) => v.clone(),
            _ => json!({}),
        }
    }

    pub fn is_hidden(&self) -> bool {
        is_hidden_col(&self.id)
    }
}

/// One record, as an entry of `GET /tables/{T}/records`: `{"id": n, "fields": {...}}`, plus
/// `"errors": {colId: "ExceptionName"}` for formula cells that raised (their field is `null`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: i64,
    #[serde(default)]
    pub fields: Fields,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub errors: Fields,
}

impl Record {
    /// A record from a JSON object of fields (`{"Name": "Alice"}`).
    pub fn new(id: i64, fields: Value) -> Result<Record, EmulatorError> {
        Ok(Record {
            id,
            fields: object_fields(fields)?,
            errors: Fields::new(),
        })
    }

    /// The same record with a formula error in `col_id` (its field becomes `null`).
    pub fn with_error(mut self, col_id: &str, exception: &str) -> Record {
        self.fields.insert(col_id.to_string(), Value::Null);
        self.errors
            .insert(col_id.to_string(), Value::String(exception.to_string()));
        self
    }
}

/// Turns a JSON object into ordered fields; anything else is a bad request.
pub(crate) fn object_fields(value: Value) -> Result<Fields, EmulatorError> {
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        Value::Null => Ok(Fields::new()),
        other => Err(EmulatorError::bad_request(format!(
            "fields must be a JSON object, got {other}"
        ))),
    }
}

/// One table: its columns (as `/columns?hidden=true` lists them) and records.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub id: String,
    pub columns: Vec<Column>,
    pub records: Vec<Record>,
    /// The `fields` of this table's entry in `/tables`; synthesized when `None`.
    pub meta: Option<Fields>,
}

impl Table {
    pub fn new(id: impl Into<String>, columns: Vec<Column>, records: Vec<Record>) -> Table {
        Table {
            id: id.into(),
            columns,
            records,
            meta: None,
        }
    }

    /// A table from the API shapes: `{"columns": [...]}` and `{"records": [...]}` (bare arrays
    /// are accepted too).
    pub fn from_json(
        id: impl Into<String>,
        columns: Value,
        records: Value,
    ) -> Result<Table, EmulatorError> {
        let columns = unwrap_list(columns, "columns")?;
        let records = unwrap_list(records, "records")?;
        let columns: Vec<Column> = serde_json::from_value(columns)
            .map_err(|e| EmulatorError::bad_request(format!("invalid columns: {e}")))?;
        let records: Vec<Record> = serde_json::from_value(records)
            .map_err(|e| EmulatorError::bad_request(format!("invalid records: {e}")))?;
        Ok(Table::new(id, columns, records))
    }

    pub fn column(&self, col_id: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.id == col_id)
    }

    pub fn column_mut(&mut self, col_id: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.id == col_id)
    }

    pub fn column_by_ref(&self, col_ref: i64) -> Option<&Column> {
        if col_ref <= 0 {
            return None;
        }
        self.columns.iter().find(|c| c.col_ref() == col_ref)
    }

    /// Record `id`: a binary search, as records are normally in id order, else a scan.
    pub fn record(&self, id: i64) -> Option<&Record> {
        self.position(id).map(|i| &self.records[i])
    }

    pub fn record_mut(&mut self, id: i64) -> Option<&mut Record> {
        self.position(id).map(|i| &mut self.records[i])
    }

    fn position(&self, id: i64) -> Option<usize> {
        let found = self.records.binary_search_by_key(&id, |r| r.id).ok();
        found.or_else(|| self.records.iter().position(|r| r.id == id))
    }

    /// The next free row id (max + 1).
    pub fn next_row_id(&self) -> i64 {
        self.records.iter().map(|r| r.id).max().unwrap_or(0) + 1
    }

    /// The table's row id in `_grist_Tables`, from its meta or its columns' `parentId`.
    pub fn table_ref(&self) -> i64 {
        if let Some(r) = self
            .meta
            .as_ref()
            .and_then(|m| m.get("tableRef"))
            .and_then(Value::as_i64)
        {
            return r;
        }
        self.columns
            .iter()
            .filter_map(|c| c.fields.get("parentId").and_then(Value::as_i64))
            .find(|r| *r > 0)
            .unwrap_or(0)
    }

    /// Columns in the order Grist exports them: by `parentPos`, then by `colRef`.
    pub fn columns_in_position_order(&self) -> Vec<&Column> {
        let mut cols: Vec<(usize, &Column)> = self.columns.iter().enumerate().collect();
        cols.sort_by(|(ia, a), (ib, b)| {
            let pa = a.parent_pos().unwrap_or(*ia as f64);
            let pb = b.parent_pos().unwrap_or(*ib as f64);
            pa.total_cmp(&pb)
                .then(a.col_ref().cmp(&b.col_ref()))
                .then(ia.cmp(ib))
        });
        cols.into_iter().map(|(_, c)| c).collect()
    }
}

fn unwrap_list(value: Value, key: &str) -> Result<Value, EmulatorError> {
    match value {
        Value::Object(mut map) => map
            .remove(key)
            .ok_or_else(|| EmulatorError::bad_request(format!("expected a \"{key}\" list"))),
        v @ Value::Array(_) => Ok(v),
        Value::Null => Ok(Value::Array(Vec::new())),
        other => Err(EmulatorError::bad_request(format!(
            "expected a \"{key}\" list, got {other}"
        ))),
    }
}

/// One document: a folder of tables; its id is the folder name.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    pub id: String,
    pub name: String,
    /// In `/tables` order. Shared with the doc's earlier states (`crate::history`): a change
    /// copies only the tables it touches.
    pub tables: Vec<Arc<Table>>,
}

impl Doc {
    pub fn new(id: impl Into<String>) -> Doc {
        let id = id.into();
        Doc {
            name: id.clone(),
            id,
            tables: Vec::new(),
        }
    }

    pub fn table(&self, table_id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.id == table_id).map(|t| &**t)
    }

    pub fn table_mut(&mut self, table_id: &str) -> Option<&mut Table> {
        self.tables
            .iter_mut()
            .find(|t| t.id == table_id)
            .map(Arc::make_mut)
    }

    /// Adds a table at the end.
    pub fn push_table(&mut self, table: Table) {
        self.tables.push(Arc::new(table));
    }

    pub(crate) fn table_or_err(&self, table_id: &str) -> Result<&Table, EmulatorError> {
        self.table(table_id)
            .ok_or_else(|| EmulatorError::UnknownTable {
                doc: self.id.clone(),
                table: table_id.to_string(),
            })
    }

    pub(crate) fn table_mut_or_err(&mut self, table_id: &str) -> Result<&mut Table, EmulatorError> {
        let doc = self.id.clone();
        self.table_mut(table_id)
            .ok_or_else(|| EmulatorError::UnknownTable {
                doc,
                table: table_id.to_string(),
            })
    }

    /// Finds a column by colRef anywhere in the doc.
    pub fn column_by_ref(&self, col_ref: i64) -> Option<(&Table, &Column)> {
        self.tables
            .iter()
            .find_map(|t| t.column_by_ref(col_ref).map(|c| (&**t, c)))
    }

    /// The next free colRef in the doc.
    pub(crate) fn next_col_ref(&self) -> i64 {
        self.tables
            .iter()
            .flat_map(|t| t.columns.iter().map(Column::col_ref))
            .max()
            .unwrap_or(0)
            + 1
    }

    /// The next free tableRef in the doc.
    pub(crate) fn next_table_ref(&self) -> i64 {
        self.tables.iter().map(|t| t.table_ref()).max().unwrap_or(0) + 1
    }

    /// The `/tables` answer: `{"tables": [{"id": T, "fields": {...}}]}`, with tables.json's
    /// entries where known and synthesized ones otherwise, in the doc's table order.
    pub fn tables_json(&self) -> String {
        #[derive(Serialize)]
        struct Entry<'a> {
            id: &'a str,
            fields: std::borrow::Cow<'a, Fields>,
        }
        #[derive(Serialize)]
        struct Answer<'a> {
            tables: Vec<Entry<'a>>,
        }
        let tables = self
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| Entry {
                id: &t.id,
                fields: match &t.meta {
                    Some(meta) => std::borrow::Cow::Borrowed(meta),
                    None => {
                        std::borrow::Cow::Owned(synthesized_table_fields(match t.table_ref() {
                            0 => i as i64 + 1,
                            r => r,
                        }))
                    }
                },
            })
            .collect();
        serde_json::to_string(&Answer { tables }).unwrap_or_default()
    }

    /// Gives every column without a colRef (or with a clashing one) a fresh one, and fills the
    /// fields Grist always reports.
    pub(crate) fn normalize_columns(&mut self) {
        let mut seen = std::collections::HashSet::new();
        let mut next = self.next_col_ref();
        let mut next_table_ref = self.next_table_ref();
        for ti in 0..self.tables.len() {
            let table_ref = match self.tables[ti].table_ref() {
                0 => {
                    next_table_ref += 1;
                    next_table_ref - 1
                }
                r => r,
            };
            let table = Arc::make_mut(&mut self.tables[ti]);
            if table.meta.is_none() {
                table.meta = Some(synthesized_table_fields(table_ref));
            }
            for (pos, col) in table.columns.iter_mut().enumerate() {
                let missing_pos = !col.fields.contains_key("parentPos");
                let missing_parent = !col.fields.contains_key("parentId");
                col.fill_defaults();
                let col_ref = col.col_ref();
                if col_ref <= 0 || !seen.insert(col_ref) {
                    col.fields.insert("colRef".into(), json!(next));
                    seen.insert(next);
                    next += 1;
                }
                if missing_parent {
                    col.fields.insert("parentId".into(), json!(table_ref));
                }
                if missing_pos {
                    col.fields.insert("parentPos".into(), json!(pos as i64 + 1));
                }
            }
        }
    }
}

/// `/tables` fields for a table that has no recorded entry.
pub(crate) fn synthesized_table_fields(table_ref: i64) -> Fields {
    let mut fields = Fields::new();
    fields.insert("tableRef".into(), json!(table_ref));
    fields.insert("primaryViewId".into(), json!(table_ref));
    fields.insert("summarySourceTable".into(), json!(0));
    fields.insert("onDemand".into(), json!(false));
    fields.insert("rawViewSectionRef".into(), json!(table_ref * 3 - 1));
    fields.insert("recordCardViewSectionRef".into(), json!(table_ref * 3));
    fields
}
