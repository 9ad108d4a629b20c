//! The edges of reference columns (a link's `anchor1_link_column_name` or
//! `anchor2_link_column_name`) in rows of an anchor table that changed: those the cells give now
//! and those they gave before (from the delta's old cells), for a run that reads only changes.
//!
//! A `Ref`/`RefList` cell names rows of another table; their node ids are read by id (node ids
//! do not change in such a run). A text cell names node ids itself.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value as J;

use super::anchors::node_id_of;
use super::edges::text_nodes;
use super::model::{Link, Model};
use crate::cells::referenced_ids;
use crate::changes::TableDelta;
use crate::{Column, ColumnType, GristClient, Record};
use etl_core::StepError;

/// One edge a reference cell gives, before its endpoints are checked.
pub struct ReferenceEdge<'m> {
    pub from: String,
    pub to: String,
    pub link: &'m Link,
}

/// The links that read a reference column of the anchor `noun`: (link, column, whether this
/// anchor is the link's anchor1).
pub fn reference_links<'m>(model: &'m Model, noun: &str) -> Vec<(&'m Link, &'m str, bool)> {
    let mut out = Vec::new();
    for l in &model.links {
        if let (Some(c), true) = (&l.column1, l.anchor1 == noun) {
            out.push((l, c.as_str(), true));
        }
        if let (Some(c), true) = (&l.column2, l.anchor2 == noun) {
            out.push((l, c.as_str(), false));
        }
    }
    out
}

/// Node ids of rows of another table, read by id: what a Ref cell names.
#[derive(Default)]
struct Targets {
    by_table: HashMap<String, HashMap<i64, String>>,
}

impl Targets {
    async fn load(
        &mut self,
        client: &GristClient,
        doc: &str,
        model: &Model,
        table: &str,
        ids: BTreeSet<i64>,
    ) -> Result<(), StepError> {
        let Some(noun) = model.anchor_of_table(table) else {
            // Not an anchor table: its rows are no nodes (a complete read gives no edge either).
            return Ok(());
        };
        let known = self.by_table.entry(table.to_string()).or_default();
        let missing: Vec<i64> = ids
            .into_iter()
            .filter(|id| !known.contains_key(id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let id_column = format!("{noun}_id");
        for r in client.records_by_id(doc, table, &missing).await? {
            known.insert(r.id, node_id_of(&r, noun, &id_column));
        }
        Ok(())
    }

    fn nodes(&self, cell: &J, column: &Column) -> Vec<String> {
        match column.column_type() {
            ColumnType::Ref(target) | ColumnType::RefList(target) => {
                let Some(known) = self.by_table.get(&target) else {
                    return Vec::new();
                };
                referenced_ids(cell)
                    .into_iter()
                    .filter_map(|id| known.get(&id).cloned())
                    .collect()
            }
            _ => text_nodes(cell),
        }
    }
}

/// The reference edges of the changed rows `records` of an anchor table: `(before, now)`. Rows
/// whose reference cells did not change give the same edges before and now, and are left out.
pub async fn reference_edges<'m>(
    client: &GristClient,
    doc: &str,
    model: &'m Model,
    noun: &str,
    columns: &[Column],
    delta: &TableDelta,
    records: &[Record],
) -> Result<(Vec<ReferenceEdge<'m>>, Vec<ReferenceEdge<'m>>), StepError> {
    let id_column = format!("{noun}_id");
    let links = reference_links(model, noun);
    // (link, column, anchor1?, row's node id, old cell, new cell) for each changed cell.
    let mut cells = Vec::new();
    for (link, name, is_anchor1) in links {
        let Some(column) = columns.iter().find(|c| c.id == name) else {
            continue; // a complete read skips it too (with a warning)
        };
        for r in records.iter().filter(|r| delta.changed(name, r.id)) {
            let now = r.fields.get(name).cloned().unwrap_or(J::Null);
            let before = delta.old_value(name, r.id).cloned().unwrap_or(J::Null);
            cells.push((
                link,
                column,
                is_anchor1,
                node_id_of(r, noun, &id_column),
                before,
                now,
            ));
        }
    }
    let mut targets = Targets::default();
    let mut wanted: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for (_, column, _, _, before, now) in &cells {
        if let ColumnType::Ref(t) | ColumnType::RefList(t) = column.column_type() {
            wanted.entry(t).or_default().extend(
                referenced_ids(before)
                    .into_iter()
                    .chain(referenced_ids(now)),
            );
        }
    }
    for (table, ids) in wanted {
        targets.load(client, doc, model, &table, ids).await?;
    }
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for (link, column, is_anchor1, this, before, now) in &cells {
        for (cell, into) in [(before, &mut old), (now, &mut new)] {
            for other in targets.nodes(cell, column) {
                let (from, to) = if *is_anchor1 {
                    (this.clone(), other)
                } else {
                    (other, this.clone())
                };
                into.push(ReferenceEdge { from, to, link });
            }
        }
    }
    Ok((old, new))
}
