//! The Data doc's anchor tables: their records, the node id of every row, and the display values
//! that references to their rows (or to any other table's rows) take.

use std::collections::{HashMap, HashSet};

use serde_json::Value as J;

use crate::{Column, ColumnType, GristClient, Record};
use etl_core::{StepContext, StepError};

/// An anchor table, loaded.
pub struct AnchorTable {
    pub noun: String,
    /// The Grist table (`Anchor_<noun>`, in whatever case the doc spells it).
    pub table: String,
    pub columns: Vec<Column>,
    /// Every record, by row id, those whose node id an earlier row took included: a reference
    /// to one of them still shows its own display value.
    pub records: Vec<Record>,
    /// Whether `records[i]` is a node: the first row (by row id) with its node id.
    pub is_node: Vec<bool>,
    /// Every row id to its node id.
    pub node_of_row: HashMap<i64, String>,
}

impl AnchorTable {
    pub fn column(&self, id: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.id == id)
    }

    /// The records that are nodes, by row id.
    pub fn nodes(&self) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .zip(&self.is_node)
            .filter_map(|(r, node)| node.then_some(r))
    }

    /// Reads `Anchor_<noun>` through `/records` (its row ids resolve references). The node id
    /// is the row's `<noun>_id`, or `<noun>:<row id>` when blank; on duplicate ids the first row
    /// wins, and the others are counted (`duplicate_node_ids`).
    pub async fn load(
        client: &GristClient,
        doc: &str,
        noun: &str,
        table: &str,
        ctx: &StepContext,
    ) -> Result<AnchorTable, StepError> {
        let columns = client.columns(doc, table).await?;
        let mut records = client.records(doc, table).await?;
        records.sort_by_key(|r| r.id);
        let id_column = format!("{noun}_id");
        let mut node_of_row = HashMap::with_capacity(records.len());
        let mut seen: HashSet<String> = HashSet::with_capacity(records.len());
        let mut is_node = Vec::with_capacity(records.len());
        for r in &records {
            let node_id = node_id_of(r, noun, &id_column);
            is_node.push(seen.insert(node_id.clone()));
            node_of_row.insert(r.id, node_id);
        }
        let duplicates = is_node.iter().filter(|n| !**n).count() as u64;
        if duplicates > 0 {
            tracing::warn!(
                table,
                duplicates,
                "rows with an id already taken by an earlier row were left out"
            );
            ctx.counters.add("duplicate_node_ids", duplicates);
        }
        Ok(AnchorTable {
            noun: noun.to_string(),
            table: table.to_string(),
            columns,
            records,
            is_node,
            node_of_row,
        })
    }
}

/// A row's node id: its `<noun>_id` (`id_column`), or `<noun>:<row id>` when blank.
pub fn node_id_of(r: &Record, noun: &str, id_column: &str) -> String {
    match r.fields.get(id_column) {
        Some(J::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(J::Number(n)) => n.to_string(),
        _ => format!("{noun}:{}", r.id),
    }
}

/// The anchor table named `table`, if it is one.
pub fn anchor_named<'a>(
    anchors: &'a HashMap<String, AnchorTable>,
    table: &str,
) -> Option<&'a AnchorTable> {
    anchors.values().find(|a| a.table == table)
}

/// Display values of referenced rows: the referenced table's visible column, per (table,
/// visible column). With no visible column, a reference to an anchor row shows its node id.
#[derive(Default)]
pub struct Displays {
    by_table: HashMap<String, HashMap<i64, J>>,
}

fn display_key(target: &str, visible_col: i64) -> String {
    format!("{target}\u{0}{visible_col}")
}

impl Displays {
    /// Loads what the Ref/RefList columns among `columns` need, reading a referenced table that
    /// is not an anchor table once.
    pub async fn load(
        &mut self,
        client: &GristClient,
        doc: &str,
        anchors: &HashMap<String, AnchorTable>,
        columns: &[Column],
    ) -> Result<(), StepError> {
        for c in columns {
            let (ColumnType::Ref(target) | ColumnType::RefList(target)) = c.column_type() else {
                continue;
            };
            let key = display_key(&target, c.fields.visible_col);
            if self.by_table.contains_key(&key) {
                continue;
            }
            let loaded = anchor_named(anchors, &target);
            let fetched;
            let (target_columns, target_records) = match loaded {
                Some(a) => (&a.columns, &a.records),
                None => {
                    fetched = (
                        client.columns(doc, &target).await?,
                        client.records(doc, &target).await?,
                    );
                    (&fetched.0, &fetched.1)
                }
            };
            let visible = target_columns
                .iter()
                .find(|tc| c.fields.visible_col != 0 && tc.fields.col_ref == c.fields.visible_col);
            let no_refs = |_: &str, _: i64| None;
            let mut map = HashMap::new();
            for r in target_records {
                let display = match visible {
                    Some(v) => crate::cells::record_cell(
                        r.fields.get(&v.id).unwrap_or(&J::Null),
                        &v.column_type(),
                        &no_refs,
                    ),
                    None => loaded
                        .and_then(|a| a.node_of_row.get(&r.id))
                        .map_or(J::Null, |n| J::String(n.clone())),
                };
                if !display.is_null() {
                    map.insert(r.id, display);
                }
            }
            self.by_table.insert(key, map);
        }
        Ok(())
    }

    /// The display value of row `row_id` as `column` references it.
    pub fn get(&self, column: &Column, row_id: i64) -> Option<J> {
        let (ColumnType::Ref(target) | ColumnType::RefList(target)) = column.column_type() else {
            return None;
        };
        self.by_table
            .get(&display_key(&target, column.fields.visible_col))
            .and_then(|m| m.get(&row_id))
            .cloned()
    }
}

/// A record's cells in `columns`, typed (`crate::cells`), references by display value; cells
/// with no value are left out.
pub fn typed_attributes(
    record: &Record,
    columns: &[&Column],
    displays: &Displays,
) -> serde_json::Map<String, J> {
    let mut attributes = serde_json::Map::new();
    for c in columns {
        let resolver = |_: &str, id: i64| displays.get(c, id);
        let v = crate::cells::record_cell(
            record.fields.get(&c.id).unwrap_or(&J::Null),
            &c.column_type(),
            &resolver,
        );
        if !v.is_null() {
            attributes.insert(c.id.clone(), v);
        }
    }
    attributes
}
