//! `uses = "grist.graph"`: the Data doc into its two outputs, nodes and edges (`grist_nodes`,
//! `grist_edges`), shaped by the Data Model doc.
//!
//! * Each table `Anchor_<noun>` whose noun is an anchor of the data model gives nodes of type
//!   `<noun>`. Other tables are skipped, with one log line each.
//! * `node_id` is the row's `<noun>_id`, or `<noun>:<row id>` when blank. On duplicate ids the first
//!   row (by row id) wins; the others are counted (`duplicate_node_ids`) and logged by table.
//! * `attributes` holds only the anchor's attributes from `Anchor_attributes` (not `<noun>_id`),
//!   typed by `grist::cells` (one typing for every column type and endpoint); references hold
//!   the referenced row's display value; blanks and formula errors are left out.
//! * Edges come from `Link_<x>` tables matched to a link by sentence or `<anchor1>_<anchor2>`
//!   (case-insensitive), and from reference columns named by a link. The merge rule when several
//!   give one edge is in [`edges`]: link rows first, by row id.
//! * An edge whose endpoint is not a node is dropped and counted (`edges_dropped_missing_node`); a
//!   link with `has_direction` false also gets the reverse edge; duplicates collapse to one.
//!
//! | module | owns |
//! | --- | --- |
//! | [`model`] | the data model as the graph reads it |
//! | [`anchors`] | anchor tables, node ids per row, display values of references |
//! | [`edges`] | edges from link tables and reference columns, the merge rule |
//! | [`facts`] | what a complete read remembers for the next run |
//! | [`changes`] | a run that reads only the rows the Data doc's changes name |
//! | [`changed_references`] | the edges of reference cells that changed, before and after |

mod anchors;
mod changed_references;
mod changes;
mod edges;
mod facts;
mod model;
mod problems;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde_json::Value as J;

use crate::{Column, GristClient};
use etl_core::step::roles::{EDGE_KEY, NODE_KEY};
use etl_core::step::{Origin, OutputRole, SnapshotSink};
use etl_core::{Key, Row, StepContext, StepError};

use self::anchors::{AnchorTable, Displays};
use self::edges::{EdgeWriter, LinkTable, NodeIds, BATCH};
use self::facts::{GraphFacts, TableFacts};
use self::model::{Link, Model};
use super::connection::GristRead;
use super::data_model;
use super::feed::Changes;

pub struct GraphExtract {
    pub client: GristClient,
    pub data_model_doc: String,
    pub data_doc: String,
}

/// The Data doc's tables the graph reads: anchor tables by noun, link tables by link.
#[derive(Default)]
struct GraphTables {
    anchors: Vec<(String, String)>,
    links: Vec<(Link, String)>,
}

/// Sorts the Data doc's tables into anchor tables and link tables; the others are skipped.
fn classify(model: &Model, tables: &[String], ctx: &StepContext) -> GraphTables {
    let mut out = GraphTables::default();
    for t in tables {
        if let Some(noun) = model.anchor_of_table(t) {
            out.anchors.push((noun.to_string(), t.clone()));
        } else if let Some(link) = model.link_of_table(t) {
            out.links.push((link.clone(), t.clone()));
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
    out
}

/// Warns once of each mistake of the data model that leaves nodes, attributes or edges out.
fn warn_of_problems(
    x: &GraphExtract,
    model: &Model,
    tables: &[String],
    anchors: &HashMap<String, AnchorTable>,
    ctx: &StepContext,
) {
    let columns: HashMap<String, Vec<String>> = anchors
        .iter()
        .map(|(noun, a)| {
            (
                noun.clone(),
                a.columns.iter().map(|c| c.id.clone()).collect(),
            )
        })
        .collect();
    let found = problems::problems(model, (&x.data_model_doc, &x.data_doc), tables, &columns);
    for p in &found {
        tracing::warn!(doc = %p.doc, table = p.table, "{p}");
    }
    if !found.is_empty() {
        ctx.counters.add("data_model_problems", found.len() as u64);
    }
}

/// The columns of an anchor table that give its nodes' attributes.
fn attribute_columns<'c>(model: &Model, noun: &str, columns: &'c [Column]) -> Vec<&'c Column> {
    let id_column = format!("{noun}_id");
    model
        .anchor_attributes
        .get(noun)
        .into_iter()
        .flatten()
        .filter(|name| **name != id_column)
        .filter_map(|name| columns.iter().find(|c| c.id == *name))
        .filter(|c| !c.is_internal())
        .collect()
}

/// Writes the nodes of one anchor table, and records their ids.
async fn write_nodes(
    table: &str,
    a: &AnchorTable,
    model: &Model,
    displays: &Displays,
    nodes: &mut NodeIds,
    out: &mut dyn SnapshotSink,
) -> Result<(), StepError> {
    let wanted = attribute_columns(model, &a.noun, &a.columns);
    let set = nodes.entry(a.noun.clone()).or_default();
    let mut batch = Vec::new();
    for r in a.nodes() {
        let node_id = a.node_of_row[&r.id].clone();
        let attributes = anchors::typed_attributes(r, &wanted, displays);
        set.insert(node_id.clone());
        batch.push(
            Row::new()
                .with("node_id", node_id)
                .with("node_type", a.noun.as_str())
                .with("attributes", J::Object(attributes)),
        );
        if batch.len() >= BATCH {
            out.write(table, std::mem::take(&mut batch)).await?;
        }
    }
    out.write(table, batch).await
}

#[async_trait]
impl GristRead for GraphExtract {
    fn client(&self) -> &GristClient {
        &self.client
    }

    fn docs(&self) -> Vec<String> {
        vec![self.data_model_doc.clone(), self.data_doc.clone()]
    }

    fn outputs(&self) -> Vec<OutputRole> {
        vec![
            OutputRole {
                name: "nodes",
                key: NODE_KEY,
                columns: &["attributes"],
            },
            OutputRole {
                name: "edges",
                key: EDGE_KEY,
                columns: &["attributes"],
            },
        ]
    }

    fn origin(&self, role: &str, key: &Key) -> Option<Origin> {
        let p = key.parts();
        let (source, url) = if self.data_doc.is_empty() || self.client.server().is_empty() {
            // This process was started without the Grist settings (GRIST_DATA_DOC_ID...).
            (
                "the Grist Data doc (not configured in this process)".to_string(),
                None,
            )
        } else {
            (
                format!("Grist doc `{}` on {}", self.data_doc, self.client.server()),
                Some(format!(
                    "{}/doc/{}",
                    self.client.server().trim_end_matches('/'),
                    self.data_doc
                )),
            )
        };
        match role {
            "nodes" if p.len() == 2 => {
                let (node_id, noun) = (&p[0], &p[1]);
                // `<noun>:<row id>` is also the id of a row whose `<noun>_id` is blank.
                let row = match node_id.strip_prefix(&format!("{noun}:")) {
                    Some(row_id) if row_id.parse::<i64>().is_ok() => format!(
                        "the row whose `{noun}_id` is `{node_id}` (or row {row_id}, if its `{noun}_id` is blank)"
                    ),
                    _ => format!("the row whose `{noun}_id` is `{node_id}`"),
                };
                Some(Origin {
                    source,
                    table: format!("Anchor_{noun}"),
                    row,
                    url,
                })
            }
            "edges" if p.len() == 5 => Some(Origin {
                source,
                table: format!(
                    "the `Link_` table of link `{}`, or a reference column of `Anchor_{}`",
                    p[4], p[2]
                ),
                row: format!("the row linking `{}` to `{}`", p[0], p[1]),
                url,
            }),
            _ => None,
        }
    }

    async fn problems(&self) -> Result<Vec<String>, StepError> {
        let model =
            Model::from_rows(&data_model::read(&self.client, &self.data_model_doc, None).await?);
        let tables = self.client.tables(&self.data_doc).await?;
        let mut columns = HashMap::new();
        for t in &tables {
            if let Some(noun) = model.anchor_of_table(t) {
                let ids = self.client.columns(&self.data_doc, t).await?;
                columns.insert(noun.to_string(), ids.into_iter().map(|c| c.id).collect());
            }
        }
        Ok(problems::problems(
            &model,
            (&self.data_model_doc, &self.data_doc),
            &tables,
            &columns,
        )
        .iter()
        .map(ToString::to_string)
        .collect())
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
    ) -> Result<J, StepError> {
        let model = Model::from_rows(&data_model::read(client, &self.data_model_doc, None).await?);
        let tables = client.tables(&self.data_doc).await?;
        let GraphTables {
            anchors: anchor_tables,
            links: link_tables,
        } = classify(&model, &tables, ctx);

        // Nodes.
        let mut anchors: HashMap<String, AnchorTable> = HashMap::new();
        for (noun, table) in &anchor_tables {
            let loaded = AnchorTable::load(client, &self.data_doc, noun, table, ctx).await?;
            anchors.insert(noun.clone(), loaded);
        }
        warn_of_problems(self, &model, &tables, &anchors, ctx);
        let mut displays = Displays::default();
        for a in anchors.values() {
            displays
                .load(client, &self.data_doc, &anchors, &a.columns)
                .await?;
        }
        let mut nodes = NodeIds::new();
        for (noun, _) in &anchor_tables {
            write_nodes(
                ctx.output(0)?,
                &anchors[noun],
                &model,
                &displays,
                &mut nodes,
                out,
            )
            .await?;
        }

        // Edges: link tables first, then reference columns (the merge rule, see `edges`).
        let mut edges = EdgeWriter::new(&nodes, ctx.output(1)?);
        let no_attributes = Vec::new();
        let mut tables_read = BTreeMap::new();
        for t in &tables {
            tables_read.insert(t.clone(), TableFacts::Other);
        }
        for a in anchors.values() {
            tables_read.insert(a.table.clone(), TableFacts::of_anchor(a));
        }
        for (link, table) in &link_tables {
            let read = LinkTable {
                doc: &self.data_doc,
                table,
                link,
                attributes: model
                    .link_attributes
                    .get(&link.sentence)
                    .unwrap_or(&no_attributes),
            }
            .add_edges(client, &anchors, &mut displays, &mut edges, out)
            .await?;
            tables_read.insert(table.clone(), TableFacts::of_link(read));
        }
        for link in &model.links {
            edges::from_reference_columns(link, &anchors, &mut edges, out).await?;
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
        Ok(GraphFacts {
            v: 0,
            model,
            tables: tables_read,
            edges_unique: edges.unique,
        }
        .into_json())
    }

    async fn read_changes(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        changes: &Changes,
        facts: &J,
        out: &mut dyn SnapshotSink,
    ) -> Result<Option<J>, StepError> {
        let Some(facts) = GraphFacts::parse(facts) else {
            return Ok(None);
        };
        changes::read_changes(self, client, ctx, changes, facts, out).await
    }
}
