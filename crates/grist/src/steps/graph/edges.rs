//! Edges: from `Link_*` tables and from the reference columns links name, checked against the
//! nodes, with reverses for undirected links, written in batches.
//!
//! **Merge rule.** Several sources can give one edge key (from, to, their types, label). The
//! snapshot keeps the first row it is given for a key, so the order of writing is the rule:
//! link tables first, each row by row id (the CSV download lists rows in row id order; the
//! `/records` path sorts them), each row's reverse right after it; then the reference
//! columns. So a link-table row wins over a reference column, the first link row wins over later
//! duplicates, and the reverse of an undirected edge carries the attributes of the row it came
//! from. The order in which Grist answers has no say.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as J};

use crate::cells::{csv_cell, referenced_ids, ReadPath};
use crate::{Column, ColumnType, GristClient};
use etl_core::step::SnapshotSink;
use etl_core::{Row, StepError};

use super::anchors::{anchor_named, typed_attributes, AnchorTable, Displays};
use super::model::Link;

/// Rows handed to the snapshot at a time.
pub const BATCH: usize = 5000;

/// Node ids per node type.
pub type NodeIds = HashMap<String, HashSet<String>>;

/// One edge before its endpoints are checked.
pub struct Edge<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub from_type: &'a str,
    pub to_type: &'a str,
    pub label: &'a str,
    pub attributes: &'a J,
    pub directed: bool,
}

/// Collects edges, checks their endpoints, adds reverses, and writes them in batches.
pub struct EdgeWriter<'a> {
    pub nodes: &'a NodeIds,
    /// The output table of edges (the step's second output).
    table: &'a str,
    buffer: Vec<Row>,
    pub dropped: u64,
    /// Hashes of the edge keys given so far: whether any key came from two sources.
    keys: HashSet<u64>,
    pub unique: bool,
}

/// A short hash of an edge key (a collision only makes `unique` false, the safe side).
fn key_hash(from: &str, to: &str, from_type: &str, to_type: &str, label: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (from, to, from_type, to_type, label).hash(&mut h);
    h.finish()
}

impl<'a> EdgeWriter<'a> {
    pub fn new(nodes: &'a NodeIds, table: &'a str) -> Self {
        EdgeWriter {
            nodes,
            table,
            buffer: Vec::new(),
            dropped: 0,
            keys: HashSet::new(),
            unique: true,
        }
    }

    pub async fn add(&mut self, out: &mut dyn SnapshotSink, e: Edge<'_>) -> Result<(), StepError> {
        let known = |t: &str, id: &str| self.nodes.get(t).is_some_and(|s| s.contains(id));
        if !known(e.from_type, e.from) || !known(e.to_type, e.to) {
            self.dropped += 1;
            return Ok(());
        }
        let forward = key_hash(e.from, e.to, e.from_type, e.to_type, e.label);
        let reverse = key_hash(e.to, e.from, e.to_type, e.from_type, e.label);
        self.unique &= self.keys.insert(forward);
        if !e.directed && reverse != forward {
            self.unique &= self.keys.insert(reverse);
        }
        self.buffer.push(edge_row(
            e.from,
            e.to,
            e.from_type,
            e.to_type,
            e.label,
            e.attributes,
        ));
        if !e.directed {
            self.buffer.push(edge_row(
                e.to,
                e.from,
                e.to_type,
                e.from_type,
                e.label,
                e.attributes,
            ));
        }
        if self.buffer.len() >= BATCH {
            out.write(self.table, std::mem::take(&mut self.buffer))
                .await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self, out: &mut dyn SnapshotSink) -> Result<(), StepError> {
        out.write(self.table, std::mem::take(&mut self.buffer))
            .await
    }
}

fn edge_row(
    from: &str,
    to: &str,
    from_type: &str,
    to_type: &str,
    label: &str,
    attributes: &J,
) -> Row {
    Row::new()
        .with("from_node_id", from)
        .with("to_node_id", to)
        .with("from_node_type", from_type)
        .with("to_node_type", to_type)
        .with("edge_label", label)
        .with("attributes", attributes.clone())
}

/// The node ids a cell points at: by row id for Ref/RefList columns (through the referenced
/// anchor table), by id string(s) otherwise.
fn referenced_nodes(
    cell: &J,
    column: &Column,
    anchors: &HashMap<String, AnchorTable>,
) -> Vec<String> {
    match column.column_type() {
        ColumnType::Ref(target) | ColumnType::RefList(target) => {
            let table = anchor_named(anchors, &target);
            referenced_ids(cell)
                .into_iter()
                .filter_map(|id| table.and_then(|t| t.node_of_row.get(&id)).cloned())
                .collect()
        }
        _ => text_nodes(cell),
    }
}

/// The node ids a text cell (or a list of texts) names.
pub fn text_nodes(cell: &J) -> Vec<String> {
    match cell {
        J::String(s) if !s.trim().is_empty() => vec![s.trim().to_string()],
        J::Number(n) => vec![n.to_string()],
        J::Array(items) => items
            .iter()
            .skip_while(|i| i.as_str() == Some("L"))
            .filter_map(|i| {
                i.as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Edges from the reference columns a link names (`anchor1_link_column_name` in anchor1's
/// table: this row to the referenced ones; `anchor2_link_column_name` in anchor2's: the
/// referenced ones to this row). They carry no attributes.
pub async fn from_reference_columns(
    link: &Link,
    anchors: &HashMap<String, AnchorTable>,
    edges: &mut EdgeWriter<'_>,
    out: &mut dyn SnapshotSink,
) -> Result<(), StepError> {
    let empty = J::Object(Map::new());
    for (column_name, this_anchor, this_is_anchor1) in [
        (&link.column1, &link.anchor1, true),
        (&link.column2, &link.anchor2, false),
    ] {
        let Some(column_name) = column_name else {
            continue;
        };
        let Some(table) = anchors.get(this_anchor) else {
            continue;
        };
        let Some(column) = table.column(column_name) else {
            tracing::warn!(link = %link.sentence, column = %column_name, anchor = %this_anchor, "the link's column is not in the anchor's table");
            continue;
        };
        for r in table.nodes() {
            let this = &table.node_of_row[&r.id];
            let cell = r.fields.get(column_name).unwrap_or(&J::Null);
            for other in referenced_nodes(cell, column, anchors) {
                let (from, to) = if this_is_anchor1 {
                    (this.as_str(), other.as_str())
                } else {
                    (other.as_str(), this.as_str())
                };
                edges
                    .add(
                        out,
                        Edge {
                            from,
                            to,
                            from_type: &link.anchor1,
                            to_type: &link.anchor2,
                            label: &link.sentence,
                            attributes: &empty,
                            directed: link.directed,
                        },
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// One row of a link table, typed.
pub struct LinkRow {
    pub from: String,
    pub to: String,
    pub label: Option<String>,
    pub attributes: Map<String, J>,
}

/// What a complete read learned of a link table (see `super::facts`).
pub struct LinkFacts {
    pub columns: Vec<Column>,
    /// Every column read is exact in CSV and the endpoints are Text: a row read through
    /// `/records` types as the CSV read does.
    pub plain: bool,
    pub rows: u64,
}

/// The columns a link row is read from.
pub struct ReadColumns<'c> {
    pub from: &'c Column,
    pub to: &'c Column,
    pub label: Option<&'c Column>,
    pub attributes: Vec<&'c Column>,
}

impl ReadColumns<'_> {
    /// A `/records` row of a link table, typed.
    pub fn row(
        &self,
        r: &crate::Record,
        anchors: &HashMap<String, AnchorTable>,
        displays: &Displays,
    ) -> LinkRow {
        let endpoint = |c: &Column| {
            let cell = r.fields.get(&c.id).unwrap_or(&J::Null);
            endpoint_of(cell, c, anchors)
        };
        LinkRow {
            from: endpoint(self.from),
            to: endpoint(self.to),
            label: self.label.and_then(|c| label_of(r.fields.get(&c.id))),
            attributes: typed_attributes(r, &self.attributes, displays),
        }
    }
}

/// The node id an endpoint cell names ("" when none).
pub fn endpoint_of(cell: &J, column: &Column, anchors: &HashMap<String, AnchorTable>) -> String {
    referenced_nodes(cell, column, anchors)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// An `edge_label` cell's label (a blank one means the link's sentence).
pub fn label_of(cell: Option<&J>) -> Option<String> {
    match cell {
        Some(J::String(s)) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// What a link table's rows are read with.
pub struct LinkTable<'a> {
    pub doc: &'a str,
    pub table: &'a str,
    pub link: &'a Link,
    /// The link's attributes (`Link_attributes`).
    pub attributes: &'a [String],
}

impl LinkTable<'_> {
    /// The columns of the table the edges are read from: the endpoints, the label, the link's
    /// attributes. A table without endpoint columns is an error naming it.
    pub fn columns_read<'c>(&self, columns: &'c [Column]) -> Result<ReadColumns<'c>, StepError> {
        let find = |id: &str| columns.iter().find(|c| c.id == id && !c.is_internal());
        let (Some(from), Some(to)) = (find("from_node_id"), find("to_node_id")) else {
            return Err(StepError::fatal(format!(
                "table `{}` of the Data doc has no from_node_id/to_node_id columns: a Link_ table lists edges by node id",
                self.table
            )));
        };
        let attributes = self
            .attributes
            .iter()
            .filter_map(|a| find(a))
            .filter(|c| !matches!(c.id.as_str(), "from_node_id" | "to_node_id"))
            .collect();
        Ok(ReadColumns {
            from,
            to,
            label: find("edge_label"),
            attributes,
        })
    }

    /// Reads the table and adds its edges, rows by row id. The table goes through the CSV
    /// download when every column read is exact there, and through `/records` otherwise
    /// (formulas, references, dates, numbers with a format: see `grist::cells`).
    pub async fn add_edges(
        &self,
        client: &GristClient,
        anchors: &HashMap<String, AnchorTable>,
        displays: &mut Displays,
        edges: &mut EdgeWriter<'_>,
        out: &mut dyn SnapshotSink,
    ) -> Result<LinkFacts, StepError> {
        let columns = client.columns(self.doc, self.table).await?;
        let mut count = 0u64;
        let cols = self.columns_read(&columns)?;
        let (from_col, to_col, label_col) = (cols.from, cols.to, cols.label);
        let attribute_cols = cols.attributes.clone();
        let read: Vec<&Column> = [from_col, to_col]
            .into_iter()
            .chain(label_col)
            .chain(attribute_cols.iter().copied())
            .collect();
        let mut rows = Vec::with_capacity(BATCH);
        let path = ReadPath::for_columns(read.iter().copied());
        match path {
            ReadPath::Csv => {
                let mut csv = client.csv(self.doc, self.table).await?;
                let headers = csv.column_ids(&columns).await?;
                let at = |c: &Column| headers.iter().position(|h| *h == c.id);
                let (from_at, to_at) = (at(from_col), at(to_col));
                let label_at = label_col.and_then(at);
                let attrs: Vec<(&Column, Option<usize>)> =
                    attribute_cols.iter().map(|c| (*c, at(c))).collect();
                while let Some(batch) = csv.next_batch().await? {
                    count += batch.len() as u64;
                    for record in batch {
                        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
                        let mut attributes = Map::new();
                        for (c, i) in &attrs {
                            let v = csv_cell(cell(*i), &c.column_type());
                            if !v.is_null() {
                                attributes.insert(c.id.clone(), v);
                            }
                        }
                        rows.push(LinkRow {
                            from: cell(from_at).trim().to_string(),
                            to: cell(to_at).trim().to_string(),
                            label: Some(cell(label_at).trim().to_string()),
                            attributes,
                        });
                    }
                    self.add_rows(std::mem::take(&mut rows), edges, out).await?;
                }
            }
            ReadPath::Records => {
                displays.load(client, self.doc, anchors, &columns).await?;
                let mut records = client.records(self.doc, self.table).await?;
                records.sort_by_key(|r| r.id);
                count = records.len() as u64;
                for r in &records {
                    rows.push(cols.row(r, anchors, displays));
                    if rows.len() >= BATCH {
                        self.add_rows(std::mem::take(&mut rows), edges, out).await?;
                    }
                }
                self.add_rows(rows, edges, out).await?;
            }
        }
        let text = |c: &Column| c.column_type() == ColumnType::Text;
        Ok(LinkFacts {
            plain: path == ReadPath::Csv && text(from_col) && text(to_col),
            rows: count,
            columns,
        })
    }

    /// Adds link rows as edges, in order. A row whose `from_node_id` is a node of anchor2 (and
    /// not of anchor1) is written the other way round: its node types are swapped.
    pub async fn add_rows(
        &self,
        rows: Vec<LinkRow>,
        edges: &mut EdgeWriter<'_>,
        out: &mut dyn SnapshotSink,
    ) -> Result<(), StepError> {
        let link = self.link;
        for row in rows {
            if row.from.is_empty() || row.to.is_empty() {
                edges.dropped += 1;
                continue;
            }
            let label = row
                .label
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(&link.sentence);
            let is = |t: &str, id: &str| edges.nodes.get(t).is_some_and(|s| s.contains(id));
            let swapped = link.anchor1 != link.anchor2
                && is(&link.anchor2, &row.from)
                && !is(&link.anchor1, &row.from);
            let (from_type, to_type) = if swapped {
                (&link.anchor2, &link.anchor1)
            } else {
                (&link.anchor1, &link.anchor2)
            };
            let attributes = J::Object(row.attributes);
            edges
                .add(
                    out,
                    Edge {
                        from: &row.from,
                        to: &row.to,
                        from_type,
                        to_type,
                        label,
                        attributes: &attributes,
                        directed: link.directed,
                    },
                )
                .await?;
        }
        Ok(())
    }
}
