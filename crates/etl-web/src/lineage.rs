//! Per-key lineage: for a node id, every row the pipeline holds of it (in each table keyed by
//! node id), with when each was created and last changed and by which run, where its extract
//! read it in the source, the edges that touch it, and whether the graph holds it.
//!
//! Which tables to look in comes from the pipeline: a table whose key has `node_id` holds
//! nodes (or their embeddings), one whose key has `from_node_id` and `to_node_id` holds edges.
//! Every name is quoted by the one quoting helper; the node id is a parameter.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::{PgPool, Row as _};

use etl_core::dag::Pipeline;
use etl_core::step::Origin;
use etl_core::{Key, StepImpl};
use etl_postgres::history;
use etl_postgres::ident::quote_ident;
use etl_postgres::schema::meta_table;

use crate::WebError;

/// At most this many edges per table on a page: a hub node has many.
const EDGES_PER_TABLE: i64 = 200;

/// Whether the graph holds a node; the binary wires the graph client in.
#[async_trait]
pub trait GraphProbe: Send + Sync {
    /// `Ok(true)` when a node with this label and id is in the graph.
    async fn holds(&self, label: &str, id: &str) -> Result<bool, String>;
}

/// A table the lineage page looks in, with the step that writes it.
#[derive(Debug, Clone)]
pub struct LineageTable {
    pub table: String,
    pub key: Vec<String>,
    /// The step whose output it is, and the output's place among that step's outputs.
    pub writer: Option<(String, usize)>,
}

/// The tables of a pipeline the lineage page reads.
#[derive(Debug, Clone, Default)]
pub struct LineageTables {
    pub nodes: Vec<LineageTable>,
    pub edges: Vec<LineageTable>,
}

impl LineageTables {
    pub fn of(pipeline: &Pipeline) -> Self {
        let mut out = LineageTables::default();
        for def in pipeline.tables.values() {
            let writer = pipeline.steps.iter().find_map(|s| {
                s.outputs
                    .iter()
                    .position(|o| *o == def.name)
                    .map(|i| (s.name.clone(), i))
            });
            let t = LineageTable {
                table: def.name.clone(),
                key: def.primary_key.clone(),
                writer,
            };
            let has = |c: &str| def.primary_key.iter().any(|k| k == c);
            if has("node_id") {
                out.nodes.push(t);
            } else if has("from_node_id") && has("to_node_id") {
                out.edges.push(t);
            }
        }
        out
    }
}

/// One stored row, as the page shows it.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub key: Vec<String>,
    /// The row's columns, vectors left out; `None` for a row deleted since (a tombstone).
    pub row: Option<Map<String, Value>>,
    pub created: String,
    pub created_by: Option<i64>,
    pub changed: String,
    pub changed_by: Option<i64>,
    pub deleted: Option<String>,
    pub origin: Option<Origin>,
}

/// The rows of one table about the node.
#[derive(Debug, Clone)]
pub struct TableRows {
    pub table: String,
    pub writer: Option<String>,
    pub rows: Vec<StoredRow>,
    /// More rows than the page shows.
    pub truncated: bool,
}

/// Everything the lineage page shows about a node id.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub node_id: String,
    pub nodes: Vec<TableRows>,
    pub edges: Vec<TableRows>,
    /// Per node type found: whether the graph holds the node (or why it cannot say).
    pub in_graph: BTreeMap<String, Result<bool, String>>,
}

impl Lineage {
    pub fn is_empty(&self) -> bool {
        self.nodes.iter().all(|t| t.rows.is_empty()) && self.edges.iter().all(|t| t.rows.is_empty())
    }
}

/// Reads the lineage of `node_id`.
pub async fn lineage(
    pool: &PgPool,
    pipeline: &Pipeline,
    tables: &LineageTables,
    graph: Option<&dyn GraphProbe>,
    node_id: &str,
) -> Result<Lineage, WebError> {
    let mut nodes = Vec::new();
    for t in &tables.nodes {
        nodes.push(rows_of(pool, pipeline, t, &[("node_id", node_id)], 1_000).await?);
    }
    let mut edges = Vec::new();
    for t in &tables.edges {
        let mut from = rows_of(
            pool,
            pipeline,
            t,
            &[("from_node_id", node_id)],
            EDGES_PER_TABLE,
        )
        .await?;
        let to = rows_of(
            pool,
            pipeline,
            t,
            &[("to_node_id", node_id)],
            EDGES_PER_TABLE,
        )
        .await?;
        from.truncated |= to.truncated;
        from.rows.extend(to.rows);
        edges.push(from);
    }
    let mut in_graph = BTreeMap::new();
    if let Some(graph) = graph {
        let mut types: Vec<String> = Vec::new();
        for t in &nodes {
            let Some(i) = t.key_index("node_type", tables) else {
                continue;
            };
            for r in t.rows.iter().filter(|r| r.row.is_some()) {
                if !types.contains(&r.key[i]) {
                    types.push(r.key[i].clone());
                }
            }
        }
        for ty in types {
            let held = graph.holds(&ty, node_id).await;
            in_graph.insert(ty, held);
        }
    }
    Ok(Lineage {
        node_id: node_id.to_string(),
        nodes,
        edges,
        in_graph,
    })
}

impl TableRows {
    /// Where column `column` sits in this table's key.
    pub fn key_index(&self, column: &str, tables: &LineageTables) -> Option<usize> {
        tables
            .nodes
            .iter()
            .chain(&tables.edges)
            .find(|t| t.table == self.table)
            .and_then(|t| t.key.iter().position(|k| k == column))
    }
}

/// The rows of `t` (tombstones included) whose columns equal `filter`, newest change first.
async fn rows_of(
    pool: &PgPool,
    pipeline: &Pipeline,
    t: &LineageTable,
    filter: &[(&str, &str)],
    limit: i64,
) -> Result<TableRows, WebError> {
    let keys = t
        .key
        .iter()
        .map(|k| format!("m.{}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut cond = Vec::new();
    for (i, (column, _)) in filter.iter().enumerate() {
        cond.push(format!("m.{} = ${}", quote_ident(column), i + 1));
    }
    let join = t
        .key
        .iter()
        .map(|k| format!("d.{0} = m.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let ts =
        |c: &str| format!("to_char(m.{c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
    let writer_param = format!("${}", filter.len() + 3);
    let sql = format!(
        "SELECT {keys}, {created} AS created, {changed} AS changed, {deleted} AS deleted,
                CASE WHEN d IS NULL THEN NULL ELSE to_jsonb(d) - ${skip}::text[] END AS row,
                {created_by} AS created_by, {changed_by} AS changed_by
           FROM {meta} AS m LEFT JOIN {data} AS d ON {join}
          WHERE {cond}
          ORDER BY m.update_ts DESC LIMIT ${lim}",
        created = ts("create_ts"),
        changed = ts("update_ts"),
        deleted = ts("delete_ts"),
        created_by = history::run_of_write(&writer_param, "m.create_ts"),
        changed_by = history::run_of_write(&writer_param, "m.update_ts"),
        meta = meta_table(&t.table),
        data = quote_ident(&t.table),
        cond = cond.join(" AND "),
        skip = filter.len() + 1,
        lim = filter.len() + 2,
    );
    let vectors = vector_columns(pool, &t.table).await?;
    let mut q = sqlx::query(&sql);
    for (_, value) in filter {
        q = q.bind(*value);
    }
    let writer = t.writer.as_ref().map(|(s, _)| s.clone());
    let rows = q
        .bind(&vectors)
        .bind(limit + 1)
        .bind(&writer)
        .fetch_all(pool)
        .await
        .map_err(|e| WebError::db(format!("reading table `{}` for lineage", t.table), e))?;
    let truncated = rows.len() as i64 > limit;
    let mut out = Vec::new();
    for r in rows.iter().take(limit as usize) {
        let key: Vec<String> = (0..t.key.len())
            .map(|i| r.try_get::<String, _>(i).unwrap_or_default())
            .collect();
        let created: String = r.try_get("created").unwrap_or_default();
        let changed: String = r.try_get("changed").unwrap_or_default();
        let deleted: Option<String> = r.try_get("deleted").unwrap_or_default();
        let row: Option<Value> = r.try_get("row").unwrap_or_default();
        let created_by: Option<i64> = r.try_get("created_by").unwrap_or_default();
        let changed_by: Option<i64> = r.try_get("changed_by").unwrap_or_default();
        let origin = origin_of(pipeline, t, &key);
        out.push(StoredRow {
            key,
            row: match row {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            },
            created,
            created_by,
            changed,
            changed_by,
            deleted,
            origin,
        });
    }
    Ok(TableRows {
        table: t.table.clone(),
        writer,
        rows: out,
        truncated,
    })
}

/// The source row an extract's output row comes from, when the table is an extract's output.
fn origin_of(pipeline: &Pipeline, t: &LineageTable, key: &[String]) -> Option<Origin> {
    let (step, i) = t.writer.as_ref()?;
    let step = pipeline.step(step)?;
    let StepImpl::Extract(extract) = &step.implementation else {
        return None;
    };
    let role = extract.outputs().get(*i)?.name;
    extract.origin(role, &Key::new(key.to_vec()))
}

/// The table's vector columns: left out of the page (a thousand numbers say nothing).
async fn vector_columns(pool: &PgPool, table: &str) -> Result<Vec<String>, WebError> {
    sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
          WHERE table_name = $1 AND table_schema = current_schema()
            AND udt_name IN ('vector', 'halfvec', 'sparsevec')",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(|e| WebError::db(format!("reading the columns of `{table}`"), e))
}
