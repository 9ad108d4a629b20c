//! `uses = "kg.graph_nodes"` / `"kg.graph_edges"`: one sink for both, keeping the graph's nodes
//! (edges) equal to the table bound to its `rows` role. Per batch, one transaction: `MERGE` +
//! `SET` per label (edge type) for the keys with a row, `DETACH DELETE` (`DELETE`) for the keys
//! the engine found gone, and nothing for the others; committed before the engine records the
//! batch.
//!
//! Drift: before a run the sink compares the graph with what it wrote (the counts it remembered,
//! see [`super::seen`], or in full: counts per name and a sample of node keys); a graph emptied
//! by a restart (Memgraph in `IN_MEMORY_ANALYTICAL` mode) is reloaded without a manual reset.
//! `etl verify` makes the same comparison with the table.

use async_trait::async_trait;

use etl_core::config::Settings;
use etl_core::step::roles::ROWS;
use etl_core::step::{InputRole, StepReads};
use etl_core::store::Expected;
use etl_core::{BatchOutput, InputBatch, StepContext, StepError, Transform};

use super::connection::{graph_error, GraphConnection};
use super::drift::{rand_unit, Drift};
use super::elements::{Elements, Writes};
use super::seen::{self, DriftPolicy};

/// How many node keys the full comparison looks up in the graph, besides the counts.
const FULL_CHECK_SAMPLE: i64 = 20;

pub struct GraphSink {
    connection: GraphConnection,
    elements: Elements,
    /// The table bound to the `rows` role (`nodes`, `edges`), which drift is measured against.
    rows_table: String,
    drift_policy: DriftPolicy,
}

impl GraphSink {
    pub fn from_settings(elements: Elements, rows_table: String, settings: &mut Settings) -> Self {
        GraphSink {
            connection: GraphConnection::from_settings(settings),
            elements,
            rows_table,
            drift_policy: DriftPolicy::from_settings(settings),
        }
    }

    /// How the graph differs from what the sink should hold there.
    pub async fn drift(&self, reads: &StepReads, expected: Expected) -> Result<Drift, StepError> {
        let graph = self.connection.client().await?;
        let ranges = reads
            .expected_by_name(&self.rows_table, self.elements.name_column(), expected)
            .await?;
        let in_graph = self.elements.counts(graph).await?;
        let mut drift = Drift::of_counts(&ranges, &in_graph);
        if self.elements == Elements::Edges {
            return Ok(drift);
        }
        // A window of node keys at a random place: cheap on any size.
        let total: i64 = ranges.values().map(|b| b.0).sum();
        let offset = ((total - FULL_CHECK_SAMPLE).max(0) as f64 * rand_unit()) as i64;
        let sample = reads
            .sample_keys(&self.rows_table, expected, offset, FULL_CHECK_SAMPLE)
            .await?;
        drift.missing = self.elements.missing(graph, &sample).await?;
        Ok(drift)
    }
}

#[async_trait]
impl Transform for GraphSink {
    fn key_columns(&self) -> Vec<String> {
        self.elements.key().iter().map(|c| c.to_string()).collect()
    }

    fn inputs(&self) -> Vec<InputRole> {
        vec![InputRole {
            name: ROWS,
            key: self.elements.key(),
            columns: &["attributes"],
            about: self.elements.about(),
        }]
    }

    fn outside_target(&self) -> String {
        self.elements.target().to_string()
    }

    async fn check(&self) -> Result<(), StepError> {
        self.connection.client().await.map(|_| ())
    }

    async fn drifted(&self, ctx: &StepContext) -> Result<bool, StepError> {
        if let Some(drifted) = seen::drifted(
            &self.connection,
            ctx,
            self.elements,
            &self.rows_table,
            self.drift_policy,
        )
        .await?
        {
            return Ok(drifted);
        }
        let drift = self.drift(ctx.reads()?, Expected::Written).await?;
        if !drift.is_empty() {
            tracing::warn!(
                names = drift.counts.len(),
                missing_sampled = drift.missing.len(),
                "{} differ from what the sink wrote",
                self.elements.target()
            );
        }
        Ok(!drift.is_empty())
    }

    async fn finished(&self, ctx: &StepContext, keys_processed: u64) -> Result<(), StepError> {
        seen::after_run(&self.connection, ctx, self.elements, keys_processed).await
    }

    async fn process(
        &self,
        ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BatchOutput, StepError> {
        let graph = self.connection.client().await?;
        let rows = batch.role_rows_by_key(ROWS);
        let mut out = BatchOutput::default();
        let mut writes = Writes::default();
        for key in &batch.keys {
            let row = rows.get(key).and_then(|r| r.first()).copied();
            // Only a key the engine found gone is removed: no rows read is not enough.
            if row.is_none() && !batch.vanished(key) {
                continue;
            }
            if let Err(e) = self.elements.add(&mut writes, key, row) {
                out.failed.push((key.clone(), e));
            }
        }
        let (statements, written, deleted) = self.elements.statements(writes);
        let what = match self.elements {
            Elements::Nodes => "writing nodes",
            Elements::Edges => "writing edges",
        };
        graph.write(what, &statements).await.map_err(graph_error)?;
        let (w, d) = match self.elements {
            Elements::Nodes => ("graph_nodes_written", "graph_nodes_deleted"),
            Elements::Edges => ("graph_edges_written", "graph_edges_deleted"),
        };
        ctx.counters.add(w, written);
        ctx.counters.add(d, deleted);
        Ok(out)
    }
}
