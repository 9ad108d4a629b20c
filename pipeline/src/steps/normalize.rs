//! `uses = "kg.normalize_nodes"` and `"kg.normalize_edges"`: the extracted nodes or edges (role
//! `rows`: `grist_nodes`/`grist_edges`) into the step's output (`nodes`/`edges`), key by key,
//! so that downstream steps see changes per node and per edge.
//!
//! Normalizing: attributes are always a JSON object, without null or empty-string values.

use async_trait::async_trait;
use serde_json::Value as J;

use etl_core::step::{InputRole, OutputRole};
use etl_core::{BatchOutput, InputBatch, Row, StepContext, StepError, Transform, Value};

use etl_core::step::roles::{EDGE_KEY, NODE_KEY, ROWS};

fn normalized_attributes(value: Option<&Value>) -> J {
    let mut out = serde_json::Map::new();
    if let Some(Value::Json(J::Object(map))) = value {
        for (k, v) in map {
            let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
            if !empty {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    J::Object(out)
}

/// Copies each key's row from the input bound to `rows` to `output`, normalizing its
/// attributes.
fn copy_rows(batch: &InputBatch, output: &str) -> BatchOutput {
    let by_key = batch.role_rows_by_key(ROWS);
    let mut out = BatchOutput::default();
    for key in &batch.keys {
        let Some(row) = by_key.get(key).and_then(|rows| rows.first()) else {
            continue;
        };
        let mut normalized: Row = row
            .columns()
            .filter(|(c, _)| c.as_str() != "attributes")
            .map(|(c, v)| (c.clone(), v.clone()))
            .collect();
        normalized.set("attributes", normalized_attributes(row.get("attributes")));
        out.push(output, key, normalized);
    }
    out
}

/// `kg.normalize_nodes` or `kg.normalize_edges`: the same copy, keyed by nodes or by edges.
pub struct Normalize {
    /// The key of what is copied (`NODE_KEY` or `EDGE_KEY`).
    pub key: &'static [&'static str],
    /// What is copied, for the roles: "nodes" or "edges".
    pub what: &'static str,
}

impl Normalize {
    pub const NODES: Normalize = Normalize {
        key: NODE_KEY,
        what: "nodes",
    };
    pub const EDGES: Normalize = Normalize {
        key: EDGE_KEY,
        what: "edges",
    };
}

#[async_trait]
impl Transform for Normalize {
    fn key_columns(&self) -> Vec<String> {
        self.key.iter().map(|c| c.to_string()).collect()
    }

    fn inputs(&self) -> Vec<InputRole> {
        vec![InputRole {
            name: ROWS,
            key: self.key,
            columns: &["attributes"],
            about: "the rows as extracted",
        }]
    }

    fn outputs(&self) -> Vec<OutputRole> {
        vec![OutputRole {
            name: self.what,
            key: self.key,
            columns: &["attributes"],
        }]
    }

    async fn process(
        &self,
        ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BatchOutput, StepError> {
        Ok(copy_rows(&batch, ctx.output(0)?))
    }
}
