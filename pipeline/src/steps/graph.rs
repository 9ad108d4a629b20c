//! `uses = "grist.graph"`: the Data doc into `grist_nodes` and `grist_edges`, shaped by the
//! Data Model doc.
//!
//! * Each table `Anchor_<noun>` whose noun is an anchor of the data model gives nodes of type
//!   `<noun>`. Other tables are skipped, with one log line each.
//! * `node_id` is the row's `<noun>_id`, or `<noun>:<row id>` when blank. On duplicate ids the first
//!   row (by row id) wins; the others are counted (`duplicate_node_ids`) and logged by table.
//! * `attributes` holds only the anchor's attributes from `Anchor_attributes` (not `<noun>_id`),
//!   typed as JSON; references hold the referenced row's display value; blanks are left out.
//! * Edges come from reference columns named by a link (`anchor1_link_column_name` in anchor1's
//!   table, `anchor2_link_column_name` in anchor2's), by row id or by id string, and from tables
//!   `Link_<x>` matched to a link by sentence or `<anchor1>_<anchor2>` (case-insensitive). The
//!   node types of a link-table row are swapped when its `from_node_id` is an anchor2 node.
//! * An edge whose endpoint is not a node is dropped and counted (`edges_dropped_missing_node`); a
//!   link with `has_direction` false also gets the reverse edge; duplicates collapse to one.
//!
//! Anchor tables are read through `/records` (their row ids resolve references); link tables,
//! the bulk of the data, stream through the CSV download.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use serde_json::Value as J;

use etl_core::step::SnapshotSink;
use etl_core::{Row, StepContext, StepError, Value};
use grist::api::csv_header_to_column;
use grist::cells::{csv_cell, record_cell, referenced_ids};
use grist::{Column, ColumnType, GristClient, Record};

use super::data_model;
use super::grist_connection::GristRead;

/// Rows handed to the snapshot at a time.
const EDGE_BATCH: usize = 5000;

/// A link of the data model.
#[derive(Debug, Clone)]
struct Link {
    anchor1: String,
    anchor2: String,
    sentence: String,
    column1: Option<String>,
    column2: Option<String>,
    directed: bool,
}

/// What the graph needs from the data model.
#[derive(Debug, Default)]
struct Model {
    anchors: Vec<String>,
    anchor_attributes: HashMap<String, Vec<String>>,
    links: Vec<Link>,
    link_attributes: HashMap<String, Vec<String>>,
}

fn text(row: &Row, column: &str) -> Option<String> {
    row.text(column)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Model {
    fn from_rows(tables: &BTreeMap<&'static str, Vec<Row>>) -> Model {
        let mut m = Model::default();
        for r in tables.get("dm_anchors").into_iter().flatten() {
            if let Some(noun) = text(r, "noun") {
                m.anchors.push(noun);
            }
        }
        for (table, owner, into) in [
            ("dm_anchor_attributes", "anchor", &mut m.anchor_attributes),
            ("dm_link_attributes", "link", &mut m.link_attributes),
        ] {
            for r in tables.get(table).into_iter().flatten() {
                if let (Some(o), Some(a)) = (text(r, owner), text(r, "attribute_name")) {
                    into.entry(o).or_default().push(a);
                }
            }
        }
        for r in tables.get("dm_links").into_iter().flatten() {
            if let (Some(anchor1), Some(anchor2), Some(sentence)) =
                (text(r, "anchor1"), text(r, "anchor2"), text(r, "sentence"))
            {
                m.links.push(Link {
                    anchor1,
                    anchor2,
                    sentence,
                    column1: text(r, "anchor1_link_column_name"),
                    column2: text(r, "anchor2_link_column_name"),
                    directed: !matches!(r.get("has_direction"), Some(Value::Bool(false))),
                });
            }
        }
        m
    }

    /// The anchor an `Anchor_<noun>` table holds, if the model has it.
    fn anchor_of_table(&self, table: &str) -> Option<&str> {
        let noun = table.strip_prefix("Anchor_")?;
        self.anchors
            .iter()
            .find(|a| a.as_str() == noun)
            .or_else(|| self.anchors.iter().find(|a| a.eq_ignore_ascii_case(noun)))
            .map(String::as_str)
    }

    /// The link a `Link_<x>` table holds, if the model has it.
    fn link_of_table(&self, table: &str) -> Option<&Link> {
        let x = table.strip_prefix("Link_")?;
        self.links.iter().find(|l| {
            l.sentence.eq_ignore_ascii_case(x)
                || format!("{}_{}", l.anchor1, l.anchor2).eq_ignore_ascii_case(x)
        })
    }
}

/// An anchor table, loaded.
struct AnchorTable {
    noun: String,
    columns: Vec<Column>,
    /// Records by row id, duplicates of an earlier id left out.
    records: Vec<Record>,
    /// Every row id (duplicates included) to its node id.
    node_of_row: HashMap<i64, String>,
}

impl AnchorTable {
    fn column(&self, id: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.id == id)
    }
}

/// Display values of referenced rows: the referenced table's visible column.
struct Displays {
    by_table: HashMap<String, HashMap<i64, J>>,
}

impl Displays {
    async fn load(
        client: &GristClient,
        doc: &str,
        anchors: &HashMap<String, AnchorTable>,
        columns: &[Column],
        into: &mut Displays,
    ) -> Result<(), StepError> {
        for c in columns {
            let (ColumnType::Ref(target) | ColumnType::RefList(target)) = c.column_type() else {
                continue;
            };
            let key = format!("{target}\u{0}{}", c.fields.visible_col);
            if into.by_table.contains_key(&key) {
                continue;
            }
            let loaded = anchors
                .values()
                .find(|a| format!("Anchor_{}", a.noun) == target);
            let (target_columns, target_records) = match loaded {
                Some(a) => (a.columns.clone(), a.records.clone()),
                None => (
                    client.columns(doc, &target).await?,
                    client.records(doc, &target).await?,
                ),
            };
            let visible = target_columns
                .iter()
                .find(|tc| c.fields.visible_col != 0 && tc.fields.col_ref == c.fields.visible_col)
                .map(|tc| tc.id.clone());
            let mut map = HashMap::new();
            for r in &target_records {
                let display = match &visible {
                    Some(v) => r.fields.get(v).cloned().unwrap_or(J::Null),
                    None => loaded
                        .and_then(|a| a.node_of_row.get(&r.id))
                        .map_or(J::Null, |n| J::String(n.clone())),
                };
                if !display.is_null() {
                    map.insert(r.id, display);
                }
            }
            into.by_table.insert(key, map);
        }
        Ok(())
    }

    fn get(&self, column: &Column, row_id: i64) -> Option<J> {
        let (ColumnType::Ref(target) | ColumnType::RefList(target)) = column.column_type() else {
            return None;
        };
        self.by_table
            .get(&format!("{target}\u{0}{}", column.fields.visible_col))
            .and_then(|m| m.get(&row_id))
            .cloned()
    }
}

/// Collects edges, checks their endpoints, adds reverses, and writes them in batches.
struct EdgeWriter<'a> {
    nodes: &'a HashMap<String, HashSet<String>>,
    buffer: Vec<Row>,
    dropped: u64,
}

impl EdgeWriter<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn add(
        &mut self,
        out: &mut dyn SnapshotSink,
        from: &str,
        to: &str,
        from_type: &str,
        to_type: &str,
        label: &str,
        attributes: &J,
        directed: bool,
    ) -> Result<(), StepError> {
        let known = |t: &str, id: &str| self.nodes.get(t).is_some_and(|s| s.contains(id));
        if !known(from_type, from) || !known(to_type, to) {
            self.dropped += 1;
            return Ok(());
        }
        self.buffer
            .push(edge_row(from, to, from_type, to_type, label, attributes));
        if !directed {
            self.buffer
                .push(edge_row(to, from, to_type, from_type, label, attributes));
        }
        if self.buffer.len() >= EDGE_BATCH {
            out.write("grist_edges", std::mem::take(&mut self.buffer))
                .await?;
        }
        Ok(())
    }

    async fn flush(&mut self, out: &mut dyn SnapshotSink) -> Result<(), StepError> {
        out.write("grist_edges", std::mem::take(&mut self.buffer))
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

/// The node ids a reference cell points at: by row id for Ref/RefList columns, by id string(s)
/// otherwise.
fn referenced_nodes(
    cell: &J,
    column: &Column,
    anchors: &HashMap<String, AnchorTable>,
) -> Vec<String> {
    match column.column_type() {
        ColumnType::Ref(target) | ColumnType::RefList(target) => {
            let table = anchors
                .values()
                .find(|a| format!("Anchor_{}", a.noun) == target);
            referenced_ids(cell)
                .into_iter()
                .filter_map(|id| table.and_then(|t| t.node_of_row.get(&id)).cloned())
                .collect()
        }
        _ => match cell {
            J::String(s) if !s.trim().is_empty() => vec![s.trim().to_string()],
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
        },
    }
}

pub struct GraphExtract {
    pub client: GristClient,
    pub data_model_doc: String,
    pub data_doc: String,
}

impl GraphExtract {
    async fn load_anchor(
        &self,
        client: &GristClient,
        noun: &str,
        table: &str,
        ctx: &StepContext,
    ) -> Result<AnchorTable, StepError> {
        let columns = client.columns(&self.data_doc, table).await?;
        let mut records = client.records(&self.data_doc, table).await?;
        records.sort_by_key(|r| r.id);
        let id_column = format!("{noun}_id");
        let mut node_of_row = HashMap::with_capacity(records.len());
        let mut seen: HashSet<String> = HashSet::with_capacity(records.len());
        let mut kept = Vec::with_capacity(records.len());
        let mut duplicates = 0u64;
        for r in records {
            let node_id = match r.fields.get(&id_column) {
                Some(J::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                Some(J::Number(n)) => n.to_string(),
                _ => format!("{noun}:{}", r.id),
            };
            node_of_row.insert(r.id, node_id.clone());
            if seen.insert(node_id) {
                kept.push(r);
            } else {
                duplicates += 1;
            }
        }
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
            columns,
            records: kept,
            node_of_row,
        })
    }
}

#[async_trait]
impl GristRead for GraphExtract {
    fn client(&self) -> &GristClient {
        &self.client
    }

    async fn check(&self) -> Result<(), StepError> {
        self.client.tables(&self.data_model_doc).await?;
        self.client.tables(&self.data_doc).await?;
        Ok(())
    }

    async fn read_snapshot(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<(), StepError> {
        let model = Model::from_rows(&data_model::read(client, &self.data_model_doc).await?);
        let tables = client.tables(&self.data_doc).await?;

        let mut anchor_tables = Vec::new();
        let mut link_tables = Vec::new();
        for t in &tables {
            if let Some(noun) = model.anchor_of_table(t) {
                anchor_tables.push((noun.to_string(), t.clone()));
            } else if let Some(link) = model.link_of_table(t) {
                link_tables.push((link.clone(), t.clone()));
            } else {
                let reason = if t.starts_with("Anchor_") {
                    "its anchor is not in the data model"
                } else if t.starts_with("Link_") {
                    "no link of the data model matches it"
                } else {
                    "it is neither an Anchor_ nor a Link_ table"
                };
                tracing::info!(table = %t, reason, "skipping table");
                ctx.counters.add("tables_skipped", 1);
            }
        }

        // Nodes.
        let mut anchors: HashMap<String, AnchorTable> = HashMap::new();
        for (noun, table) in &anchor_tables {
            let loaded = self.load_anchor(client, noun, table, ctx).await?;
            anchors.insert(noun.clone(), loaded);
        }
        let mut displays = Displays {
            by_table: HashMap::new(),
        };
        for a in anchors.values() {
            Displays::load(client, &self.data_doc, &anchors, &a.columns, &mut displays).await?;
        }
        let mut nodes: HashMap<String, HashSet<String>> = HashMap::new();
        for a in anchors.values() {
            let id_column = format!("{}_id", a.noun);
            let wanted: Vec<&Column> = model
                .anchor_attributes
                .get(&a.noun)
                .into_iter()
                .flatten()
                .filter(|name| **name != id_column)
                .filter_map(|name| a.column(name))
                .collect();
            let set = nodes.entry(a.noun.clone()).or_default();
            let mut batch = Vec::new();
            for r in &a.records {
                let node_id = a.node_of_row[&r.id].clone();
                let mut attributes = serde_json::Map::new();
                for c in &wanted {
                    let resolver = |_: &str, id: i64| displays.get(c, id);
                    let v = record_cell(
                        r.fields.get(&c.id).unwrap_or(&J::Null),
                        &c.column_type(),
                        &resolver,
                    );
                    if !v.is_null() {
                        attributes.insert(c.id.clone(), v);
                    }
                }
                set.insert(node_id.clone());
                batch.push(
                    Row::new()
                        .with("node_id", node_id)
                        .with("node_type", a.noun.as_str())
                        .with("attributes", J::Object(attributes)),
                );
                if batch.len() >= EDGE_BATCH {
                    out.write("grist_nodes", std::mem::take(&mut batch)).await?;
                }
            }
            out.write("grist_nodes", batch).await?;
        }

        // Edges from reference columns.
        let mut edges = EdgeWriter {
            nodes: &nodes,
            buffer: Vec::new(),
            dropped: 0,
        };
        let empty = J::Object(serde_json::Map::new());
        for link in &model.links {
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
                for r in &table.records {
                    let this = &table.node_of_row[&r.id];
                    let cell = r.fields.get(column_name).unwrap_or(&J::Null);
                    for other in referenced_nodes(cell, column, &anchors) {
                        let (from, to) = if this_is_anchor1 {
                            (this.as_str(), other.as_str())
                        } else {
                            (other.as_str(), this.as_str())
                        };
                        edges
                            .add(
                                out,
                                from,
                                to,
                                &link.anchor1,
                                &link.anchor2,
                                &link.sentence,
                                &empty,
                                link.directed,
                            )
                            .await?;
                    }
                }
            }
        }

        // Edges from link tables.
        for (link, table) in &link_tables {
            let columns = client.columns(&self.data_doc, table).await?;
            let helper_of = csv_header_to_column(&columns);
            let types: HashMap<&str, ColumnType> = columns
                .iter()
                .map(|c| (c.id.as_str(), c.column_type()))
                .collect();
            let mut csv = client.csv(&self.data_doc, table).await?;
            let headers: Vec<String> = csv
                .headers()
                .await?
                .into_iter()
                .map(|h| helper_of.get(&h).cloned().unwrap_or(h))
                .collect();
            let position = |name: &str| headers.iter().position(|h| h == name);
            let (Some(from_at), Some(to_at)) = (position("from_node_id"), position("to_node_id"))
            else {
                return Err(StepError::fatal(format!(
                    "table `{table}` of the Data doc has no from_node_id/to_node_id columns: a Link_ table lists edges by node id"
                )));
            };
            let label_at = position("edge_label");
            let attribute_columns: Vec<(String, usize, ColumnType)> = model
                .link_attributes
                .get(&link.sentence)
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    let at = position(a)?;
                    Some((
                        a.clone(),
                        at,
                        types.get(a.as_str()).cloned().unwrap_or(ColumnType::Text),
                    ))
                })
                .collect();
            let anchor1_nodes = nodes.get(&link.anchor1);
            let anchor2_nodes = nodes.get(&link.anchor2);
            while let Some(batch) = csv.next_batch().await? {
                for record in batch {
                    let from = record.get(from_at).unwrap_or("").trim();
                    let to = record.get(to_at).unwrap_or("").trim();
                    if from.is_empty() || to.is_empty() {
                        edges.dropped += 1;
                        continue;
                    }
                    let label = label_at
                        .and_then(|i| record.get(i))
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .unwrap_or(&link.sentence);
                    let swapped = link.anchor1 != link.anchor2
                        && anchor2_nodes.is_some_and(|s| s.contains(from))
                        && !anchor1_nodes.is_some_and(|s| s.contains(from));
                    let (from_type, to_type) = if swapped {
                        (&link.anchor2, &link.anchor1)
                    } else {
                        (&link.anchor1, &link.anchor2)
                    };
                    let mut attributes = serde_json::Map::new();
                    for (name, at, ty) in &attribute_columns {
                        match csv_cell(record.get(*at).unwrap_or(""), ty) {
                            Value::Null => {}
                            Value::Bool(b) => {
                                attributes.insert(name.clone(), J::Bool(b));
                            }
                            Value::Int(i) => {
                                attributes.insert(name.clone(), J::from(i));
                            }
                            Value::Float(f) => {
                                attributes.insert(name.clone(), J::from(f));
                            }
                            Value::Text(s) => {
                                attributes.insert(name.clone(), J::String(s));
                            }
                            Value::Json(j) => {
                                attributes.insert(name.clone(), j);
                            }
                            Value::Vector(_) => {}
                        }
                    }
                    edges
                        .add(
                            out,
                            from,
                            to,
                            from_type,
                            to_type,
                            label,
                            &J::Object(attributes),
                            link.directed,
                        )
                        .await?;
                }
            }
        }
        edges.flush(out).await?;
        if edges.dropped > 0 {
            tracing::warn!(
                edges = edges.dropped,
                "edges whose endpoint is not a node were dropped"
            );
            ctx.counters
                .add("edges_dropped_missing_node", edges.dropped);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tables_match_by_sentence_or_anchor_pair_ignoring_case() {
        let m = Model {
            anchors: vec!["person".into(), "interest".into()],
            links: vec![Link {
                anchor1: "person".into(),
                anchor2: "interest".into(),
                sentence: "PERSON_has_INTEREST".into(),
                column1: None,
                column2: None,
                directed: false,
            }],
            ..Model::default()
        };
        assert!(m.link_of_table("Link_person_has_interest").is_some());
        assert!(m.link_of_table("Link_Person_Interest").is_some());
        assert!(m.link_of_table("Link_other").is_none());
        assert_eq!(m.anchor_of_table("Anchor_person"), Some("person"));
        assert_eq!(m.anchor_of_table("Anchor_Person"), Some("person"));
        assert_eq!(m.anchor_of_table("Anchor_pet"), None);
        assert_eq!(m.anchor_of_table("Meta_person"), None);
    }
}
