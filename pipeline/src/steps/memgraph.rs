//! The graph in Memgraph (or a Neo4j-compatible server), kept equal to `nodes`/`edges`:
//!
//! * `uses = "kg.graph_anchor_indexes"`: per anchor of the data model, a uniqueness constraint
//!   and a label-property index on `id` (and a text index when `text_indexes` is on), recorded in
//!   `memgraph_anchor_indexes`; an anchor removed from the data model gets its indexes dropped
//!   and its row deleted. `"kg.graph_link_indexes"`: the same per link (an edge-type index),
//!   recorded in `memgraph_link_indexes`. Index statements run in auto-commit.
//! * `uses = "kg.graph_nodes"`: nodes by key, `MERGE` + `SET n = props` per label in batches,
//!   `DETACH DELETE` for deleted nodes; `"kg.graph_edges"`: the same for edges, `DELETE` for
//!   deleted ones. A batch is one transaction, committed before the engine records the batch.
//! * Drift: before a run, the sinks compare the graph's counts per label (type) with the tables,
//!   and a sample of keys; a graph emptied by a restart (Memgraph in `IN_MEMORY_ANALYTICAL`
//!   mode) is reloaded without a manual reset. `etl verify` reports the same comparison.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value as J;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use etl_core::config::Settings;
use etl_core::retry::RetryPolicy;
use etl_core::{BatchOutput, InputBatch, Row, StepContext, StepError, Transform, Value};
use graph::client::Statement;
use graph::cypher::{self, check_name};
use graph::{bolt, Dialect, GraphClient, GraphConfig, GraphError};

use super::memgraph_seen::{self, Elements};
use super::roles::ROWS;
use etl_core::step::InputRole;

/// The connection every graph step shares the settings of, and the database for drift checks.
pub struct GraphConnection {
    config: GraphConfig,
    /// Whether the dialect is found out from the server (`auto`).
    detect_dialect: bool,
    database_url: Option<String>,
    client: OnceCell<GraphClient>,
    pool: OnceCell<PgPool>,
}

impl GraphConnection {
    pub fn from_settings(settings: &mut Settings, database_url: Option<String>) -> GraphConnection {
        let uri = settings.runtime_string_or("uri", "bolt://127.0.0.1:7687");
        let user = settings.runtime_string_or("user", "");
        let password = settings.secret("password").unwrap_or_default();
        let database = settings.runtime_string_or("database", "memgraph");
        // The dialect shapes index statements only, not the graph: not part of the identity.
        let dialect_name = settings.runtime_string_or("dialect", "auto");
        let dialect = match dialect_name.as_str() {
            "auto" => None,
            name => Some(Dialect::parse(name).unwrap_or_else(|| {
                settings.error(
                    "dialect",
                    format!("unknown dialect `{name}` (known: auto, memgraph, neo4j)"),
                );
                Dialect::Memgraph
            })),
        };
        let connect_timeout =
            Duration::from_secs(settings.runtime_u64_or("connect_timeout_secs", 10).max(1));
        GraphConnection {
            config: GraphConfig {
                uri,
                user,
                password,
                database,
                dialect: dialect.unwrap_or(Dialect::Memgraph),
                connect_timeout,
                retry: RetryPolicy::default(),
            },
            detect_dialect: dialect.is_none(),
            database_url,
            client: OnceCell::new(),
            pool: OnceCell::new(),
        }
    }

    pub async fn client(&self) -> Result<&GraphClient, StepError> {
        self.client
            .get_or_try_init(|| async {
                let mut client = GraphClient::connect(&self.config)
                    .await
                    .map_err(graph_error)?;
                if self.detect_dialect {
                    client.dialect = client.detect_dialect().await.map_err(graph_error)?;
                    tracing::debug!(dialect = client.dialect.name(), "graph dialect detected");
                }
                Ok(client)
            })
            .await
    }

    pub async fn pool(&self) -> Result<&PgPool, StepError> {
        self.pool
            .get_or_try_init(|| {
                super::step_database::connect(self.database_url.as_deref(), "the graph steps")
            })
            .await
    }
}

pub(super) fn graph_error(e: GraphError) -> StepError {
    match e {
        // The client retried it already: retries happen in one layer.
        GraphError::Transient { .. } => StepError::transient(e.to_string())
            .already_retried()
            .with_source(e),
        GraphError::Rejected { .. } => StepError::data(e.to_string()).with_source(e),
        GraphError::Connect { .. } | GraphError::Refused { .. } => {
            StepError::fatal(e.to_string()).with_source(e)
        }
    }
}

pub(super) fn sql_error(e: sqlx::Error) -> StepError {
    StepError::transient(format!("reading the tables to compare with the graph: {e}"))
}

/// Live rows per type in a table, leaving out the keys the sink has failed on (they are not in
/// the graph, and are reported by `etl status`).
async fn table_counts(
    pool: &PgPool,
    step: &str,
    table: &str,
    type_column: &str,
    key: &[&str],
) -> Result<BTreeMap<String, i64>, StepError> {
    use etl_postgres::ident::quote_ident;
    let on = key
        .iter()
        .map(|k| format!("k.{q} = t.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT t.{ty}, count(*) FROM {table} AS t
          WHERE NOT EXISTS (SELECT 1 FROM {keys} AS k WHERE {on} AND k.is_success = false)
          GROUP BY 1",
        ty = quote_ident(type_column),
        table = quote_ident(table),
        keys = etl_postgres::schema::keys_table(step),
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql)
        .fetch_all(pool)
        .await
        .map_err(sql_error)?;
    Ok(rows.into_iter().collect())
}

/// What the graph should hold per type, given what a sink has written (its successfully
/// processed keys), as a range: at most every key it wrote, and at least those whose rows still
/// exist. Changes upstream in the same run stay within it (a node deleted earlier in the run takes
/// its edges along); an emptied or drifted graph does not.
async fn written_bounds(
    pool: &PgPool,
    step: &str,
    table: &str,
    type_column: &str,
    key: &[&str],
) -> Result<BTreeMap<String, (i64, i64)>, StepError> {
    use etl_postgres::ident::quote_ident;
    let on = key
        .iter()
        .map(|k| format!("t.{q} = k.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT k.{ty}, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {table} AS t WHERE {on})), count(*)
           FROM {keys} AS k WHERE k.is_success GROUP BY 1",
        ty = quote_ident(type_column),
        table = quote_ident(table),
        keys = etl_postgres::schema::keys_table(step),
    );
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(&sql)
        .fetch_all(pool)
        .await
        .map_err(sql_error)?;
    Ok(rows
        .into_iter()
        .map(|(ty, lo, hi)| (ty, (lo, hi)))
        .collect())
}

fn exact(counts: BTreeMap<String, i64>) -> BTreeMap<String, (i64, i64)> {
    counts.into_iter().map(|(k, n)| (k, (n, n))).collect()
}

/// What the graph is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// The `nodes`/`edges` tables (`etl verify`).
    Tables,
    /// What the sink has written (before a run, to detect an emptied or drifted graph).
    Written,
}

/// How the graph differs from the tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drift {
    /// (label or type, rows in the table, in the graph) where they differ.
    pub counts: Vec<(String, i64, i64)>,
    /// Sampled node keys missing from the graph.
    pub missing: Vec<String>,
    /// Every label (type) with its rows in the table and in the graph, for reports.
    pub all: Vec<(String, i64, i64)>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.missing.is_empty()
    }
}

/// Every name of either side, with its expected count (the upper bound) and the graph's.
fn side_by_side(
    expected: &BTreeMap<String, (i64, i64)>,
    graph: &BTreeMap<String, i64>,
) -> Vec<(String, i64, i64)> {
    let mut names: Vec<&String> = expected.keys().chain(graph.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                expected.get(n).map_or(0, |b| b.1),
                graph.get(n).copied().unwrap_or(0),
            )
        })
        .collect()
}

/// The names whose graph count is outside the expected range.
fn compare(
    expected: &BTreeMap<String, (i64, i64)>,
    graph: &BTreeMap<String, i64>,
) -> Vec<(String, i64, i64)> {
    side_by_side(expected, graph)
        .into_iter()
        .filter(|(name, _, g)| {
            let (lo, hi) = expected.get(name).copied().unwrap_or((0, 0));
            *g < lo || *g > hi
        })
        .collect()
}

/// `uses = "kg.graph_anchor_indexes"` / `"kg.graph_link_indexes"`.
pub struct IndexStep {
    connection: GraphConnection,
    /// Anchors (true) or links (false).
    anchors: bool,
    text_indexes: bool,
}

impl IndexStep {
    pub fn from_settings(
        anchors: bool,
        settings: &mut Settings,
        database_url: Option<String>,
    ) -> IndexStep {
        let connection = GraphConnection::from_settings(settings, database_url);
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

    async fn check(&self) -> Result<(), StepError> {
        self.connection.client().await.map(|_| ())
    }

    /// A graph without any node while the tables have some was emptied: make the indexes again.
    async fn drifted(&self, _ctx: &StepContext) -> Result<bool, StepError> {
        let graph = self.connection.client().await?;
        let pool = self.connection.pool().await?;
        let rows: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM nodes)")
            .fetch_one(pool)
            .await
            .map_err(sql_error)?;
        Ok(rows && !graph.has_nodes().await.map_err(graph_error)?)
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

/// `uses = "kg.graph_nodes"`.
pub struct NodeSink {
    pub connection: GraphConnection,
    /// The table bound to its `rows` role (`nodes`), which drift checks compare with.
    pub rows_table: String,
}

/// How many keys of the table to look up in the graph, besides the counts.
const SAMPLE: i64 = 20;

/// A number in [0, 1) that changes from run to run (no cryptographic needs here).
fn rand_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

impl NodeSink {
    pub async fn drift(&self, step: &str, against: Against) -> Result<Drift, StepError> {
        let graph = self.connection.client().await?;
        let pool = self.connection.pool().await?;
        let key = ["node_id", "node_type"];
        let table = match against {
            Against::Tables => {
                exact(table_counts(pool, step, &self.rows_table, "node_type", &key).await?)
            }
            Against::Written => {
                written_bounds(pool, step, &self.rows_table, "node_type", &key).await?
            }
        };
        let in_graph = graph.node_counts().await.map_err(graph_error)?;
        let mut drift = Drift {
            counts: compare(&table, &in_graph),
            missing: Vec::new(),
            all: side_by_side(&table, &in_graph),
        };
        // A window of keys at a random place: cheap on any size.
        let total: i64 = table.values().map(|b| b.0).sum();
        let offset = (total - SAMPLE).max(0) as f64 * rand_unit();
        let sample_sql = match against {
            Against::Tables => {
                "SELECT node_id, node_type FROM nodes OFFSET $1 LIMIT $2".to_string()
            }
            // Written keys whose rows still exist must be in the graph.
            Against::Written => format!(
                "SELECT k.node_id, k.node_type FROM {} AS k JOIN nodes AS t USING (node_id, node_type)
                  WHERE k.is_success OFFSET $1 LIMIT $2",
                etl_postgres::schema::keys_table(step)
            ),
        };
        let sample: Vec<(String, String)> = sqlx::query_as(&sample_sql)
            .bind(offset as i64)
            .bind(SAMPLE)
            .fetch_all(pool)
            .await
            .map_err(sql_error)?;
        let mut by_label: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, ty) in sample {
            by_label.entry(ty).or_default().push(id);
        }
        for (label, ids) in by_label {
            if check_name(&label, "label").is_err() {
                continue;
            }
            let found = graph
                .existing_ids(&label, &ids)
                .await
                .map_err(graph_error)?;
            drift.missing.extend(
                ids.into_iter()
                    .filter(|i| !found.contains(i))
                    .map(|i| format!("{label}:{i}")),
            );
        }
        Ok(drift)
    }
}

fn props_of(row: &Row, id: &str) -> J {
    let mut props = serde_json::Map::new();
    if let Some(Value::Json(J::Object(attributes))) = row.get("attributes") {
        for (k, v) in attributes {
            props.insert(k.clone(), v.clone());
        }
    }
    props.insert("id".into(), J::String(id.to_string()));
    J::Object(props)
}

#[async_trait]
impl Transform for NodeSink {
    fn key_columns(&self) -> Vec<String> {
        vec!["node_id".into(), "node_type".into()]
    }

    fn outside_target(&self) -> String {
        "the graph's nodes".to_string()
    }

    fn inputs(&self) -> Vec<InputRole> {
        vec![InputRole {
            name: ROWS,
            key: &["node_id", "node_type"],
            columns: &["attributes"],
            about: "the nodes to hold in the graph",
        }]
    }

    async fn check(&self) -> Result<(), StepError> {
        self.connection.client().await.map(|_| ())
    }

    async fn drifted(&self, ctx: &StepContext) -> Result<bool, StepError> {
        if let Some(drifted) =
            memgraph_seen::drifted(&self.connection, ctx, Elements::Nodes).await?
        {
            return Ok(drifted);
        }
        let drift = self.drift(&ctx.step, Against::Written).await?;
        if !drift.is_empty() {
            tracing::warn!(
                labels = drift.counts.len(),
                missing_sampled = drift.missing.len(),
                "the graph's nodes differ from the nodes table"
            );
        }
        Ok(!drift.is_empty())
    }

    async fn finished(&self, ctx: &StepContext, keys_processed: u64) -> Result<(), StepError> {
        memgraph_seen::after_run(&self.connection, ctx, Elements::Nodes, keys_processed).await
    }

    async fn process(
        &self,
        ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BatchOutput, StepError> {
        let graph = self.connection.client().await?;
        let rows = batch.role_rows_by_key(ROWS);
        let mut out = BatchOutput::default();
        let mut upserts: BTreeMap<String, Vec<neo4rs::BoltType>> = BTreeMap::new();
        let mut deletes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in &batch.keys {
            let (id, label) = (&key.parts()[0], &key.parts()[1]);
            if let Err(e) = check_name(label, "label") {
                out.failed
                    .push((key.clone(), StepError::data(e.to_string())));
                continue;
            }
            match rows.get(key).and_then(|r| r.first()) {
                Some(row) => upserts.entry(label.clone()).or_default().push(bolt::map([
                    ("id", bolt::string(id)),
                    ("props", bolt::from_json(&props_of(row, id))),
                ])),
                // Only a key the engine found gone is removed: no rows read is not enough.
                None if batch.vanished(key) => {
                    deletes.entry(label.clone()).or_default().push(id.clone())
                }
                None => {}
            }
        }
        let mut statements: Vec<Statement> = Vec::new();
        let (mut written, mut deleted) = (0u64, 0u64);
        for (label, items) in upserts {
            written += items.len() as u64;
            statements.push((
                cypher::upsert_nodes(&label),
                vec![("rows", bolt::list(items))],
            ));
        }
        for (label, ids) in deletes {
            deleted += ids.len() as u64;
            statements.push((
                cypher::delete_nodes(&label),
                vec![(
                    "ids",
                    bolt::list(ids.iter().map(|i| bolt::string(i)).collect()),
                )],
            ));
        }
        graph
            .write("writing nodes", &statements)
            .await
            .map_err(graph_error)?;
        ctx.counters.add("graph_nodes_written", written);
        ctx.counters.add("graph_nodes_deleted", deleted);
        Ok(out)
    }
}

/// `uses = "kg.graph_edges"`.
pub struct EdgeSink {
    pub connection: GraphConnection,
    /// The table bound to its `rows` role (`edges`), which drift checks compare with.
    pub rows_table: String,
}

impl EdgeSink {
    pub async fn drift(&self, step: &str, against: Against) -> Result<Drift, StepError> {
        let graph = self.connection.client().await?;
        let pool = self.connection.pool().await?;
        let key = [
            "from_node_id",
            "to_node_id",
            "from_node_type",
            "to_node_type",
            "edge_label",
        ];
        let table = match against {
            Against::Tables => {
                exact(table_counts(pool, step, &self.rows_table, "edge_label", &key).await?)
            }
            Against::Written => {
                written_bounds(pool, step, &self.rows_table, "edge_label", &key).await?
            }
        };
        let in_graph = graph.edge_counts().await.map_err(graph_error)?;
        Ok(Drift {
            counts: compare(&table, &in_graph),
            missing: Vec::new(),
            all: side_by_side(&table, &in_graph),
        })
    }
}

#[async_trait]
impl Transform for EdgeSink {
    fn outside_target(&self) -> String {
        "the graph's edges".to_string()
    }

    fn inputs(&self) -> Vec<InputRole> {
        vec![InputRole {
            name: ROWS,
            key: &[
                "from_node_id",
                "to_node_id",
                "from_node_type",
                "to_node_type",
                "edge_label",
            ],
            columns: &["attributes"],
            about: "the edges to hold in the graph",
        }]
    }

    fn key_columns(&self) -> Vec<String> {
        [
            "from_node_id",
            "to_node_id",
            "from_node_type",
            "to_node_type",
            "edge_label",
        ]
        .map(String::from)
        .to_vec()
    }

    async fn check(&self) -> Result<(), StepError> {
        self.connection.client().await.map(|_| ())
    }

    async fn drifted(&self, ctx: &StepContext) -> Result<bool, StepError> {
        if let Some(drifted) =
            memgraph_seen::drifted(&self.connection, ctx, Elements::Edges).await?
        {
            return Ok(drifted);
        }
        let drift = self.drift(&ctx.step, Against::Written).await?;
        if !drift.is_empty() {
            tracing::warn!(
                types = drift.counts.len(),
                "the graph's edges differ from the edges table"
            );
        }
        Ok(!drift.is_empty())
    }

    async fn finished(&self, ctx: &StepContext, keys_processed: u64) -> Result<(), StepError> {
        memgraph_seen::after_run(&self.connection, ctx, Elements::Edges, keys_processed).await
    }

    async fn process(
        &self,
        ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BatchOutput, StepError> {
        let graph = self.connection.client().await?;
        let rows = batch.role_rows_by_key(ROWS);
        let mut out = BatchOutput::default();
        type Group = (String, String, String);
        let mut upserts: BTreeMap<Group, Vec<neo4rs::BoltType>> = BTreeMap::new();
        let mut deletes: BTreeMap<Group, Vec<neo4rs::BoltType>> = BTreeMap::new();
        for key in &batch.keys {
            let p = key.parts();
            let (from, to, from_label, to_label, edge_type) = (&p[0], &p[1], &p[2], &p[3], &p[4]);
            let names = [
                (from_label, "label"),
                (to_label, "label"),
                (edge_type, "relationship type"),
            ];
            if let Some(e) = names.iter().find_map(|(n, what)| check_name(n, what).err()) {
                out.failed
                    .push((key.clone(), StepError::data(e.to_string())));
                continue;
            }
            let group = (from_label.clone(), edge_type.clone(), to_label.clone());
            match rows.get(key).and_then(|r| r.first()) {
                Some(row) => {
                    let props = match row.get("attributes") {
                        Some(Value::Json(j @ J::Object(_))) => j.clone(),
                        _ => J::Object(serde_json::Map::new()),
                    };
                    upserts.entry(group).or_default().push(bolt::map([
                        ("from", bolt::string(from)),
                        ("to", bolt::string(to)),
                        ("props", bolt::from_json(&props)),
                    ]));
                }
                // Only a key the engine found gone is removed: no rows read is not enough.
                None if batch.vanished(key) => deletes.entry(group).or_default().push(bolt::map([
                    ("from", bolt::string(from)),
                    ("to", bolt::string(to)),
                ])),
                None => {}
            }
        }
        let mut statements: Vec<Statement> = Vec::new();
        let (mut written, mut deleted) = (0u64, 0u64);
        for ((from_label, edge_type, to_label), items) in upserts {
            written += items.len() as u64;
            statements.push((
                cypher::upsert_edges(&from_label, &edge_type, &to_label),
                vec![("rows", bolt::list(items))],
            ));
        }
        for ((from_label, edge_type, to_label), items) in deletes {
            deleted += items.len() as u64;
            statements.push((
                cypher::delete_edges(&from_label, &edge_type, &to_label),
                vec![("rows", bolt::list(items))],
            ));
        }
        graph
            .write("writing edges", &statements)
            .await
            .map_err(graph_error)?;
        ctx.counters.add("graph_edges_written", written);
        ctx.counters.add("graph_edges_deleted", deleted);
        Ok(out)
    }
}
