//! `uses = "kg.graph_anchor_indexes"` / `"kg.graph_link_indexes"`: per anchor of the data model,
//! a uniqueness constraint and a label-property index on `id` (and a text index when
//! `text_indexes` is on); per link, an edge-type index. Each made index is recorded as a row of
//! the step's output (`memgraph_anchor_indexes`, `memgraph_link_indexes`); an anchor or link
//! removed from the data model gets its indexes dropped and its row deleted. Index statements
//! run in auto-commit; one the server refuses is an error, never recorded as made.

use async_trait::async_trait;

use etl_core::config::Settings;
use etl_core::step::roles::ROWS;
use etl_core::step::{InputRole, OutputRole};
use etl_core::{BatchOutput, InputBatch, Row, StepContext, StepError, Transform};

use super::connection::{graph_error, GraphConnection};
use crate::cypher::{self, check_name};
use crate::Dialect;

pub struct IndexStep {
    connection: GraphConnection,
    /// Anchors (true) or links (false).
    anchors: bool,
    text_indexes: bool,
}

impl IndexStep {
    pub fn from_settings(anchors: bool, settings: &mut Settings) -> IndexStep {
        let connection = GraphConnection::from_settings(settings);
        let text_indexes = settings.bool_or("text_indexes", false);
        IndexStep {
            connection,
            anchors,
            text_indexes,
        }
    }

    fn key(&self) -> &'static str {
        if self.anchors {
            "anchor"
        } else {
            "link"
        }
    }

    fn create(&self, d: Dialect, name: &str) -> Vec<String> {
        if self.anchors {
            let mut s = d.create_anchor_indexes(name);
            if self.text_indexes {
                s.extend(d.create_text_index(name));
            }
            s
        } else {
            d.create_link_indexes(name)
        }
    }

    fn drop(&self, d: Dialect, name: &str) -> Vec<String> {
        if self.anchors {
            let mut s = d.drop_anchor_indexes(name);
            if self.text_indexes {
                s.extend(d.drop_text_index(name));
            }
            s
        } else {
            d.drop_link_indexes(name)
        }
    }
}

#[async_trait]
impl Transform for IndexStep {
    fn key_columns(&self) -> Vec<String> {
        vec![self.key().to_string()]
    }

    fn inputs(&self) -> Vec<InputRole> {
        vec![if self.anchors {
            InputRole {
                name: ROWS,
                key: &["noun"],
                columns: &[],
                about: "the data model's anchors",
            }
        } else {
            InputRole {
                name: ROWS,
                key: &["sentence"],
                columns: &[],
                about: "the data model's links",
            }
        }]
    }

    fn outputs(&self) -> Vec<OutputRole> {
        vec![if self.anchors {
            OutputRole {
                name: "indexes",
                key: &["anchor"],
                columns: &[],
            }
        } else {
            OutputRole {
                name: "indexes",
                key: &["link"],
                columns: &[],
            }
        }]
    }

    async fn check(&self) -> Result<(), StepError> {
        self.connection.client().await.map(|_| ())
    }

    /// A graph without any node, where this step made indexes before, was emptied (a restart):
    /// make them again.
    async fn drifted(&self, ctx: &StepContext) -> Result<bool, StepError> {
        let graph = self.connection.client().await?;
        if graph.has_nodes().await.map_err(graph_error)? {
            return Ok(false);
        }
        Ok(ctx.reads()?.succeeded_keys().await? > 0)
    }

    async fn process(
        &self,
        ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BatchOutput, StepError> {
        let graph = self.connection.client().await?;
        let present = batch.role_rows_by_key(ROWS);
        let what = if self.anchors {
            "label"
        } else {
            "relationship type"
        };
        let mut out = BatchOutput::default();
        for key in &batch.keys {
            let name = &key.parts()[0];
            if let Err(e) = check_name(name, what) {
                out.failed
                    .push((key.clone(), StepError::data(e.to_string())));
                continue;
            }
            let statements = if present.contains_key(key) {
                self.create(graph.dialect, name)
            } else if batch.vanished(key) {
                self.drop(graph.dialect, name)
            } else {
                Vec::new()
            };
            for s in statements {
                graph.ddl(&s).await.map_err(graph_error)?;
            }
            if batch.vanished(key) && self.anchors && graph.dialect == Dialect::Neo4j {
                // Whatever the server named them: drop every index left on label(id).
                for index in graph
                    .index_names_on(name, "id")
                    .await
                    .map_err(graph_error)?
                {
                    graph
                        .ddl(&format!("DROP INDEX {}", cypher::quote(&index)))
                        .await
                        .map_err(graph_error)?;
                }
            }
            if present.contains_key(key) {
                out.push(
                    ctx.output(0)?,
                    key,
                    Row::new().with(self.key(), name.as_str()),
                );
            }
        }
        Ok(out)
    }
}
