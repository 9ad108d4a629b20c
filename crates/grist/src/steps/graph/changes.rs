//! A run of the graph extract that reads only the rows the Data doc's changes name
//! (`/compare`, then `/records?filter`), instead of the whole doc.
//!
//! It gives the same tables as a complete read when a row's output is its own: then the nodes
//! and edges of the rows that did not change are what they were, and those of the changed rows
//! can be computed from the rows alone. It takes that path only when it can tell:
//!
//! * the data model did not change (it shapes every node), nor any table's schema (no table or
//!   column added, renamed or removed, no metadata table in the delta), and no table's delta is
//!   incomplete (`mayBeIncomplete`);
//! * an anchor table's rows were only updated, not its `<noun>_id` column, no two of its rows
//!   share a node id, its attributes hold no reference (whose display values another table
//!   gives): then its node ids, and so every edge's endpoints, stay as they were; the edges of
//!   its reference columns that changed are computed before and after (`changed_references`);
//! * a link table's columns read are plain (exact in CSV, endpoints as Text), no edge key came
//!   from two sources at the last read, and no new key is one the table holds from an
//!   unchanged row: then each edge has one row to come from, and a row's old edges (from the
//!   old cells the delta gives) are what it no longer produces;
//! * each table's changed rows are few enough (see [`few_enough`]).
//!
//! Anything else reads the doc in full, which is always correct. Changes to tables the graph
//! does not read are ignored. Deletes come only from rows the delta says were removed or
//! changed, and pass the mass-delete guard like any other.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use serde_json::{Map, Value as J};

use super::anchors::{node_id_of, typed_attributes, AnchorTable, Displays};
use super::changed_references::{self, ReferenceEdge};
use super::edges::{endpoint_of, label_of, Edge, EdgeWriter, LinkRow, LinkTable, NodeIds};
use super::facts::{GraphFacts, TableFacts};
use super::model::Link;
use super::{attribute_columns, GraphExtract};
use crate::changes::TableDelta;
use crate::steps::feed::{Changes, DocChange};
use crate::{Column, ColumnType, GristClient};
use etl_core::step::SnapshotSink;
use etl_core::{Row, StepContext, StepError};

/// Changed rows of a table below which they are read by id; above it, a fraction of the table.
const FEW_ROWS: u64 = 2_000;

/// Whether `changed` rows of a table of `rows` are read by id rather than with the whole doc:
/// up to [`FEW_ROWS`], or a quarter of the table. Filtered `/records` costs about 2.5 times the
/// bytes of CSV per row, plus a request per 400 ids.
pub fn few_enough(changed: usize, rows: u64) -> bool {
    changed as u64 <= FEW_ROWS.max(rows / 4)
}

/// An anchor table's changed rows.
struct AnchorChange<'f> {
    table: &'f str,
    noun: &'f str,
    columns: &'f [Column],
    delta: &'f TableDelta,
}

/// A link table's changed rows.
struct LinkChange<'f> {
    table: &'f str,
    link: &'f Link,
    columns: &'f [Column],
    delta: &'f TableDelta,
}

/// What the changes touch, or why only a complete read will do.
struct Plan<'f> {
    anchors: Vec<AnchorChange<'f>>,
    links: Vec<LinkChange<'f>>,
}

fn plan<'f>(
    facts: &'f GraphFacts,
    delta: &'f crate::changes::DocChanges,
) -> Result<Plan<'f>, String> {
    if !delta.table_renames.is_empty() {
        return Err("tables were added, renamed or removed".into());
    }
    let model = &facts.model;
    let mut p = Plan {
        anchors: Vec::new(),
        links: Vec::new(),
    };
    for (table, d) in &delta.table_deltas {
        if table.starts_with("_grist_") {
            return Err(format!("the doc's schema changed ({table})"));
        }
        if !d.column_renames.is_empty() {
            return Err(format!(
                "columns of `{table}` were added, renamed or removed"
            ));
        }
        if d.may_be_incomplete {
            return Err(format!("the changes of `{table}` are too many to detail"));
        }
        match facts.tables.get(table) {
            None => return Err(format!("table `{table}` was not there at the last read")),
            Some(TableFacts::Other) => {}
            Some(TableFacts::Anchor {
                columns,
                unique_ids,
                rows,
            }) => {
                let noun = model
                    .anchor_of_table(table)
                    .ok_or_else(|| format!("`{table}` is no longer an anchor table"))?;
                if !d.add_rows.is_empty() || !d.remove_rows.is_empty() {
                    return Err(format!(
                        "rows of anchor table `{table}` were added or removed"
                    ));
                }
                if !unique_ids {
                    return Err(format!("rows of `{table}` share node ids"));
                }
                if d.column_deltas.contains_key(&format!("{noun}_id")) {
                    return Err(format!("node ids of `{table}` changed"));
                }
                let references = attribute_columns(model, noun, columns).iter().any(|c| {
                    matches!(c.column_type(), ColumnType::Ref(_) | ColumnType::RefList(_))
                });
                if references {
                    return Err(format!("attributes of `{table}` hold references"));
                }
                if !facts.edges_unique
                    && !changed_references::reference_links(model, noun).is_empty()
                {
                    return Err("edge keys came from several sources at the last read".into());
                }
                if !few_enough(d.update_rows.len(), *rows) {
                    return Err(format!("many rows of `{table}` changed"));
                }
                p.anchors.push(AnchorChange {
                    table,
                    noun,
                    columns,
                    delta: d,
                });
            }
            Some(TableFacts::Link {
                columns,
                plain,
                rows,
            }) => {
                let link = model
                    .link_of_table(table)
                    .ok_or_else(|| format!("`{table}` is no longer a link table"))?;
                if !plain {
                    return Err(format!("`{table}` has columns that are not plain"));
                }
                if !facts.edges_unique {
                    return Err("edge keys came from several rows at the last read".into());
                }
                let changed = d.update_rows.len() + d.add_rows.len() + d.remove_rows.len();
                if !few_enough(changed, *rows) {
                    return Err(format!("many rows of `{table}` changed"));
                }
                p.links.push(LinkChange {
                    table,
                    link,
                    columns,
                    delta: d,
                });
            }
        }
    }
    Ok(p)
}

/// Collects what an [`EdgeWriter`] writes.
#[derive(Default)]
struct Collect(Vec<Row>);

#[async_trait]
impl SnapshotSink for Collect {
    async fn write(&mut self, _table: &str, rows: Vec<Row>) -> Result<(), StepError> {
        self.0.extend(rows);
        Ok(())
    }
    fn changes_only(&mut self, _table: &str) -> Result<(), StepError> {
        Ok(())
    }
    async fn delete(&mut self, _table: &str, _keys: Vec<Row>) -> Result<(), StepError> {
        Err(StepError::fatal("collected edges are not deleted (a bug)"))
    }
    async fn stored_keys(&mut self, _table: &str, keys: &[Row]) -> Result<Vec<bool>, StepError> {
        Ok(vec![false; keys.len()])
    }
}

/// Adds reference edges as a complete read adds them (no attributes).
async fn add_references(
    edges: &[ReferenceEdge<'_>],
    writer: &mut EdgeWriter<'_>,
    out: &mut Collect,
) -> Result<(), StepError> {
    let empty = J::Object(Map::new());
    for e in edges {
        writer
            .add(
                out,
                Edge {
                    from: &e.from,
                    to: &e.to,
                    from_type: &e.link.anchor1,
                    to_type: &e.link.anchor2,
                    label: &e.link.sentence,
                    attributes: &empty,
                    directed: e.link.directed,
                },
            )
            .await?;
    }
    Ok(())
}

/// An edge row's key columns.
fn edge_key(r: &Row) -> (String, String, String, String, String) {
    let t = |c: &str| r.text(c).unwrap_or_default().to_string();
    (
        t("from_node_id"),
        t("to_node_id"),
        t("from_node_type"),
        t("to_node_type"),
        t("edge_label"),
    )
}

/// The rows a link change had before it (endpoints and label from the delta's old cells, the
/// current row where a cell did not change), or `None` when the delta does not tell.
fn old_link_rows(
    c: &LinkChange<'_>,
    cols: &super::edges::ReadColumns<'_>,
    now: &HashMap<i64, crate::Record>,
) -> Option<Vec<LinkRow>> {
    let d = c.delta;
    let no_anchors = HashMap::new();
    let mut ids: Vec<i64> = d
        .remove_rows
        .iter()
        .chain(&d.update_rows)
        .copied()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let current = now.get(&id);
        let old = |col: &Column| -> Option<J> {
            if d.changed(&col.id, id) {
                Some(d.old_value(&col.id, id).cloned().unwrap_or(J::Null))
            } else {
                // Unchanged: the cell as it is now (a removed row lists every cell).
                current.map(|r| r.fields.get(&col.id).cloned().unwrap_or(J::Null))
            }
        };
        let (from, to) = (old(cols.from)?, old(cols.to)?);
        let label = match cols.label {
            Some(l) => label_of(Some(&old(l)?)),
            None => None,
        };
        rows.push(LinkRow {
            from: endpoint_of(&from, cols.from, &no_anchors),
            to: endpoint_of(&to, cols.to, &no_anchors),
            label,
            attributes: Map::new(),
        });
    }
    Some(rows)
}

/// Reads the changed rows and writes what they give, or `None` (having written nothing) when
/// only a complete read will do.
pub async fn read_changes(
    ex: &GraphExtract,
    client: &GristClient,
    ctx: &StepContext,
    changes: &Changes,
    mut facts: GraphFacts,
    out: &mut dyn SnapshotSink,
) -> Result<Option<J>, StepError> {
    let give_up = |why: String| {
        tracing::info!(reason = %why, "reading the Data doc in full");
        Ok(None)
    };
    if !changes.unchanged(&ex.data_model_doc) {
        return give_up("the data model changed".into());
    }
    let (nodes_table, edges_table) = (ctx.output(0)?, ctx.output(1)?);
    let delta = match changes.of(&ex.data_doc) {
        Some(DocChange::Changed(d)) => d,
        Some(DocChange::Unchanged) => {
            out.changes_only(nodes_table)?;
            out.changes_only(edges_table)?;
            return Ok(Some(facts.into_json()));
        }
        _ => return give_up("the Data doc's changes are not known".into()),
    };
    let p = match plan(&facts, delta) {
        Ok(p) => p,
        Err(why) => return give_up(why),
    };

    // Nodes: each updated row, typed as a complete read types it.
    let mut node_rows = Vec::new();
    let mut read = 0u64;
    let mut references_before = Vec::new();
    let mut references_now = Vec::new();
    for a in &p.anchors {
        let updated = &a.delta.update_rows;
        let records = client.records_by_id(&ex.data_doc, a.table, updated).await?;
        if records.len() != updated.len() {
            return give_up(format!("rows of `{}` went while they were read", a.table));
        }
        read += records.len() as u64;
        let wanted = attribute_columns(&facts.model, a.noun, a.columns);
        let id_column = format!("{}_id", a.noun);
        for r in &records {
            node_rows.push(
                Row::new()
                    .with("node_id", node_id_of(r, a.noun, &id_column))
                    .with("node_type", a.noun)
                    .with(
                        "attributes",
                        J::Object(typed_attributes(r, &wanted, &Displays::default())),
                    ),
            );
        }
        let (before, now) = changed_references::reference_edges(
            client,
            &ex.data_doc,
            &facts.model,
            a.noun,
            a.columns,
            a.delta,
            &records,
        )
        .await?;
        references_before.extend(before);
        references_now.extend(now);
    }

    // Edges: the changed rows' edges now, and before.
    let mut new_rows: Vec<(usize, Vec<LinkRow>)> = Vec::new();
    let mut old_rows: Vec<(usize, Vec<LinkRow>)> = Vec::new();
    let no_attributes = Vec::new();
    let tables: Vec<LinkTable<'_>> = p
        .links
        .iter()
        .map(|c| LinkTable {
            doc: &ex.data_doc,
            table: c.table,
            link: c.link,
            attributes: facts
                .model
                .link_attributes
                .get(&c.link.sentence)
                .unwrap_or(&no_attributes),
        })
        .collect();
    let no_anchors: HashMap<String, AnchorTable> = HashMap::new();
    for (i, c) in p.links.iter().enumerate() {
        let cols = tables[i].columns_read(c.columns)?;
        let mut wanted: Vec<i64> = c
            .delta
            .add_rows
            .iter()
            .chain(&c.delta.update_rows)
            .copied()
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let records = client.records_by_id(&ex.data_doc, c.table, &wanted).await?;
        read += records.len() as u64;
        let now: HashMap<i64, crate::Record> = records.into_iter().map(|r| (r.id, r)).collect();
        let Some(old) = old_link_rows(c, &cols, &now) else {
            return give_up(format!(
                "the changes of `{}` do not give the old cells",
                c.table
            ));
        };
        let mut fresh: Vec<&crate::Record> = now.values().collect();
        fresh.sort_by_key(|r| r.id);
        let displays = Displays::default();
        new_rows.push((
            i,
            fresh
                .iter()
                .map(|r| cols.row(r, &no_anchors, &displays))
                .collect(),
        ));
        old_rows.push((i, old));
    }

    // The endpoints' nodes, as stored: node ids did not change.
    let mut endpoints: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, rows) in new_rows.iter().chain(&old_rows) {
        let link = p.links[*i].link;
        for r in rows {
            for id in [&r.from, &r.to] {
                for t in [&link.anchor1, &link.anchor2] {
                    endpoints.insert((id.clone(), t.clone()));
                }
            }
        }
    }
    for e in references_before.iter().chain(&references_now) {
        endpoints.insert((e.from.clone(), e.link.anchor1.clone()));
        endpoints.insert((e.to.clone(), e.link.anchor2.clone()));
    }
    let endpoints: Vec<(String, String)> = endpoints.into_iter().collect();
    let keys: Vec<Row> = endpoints
        .iter()
        .map(|(id, t)| {
            Row::new()
                .with("node_id", id.as_str())
                .with("node_type", t.as_str())
        })
        .collect();
    let stored = out.stored_keys(nodes_table, &keys).await?;
    let mut nodes = NodeIds::new();
    for ((id, t), present) in endpoints.iter().zip(stored) {
        if present {
            nodes.entry(t.clone()).or_default().insert(id.clone());
        }
    }

    let mut edges_now = Collect::default();
    let mut writer = EdgeWriter::new(&nodes, edges_table);
    for (i, rows) in new_rows {
        tables[i]
            .add_rows(rows, &mut writer, &mut edges_now)
            .await?;
    }
    add_references(&references_now, &mut writer, &mut edges_now).await?;
    writer.flush(&mut edges_now).await?;
    if !writer.unique {
        return give_up("changed rows give one edge twice".into());
    }
    let mut edges_before = Collect::default();
    let mut old_writer = EdgeWriter::new(&nodes, edges_table);
    for (i, rows) in old_rows {
        tables[i]
            .add_rows(rows, &mut old_writer, &mut edges_before)
            .await?;
    }
    add_references(&references_before, &mut old_writer, &mut edges_before).await?;
    old_writer.flush(&mut edges_before).await?;
    let before: HashSet<_> = edges_before.0.iter().map(edge_key).collect();
    let now: HashSet<_> = edges_now.0.iter().map(edge_key).collect();
    // A new key the table already holds comes from an unchanged row too.
    let added: Vec<Row> = edges_now
        .0
        .iter()
        .filter(|r| !before.contains(&edge_key(r)))
        .cloned()
        .collect();
    if out
        .stored_keys(edges_table, &added)
        .await?
        .into_iter()
        .any(|s| s)
    {
        return give_up("a changed row gives an edge another row gives".into());
    }

    // Nothing was written until here.
    out.changes_only(nodes_table)?;
    out.changes_only(edges_table)?;
    out.write(nodes_table, node_rows).await?;
    let gone: Vec<Row> = edges_before
        .0
        .into_iter()
        .filter(|r| !now.contains(&edge_key(r)))
        .collect();
    out.write(edges_table, edges_now.0).await?;
    out.delete(edges_table, gone).await?;
    ctx.counters.add("rows_read_by_id", read);
    let counts: Vec<(String, u64, u64)> = p
        .links
        .iter()
        .map(|c| {
            let d = c.delta;
            (
                c.table.to_string(),
                d.add_rows.len() as u64,
                d.remove_rows.len() as u64,
            )
        })
        .collect();
    drop(tables);
    drop(p);
    for (table, added, removed) in counts {
        if let Some(TableFacts::Link { rows, .. }) = facts.tables.get_mut(&table) {
            *rows = (*rows + added).saturating_sub(removed);
        }
    }
    Ok(Some(facts.into_json()))
}
