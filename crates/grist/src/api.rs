//! The shapes of Grist's answers: `/tables`, `/columns?hidden=true`, `/records`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct TableList {
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TableEntry {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ColumnList {
    pub columns: Vec<Column>,
}

/// A column as `/columns?hidden=true` describes it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Column {
    pub id: String,
    pub fields: ColumnFields,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnFields {
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type", default)]
    pub col_type: String,
    #[serde(default)]
    pub is_formula: bool,
    #[serde(default)]
    pub formula: String,
    /// The colRef of the column a Ref shows (0: none).
    #[serde(default)]
    pub visible_col: i64,
    /// The colRef of the helper column holding a Ref's display values (0: none).
    #[serde(default)]
    pub display_col: i64,
    #[serde(default)]
    pub col_ref: i64,
    /// The column's display options (number format, alignment...): JSON text, as Grist gives it.
    #[serde(default)]
    pub widget_options: serde_json::Value,
}

/// A column's type, parsed from Grist's type string (`Ref:People`, `Numeric`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Numeric,
    Int,
    Bool,
    Date,
    DateTime,
    Choice,
    ChoiceList,
    Ref(String),
    RefList(String),
    /// `Any`, attachments, and types this client does not know: taken as they come.
    Any,
    ManualSortPos,
}

impl ColumnType {
    pub fn parse(s: &str) -> ColumnType {
        match s {
            "Text" => ColumnType::Text,
            "Numeric" => ColumnType::Numeric,
            "Int" => ColumnType::Int,
            "Bool" => ColumnType::Bool,
            "Date" => ColumnType::Date,
            "Choice" => ColumnType::Choice,
            "ChoiceList" => ColumnType::ChoiceList,
            "ManualSortPos" => ColumnType::ManualSortPos,
            _ => {
                if let Some(t) = s.strip_prefix("Ref:") {
                    ColumnType::Ref(t.to_string())
                } else if let Some(t) = s.strip_prefix("RefList:") {
                    ColumnType::RefList(t.to_string())
                } else if s.starts_with("DateTime") {
                    ColumnType::DateTime
                } else {
                    ColumnType::Any
                }
            }
        }
    }
}

impl Column {
    pub fn column_type(&self) -> ColumnType {
        ColumnType::parse(&self.fields.col_type)
    }

    /// Columns Grist keeps for itself: `manualSort` and the `gristHelper_*` display helpers.
    pub fn is_internal(&self) -> bool {
        self.id == "manualSort" || self.id.starts_with("gristHelper_")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecordList {
    pub records: Vec<Record>,
}

/// A row as `/records` gives it: dates as epoch seconds, lists as `["L", ...]`, references as
/// row ids, formula errors as `null` (with `errors`).
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub id: i64,
    pub fields: Fields,
    #[serde(default)]
    pub errors: BTreeMap<String, serde_json::Value>,
}

/// A record's cells by column id, kept as a list: a table of a few hundred thousand records
/// holds one per record, and a list of a few cells takes a fraction of a map's memory.
#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<(String, serde_json::Value)>);

impl Fields {
    pub fn get(&self, column: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &serde_json::Value)> {
        self.0.iter().map(|(c, v)| (c, v))
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record's fields (an object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut cells = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((column, value)) = map.next_entry::<String, serde_json::Value>()? {
                    cells.push((column, value));
                }
                cells.shrink_to_fit();
                Ok(Fields(cells))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

/// Maps the `gristHelper_Display*` headers of a `header=colId` CSV back to the Ref columns they
/// display: a Ref with a display formula is headed by its helper's id.
pub fn csv_header_to_column(columns: &[Column]) -> BTreeMap<String, String> {
    let by_ref: BTreeMap<i64, &str> = columns
        .iter()
        .map(|c| (c.fields.col_ref, c.id.as_str()))
        .collect();
    let mut out = BTreeMap::new();
    for c in columns {
        if c.fields.display_col != 0 {
            if let Some(helper) = by_ref.get(&c.fields.display_col) {
                out.insert(helper.to_string(), c.id.clone());
            }
        }
    }
    out
}
