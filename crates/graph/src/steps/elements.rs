//! What a graph sink writes: nodes or edges. The one place where the two differ: their key,
//! the column naming their label (edge type), and the Cypher that writes and removes them.

use std::collections::BTreeMap;

use serde_json::Value as J;

use etl_core::{Key, Row, StepError, Value};

use super::connection::graph_error;
use crate::client::Statement;
use crate::cypher::{self, check_name};
use crate::{bolt, GraphClient};

/// Which of the graph's elements a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elements {
    /// Nodes, by label (the `node_type` of their keys).
    Nodes,
    /// Edges, by type (the `edge_label` of their keys).
    Edges,
}

use etl_core::step::roles::{EDGE_KEY, NODE_KEY};

/// The statements of one batch, grouped by the names Cypher cannot take as parameters.
#[derive(Default)]
pub struct Writes {
    upserts: BTreeMap<Vec<String>, Vec<neo4rs::BoltType>>,
    deletes: BTreeMap<Vec<String>, Vec<neo4rs::BoltType>>,
}

impl Elements {
    pub fn key(self) -> &'static [&'static str] {
        match self {
            Elements::Nodes => NODE_KEY,
            Elements::Edges => EDGE_KEY,
        }
    }

    pub fn name_column(self) -> &'static str {
        match self {
            Elements::Nodes => "node_type",
            Elements::Edges => "edge_label",
        }
    }

    /// What the sink holds, as the mass-delete guard and messages name it.
    pub fn target(self) -> &'static str {
        match self {
            Elements::Nodes => "the graph's nodes",
            Elements::Edges => "the graph's edges",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Elements::Nodes => "the nodes to hold in the graph",
            Elements::Edges => "the edges to hold in the graph",
        }
    }

    /// The graph's count of one label (edge type).
    pub async fn count(self, graph: &GraphClient, name: &str) -> Result<i64, StepError> {
        match self {
            Elements::Nodes => graph.count_nodes_with_label(name).await,
            Elements::Edges => graph.count_edges_of_type(name).await,
        }
        .map_err(graph_error)
    }

    /// The graph's counts per label (edge type).
    pub async fn counts(self, graph: &GraphClient) -> Result<BTreeMap<String, i64>, StepError> {
        match self {
            Elements::Nodes => graph.node_counts().await,
            Elements::Edges => graph.edge_counts().await,
        }
        .map_err(graph_error)
    }

    /// Which of `keys` the graph does not hold, as `label:id` (`from-[type]->to`), looked up
    /// by id: one statement per label (edge type and end labels). Keys whose names Cypher
    /// cannot take were never written and are left out.
    pub async fn missing(
        self,
        graph: &GraphClient,
        keys: &[Key],
    ) -> Result<Vec<String>, StepError> {
        let mut groups: BTreeMap<Vec<String>, Vec<&Key>> = BTreeMap::new();
        for key in keys {
            if let Ok(names) = self.names(key) {
                groups.entry(names).or_default().push(key);
            }
        }
        let mut missing = Vec::new();
        for (g, keys) in groups {
            match self {
                Elements::Nodes => {
                    let ids: Vec<String> = keys.iter().map(|k| k.parts()[0].clone()).collect();
                    let found = graph.existing_ids(&g[0], &ids).await.map_err(graph_error)?;
                    missing.extend(
                        ids.iter()
                            .filter(|i| !found.contains(*i))
                            .map(|i| format!("{}:{i}", g[0])),
                    );
                }
                Elements::Edges => {
                    let rows = keys
                        .iter()
                        .map(|k| {
                            let p = k.parts();
                            bolt::map(vec![
                                ("from", bolt::string(&p[0])),
                                ("to", bolt::string(&p[1])),
                            ])
                        })
                        .collect();
                    let text = cypher::existing_edges(&g[0], &g[1], &g[2]);
                    let found: std::collections::HashSet<(String, String)> = graph
                        .rows_with(&text, vec![("rows", bolt::list(rows))], &["from", "to"])
                        .await
                        .map_err(graph_error)?
                        .into_iter()
                        .filter_map(|r| match (&r[0], &r[1]) {
                            (J::String(f), J::String(t)) => Some((f.clone(), t.clone())),
                            _ => None,
                        })
                        .collect();
                    missing.extend(keys.iter().filter_map(|k| {
                        let p = k.parts();
                        (!found.contains(&(p[0].clone(), p[1].clone())))
                            .then(|| format!("{}-[{}]->{}", p[0], g[1], p[1]))
                    }));
                }
            }
        }
        Ok(missing)
    }

    /// The names of a key Cypher needs in the statement's text (labels, edge type), checked.
    fn names(self, key: &Key) -> Result<Vec<String>, StepError> {
        let p = key.parts();
        let names: Vec<(&String, &str)> = match self {
            Elements::Nodes => vec![(&p[1], "label")],
            Elements::Edges => vec![
                (&p[2], "label"),
                (&p[4], "relationship type"),
                (&p[3], "label"),
            ],
        };
        for (n, what) in &names {
            check_name(n, what).map_err(|e| StepError::data(e.to_string()))?;
        }
        Ok(names.into_iter().map(|(n, _)| n.clone()).collect())
    }

    /// Adds a key's element to `writes`: its row written, or (`None`) the element removed.
    pub fn add(self, writes: &mut Writes, key: &Key, row: Option<&Row>) -> Result<(), StepError> {
        let group = self.names(key)?;
        let p = key.parts();
        let ends = match self {
            Elements::Nodes => vec![("id", bolt::string(&p[0]))],
            Elements::Edges => vec![("from", bolt::string(&p[0])), ("to", bolt::string(&p[1]))],
        };
        match row {
            Some(row) => {
                let props = match self {
                    Elements::Nodes => node_props(row, &p[0]),
                    Elements::Edges => match row.get("attributes") {
                        Some(Value::Json(j @ J::Object(_))) => j.clone(),
                        _ => J::Object(serde_json::Map::new()),
                    },
                };
                let mut item = ends;
                item.push(("props", bolt::from_json(&props)));
                writes
                    .upserts
                    .entry(group)
                    .or_default()
                    .push(bolt::map(item));
            }
            None => {
                let item = match self {
                    Elements::Nodes => bolt::string(&p[0]),
                    Elements::Edges => bolt::map(ends),
                };
                writes.deletes.entry(group).or_default().push(item);
            }
        }
        Ok(())
    }

    /// The statements of a batch, with how many elements they write and remove.
    pub fn statements(self, writes: Writes) -> (Vec<Statement>, u64, u64) {
        let (mut written, mut deleted) = (0u64, 0u64);
        let mut out: Vec<Statement> = Vec::new();
        for (g, items) in writes.upserts {
            written += items.len() as u64;
            let text = match self {
                Elements::Nodes => cypher::upsert_nodes(&g[0]),
                Elements::Edges => cypher::upsert_edges(&g[0], &g[1], &g[2]),
            };
            out.push((text, vec![("rows", bolt::list(items))]));
        }
        for (g, items) in writes.deletes {
            deleted += items.len() as u64;
            let (text, param) = match self {
                Elements::Nodes => (cypher::delete_nodes(&g[0]), "ids"),
                Elements::Edges => (cypher::delete_edges(&g[0], &g[1], &g[2]), "rows"),
            };
            out.push((text, vec![(param, bolt::list(items))]));
        }
        (out, written, deleted)
    }
}

fn node_props(row: &Row, id: &str) -> J {
    let mut props = serde_json::Map::new();
    if let Some(Value::Json(J::Object(attributes))) = row.get("attributes") {
        for (k, v) in attributes {
            props.insert(k.clone(), v.clone());
        }
    }
    props.insert("id".into(), J::String(id.to_string()));
    J::Object(props)
}
