//! The Bolt connection (neo4rs): each batch of writes in one explicit transaction, retried on
//! transient errors (Memgraph's "Cannot resolve conflicting transactions", deadlocks, dropped
//! connections); index statements in auto-commit; counts and key samples for drift checks.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use neo4rs::{query, BoltType, ConfigBuilder, Graph};

use etl_core::retry::{retry, RetryPolicy, Retryable};

use crate::bolt;
use crate::cypher;
use crate::dialect::Dialect;
use crate::error_policy::Class;

#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `bolt://host:7687` (`MEMGRAPH_URI`).
    pub uri: String,
    pub user: String,
    pub password: String,
    /// The database name neo4rs sends with every request (`memgraph` for Memgraph).
    pub database: String,
    pub dialect: Dialect,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("cannot connect to the graph at {uri} (check MEMGRAPH_URI, MEMGRAPH_USER, MEMGRAPH_PWD, MEMGRAPH_DATABASE): {message}")]
    Connect { uri: String, message: String },
    /// Still failing after the client's retries.
    #[error("graph {what}: {message}")]
    Transient { what: String, message: String },
    /// The server refused a value of some row (see [`crate::error_policy`]).
    #[error("graph {what}: {message}")]
    Rejected { what: String, message: String },
    /// The server refused the statement whatever the rows: a person must fix something.
    #[error("graph {what}: the server refused the statement (check MEMGRAPH_DATABASE, MEMGRAPH_DIALECT and the server's permissions): {message}")]
    Refused { what: String, message: String },
}

impl Retryable for GraphError {
    fn is_transient(&self) -> bool {
        matches!(self, GraphError::Transient { .. })
    }
}

/// A neo4rs error, classified by [`crate::error_policy`].
fn classify(what: &str, e: neo4rs::Error) -> GraphError {
    let class = crate::error_policy::classify(&e);
    let (what, message) = (what.to_string(), e.to_string());
    match class {
        Class::Transient => GraphError::Transient { what, message },
        Class::Data => GraphError::Rejected { what, message },
        Class::Fatal => GraphError::Refused { what, message },
    }
}

/// A statement and its parameters.
pub type Statement = (String, Vec<(&'static str, BoltType)>);

#[derive(Clone)]
pub struct GraphClient {
    graph: Graph,
    pub dialect: Dialect,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    pub async fn connect(config: &GraphConfig) -> Result<GraphClient, GraphError> {
        let fail = |message: String| GraphError::Connect {
            uri: config.uri.clone(),
            message,
        };
        let neo = ConfigBuilder::default()
            .uri(config.uri.as_str())
            .user(config.user.as_str())
            .password(config.password.as_str())
            .db(config.database.as_str())
            .fetch_size(1000)
            .max_connections(8)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        // A wrong password makes neo4rs retry rather than fail: bound the attempt.
        let graph = tokio::time::timeout(config.connect_timeout, Graph::connect(neo))
            .await
            .map_err(|_| fail(format!("no answer within {:?}", config.connect_timeout)))?
            .map_err(|e| fail(e.to_string()))?;
        let client = GraphClient {
            graph,
            dialect: config.dialect,
            retry: config.retry,
        };
        // Prove the connection (and the credentials) now, not in the middle of a batch.
        tokio::time::timeout(config.connect_timeout, client.graph.run(query("RETURN 1")))
            .await
            .map_err(|_| fail(format!("no answer within {:?}", config.connect_timeout)))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(client)
    }

    /// Runs statements in one transaction, retried as a whole on transient errors.
    pub async fn write(&self, what: &str, statements: &[Statement]) -> Result<(), GraphError> {
        if statements.is_empty() {
            return Ok(());
        }
        retry(&self.retry, what, || async {
            let mut txn = self
                .graph
                .start_txn()
                .await
                .map_err(|e| classify(what, e))?;
            for (text, params) in statements {
                let mut q = query(text);
                for (k, v) in params {
                    q = q.param(k, v.clone());
                }
                if let Err(e) = txn.run(q).await {
                    let _ = txn.rollback().await;
                    return Err(classify(what, e));
                }
            }
            txn.commit().await.map_err(|e| classify(what, e))
        })
        .await
    }

    /// Which dialect the server speaks: Memgraph answers `SHOW STORAGE INFO`, which Neo4j and
    /// other openCypher servers reject. A connection failure is an error, not an answer.
    pub async fn detect_dialect(&self) -> Result<Dialect, GraphError> {
        let what = "dialect detection";
        match self.graph.run(query("SHOW STORAGE INFO")).await {
            Ok(()) => Ok(Dialect::Memgraph),
            Err(e) => match classify(what, e) {
                GraphError::Rejected { message, .. } | GraphError::Refused { message, .. }
                    if not_understood(&message) =>
                {
                    Ok(Dialect::Neo4j)
                }
                GraphError::Rejected { what, message } | GraphError::Refused { what, message } => {
                    Err(GraphError::Refused {
                        what,
                        message: format!(
                            "{message} (the dialect could not be found out: set MEMGRAPH_DIALECT to memgraph or neo4j)"
                        ),
                    })
                }
                other => Err(other),
            },
        }
    }

    /// Runs an index or constraint statement in auto-commit; "already done" is success.
    pub async fn ddl(&self, statement: &str) -> Result<(), GraphError> {
        let what = "index change";
        let r = retry(&self.retry, what, || async {
            self.graph
                .run(query(statement))
                .await
                .map_err(|e| classify(what, e))
        })
        .await;
        match r {
            Err(GraphError::Rejected { message, .. } | GraphError::Refused { message, .. })
                if self.dialect.is_already_done(statement, &message) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The names of the indexes a Neo4j-dialect server reports on `label(property)` (servers may
    /// name them their own way, whatever name they were created with).
    pub async fn index_names_on(
        &self,
        label: &str,
        property: &str,
    ) -> Result<Vec<String>, GraphError> {
        let rows = self
            .rows(
                self.dialect.show_indexes(),
                &["name", "labelsOrTypes", "properties"],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| r[1] == serde_json::json!([label]) && r[2] == serde_json::json!([property]))
            .filter_map(|r| r[0].as_str().map(str::to_string))
            .collect())
    }

    /// Sums column `n` of a counting statement's rows, by the name in column `key` (all under
    /// `""` without one).
    async fn counts(
        &self,
        text: &str,
        key: Option<&str>,
        what: &str,
    ) -> Result<BTreeMap<String, i64>, GraphError> {
        retry(&self.retry, what, || async {
            let mut stream = self
                .graph
                .execute(query(text))
                .await
                .map_err(|e| classify(what, e))?;
            let mut out = BTreeMap::new();
            while let Some(row) = stream.next().await.map_err(|e| classify(what, e))? {
                let name: String = match key {
                    Some(key) => row.get(key).map_err(|e| GraphError::Rejected {
                        what: what.into(),
                        message: e.to_string(),
                    })?,
                    None => String::new(),
                };
                let n: i64 = row.get("n").map_err(|e| GraphError::Rejected {
                    what: what.into(),
                    message: e.to_string(),
                })?;
                *out.entry(name).or_default() += n;
            }
            Ok(out)
        })
        .await
    }

    pub async fn node_counts(&self) -> Result<BTreeMap<String, i64>, GraphError> {
        self.counts(
            cypher::COUNT_NODES_BY_LABEL,
            Some("label"),
            "counting nodes",
        )
        .await
    }

    pub async fn edge_counts(&self) -> Result<BTreeMap<String, i64>, GraphError> {
        self.counts(
            cypher::COUNT_EDGES_BY_TYPE,
            Some("edge_type"),
            "counting edges",
        )
        .await
    }

    /// Whether the graph has any node at all.
    pub async fn has_nodes(&self) -> Result<bool, GraphError> {
        Ok(self.count(cypher::ANY_NODE, "looking for any node").await? > 0)
    }

    /// The number of nodes with `label`.
    pub async fn count_nodes_with_label(&self, label: &str) -> Result<i64, GraphError> {
        self.count(
            &cypher::count_nodes_with_label(label),
            "counting nodes of a label",
        )
        .await
    }

    /// The number of edges of `edge_type`.
    pub async fn count_edges_of_type(&self, edge_type: &str) -> Result<i64, GraphError> {
        self.count(
            &cypher::count_edges_of_type(edge_type),
            "counting edges of a type",
        )
        .await
    }

    async fn count(&self, text: &str, what: &str) -> Result<i64, GraphError> {
        Ok(self.counts(text, None, what).await?.values().sum())
    }

    /// Which of `ids` exist as nodes with `label`.
    pub async fn existing_ids(
        &self,
        label: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, GraphError> {
        let what = "sampling nodes";
        let text = cypher::existing_ids(label);
        let ids_param = bolt::list(ids.iter().map(|i| bolt::string(i)).collect());
        retry(&self.retry, what, || async {
            let mut stream = self
                .graph
                .execute(query(&text).param("ids", ids_param.clone()))
                .await
                .map_err(|e| classify(what, e))?;
            let mut out = HashSet::new();
            while let Some(row) = stream.next().await.map_err(|e| classify(what, e))? {
                if let Ok(id) = row.get::<String>("id") {
                    out.insert(id);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Runs a read statement with parameters and returns each row as JSON (`etl graph export`).
    pub async fn rows_with(
        &self,
        text: &str,
        params: Vec<(&'static str, BoltType)>,
        columns: &[&str],
    ) -> Result<Vec<Vec<serde_json::Value>>, GraphError> {
        let what = "reading the graph";
        retry(&self.retry, what, || async {
            let mut q = query(text);
            for (k, v) in &params {
                q = q.param(k, v.clone());
            }
            let mut stream = self.graph.execute(q).await.map_err(|e| classify(what, e))?;
            let mut out = Vec::new();
            while let Some(row) = stream.next().await.map_err(|e| classify(what, e))? {
                out.push(
                    columns
                        .iter()
                        .map(|c| row.get::<serde_json::Value>(c).unwrap_or_default())
                        .collect(),
                );
            }
            Ok(out)
        })
        .await
    }

    /// Runs a read statement and returns each row as JSON (tests and `etl verify`).
    pub async fn rows(
        &self,
        text: &str,
        columns: &[&str],
    ) -> Result<Vec<Vec<serde_json::Value>>, GraphError> {
        let what = "reading the graph";
        let mut stream = self
            .graph
            .execute(query(text))
            .await
            .map_err(|e| classify(what, e))?;
        let mut out = Vec::new();
        while let Some(row) = stream.next().await.map_err(|e| classify(what, e))? {
            let mut values = Vec::with_capacity(columns.len());
            for c in columns {
                values.push(
                    row.get::<serde_json::Value>(c)
                        .unwrap_or(serde_json::Value::Null),
                );
            }
            out.push(values);
        }
        Ok(out)
    }
}

/// Whether a server's refusal says it does not speak the statement (rather than, say, that the
/// user may not run it).
fn not_understood(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "syntax",
        "invalid input",
        "mismatched input",
        "unknown",
        "no viable alternative",
    ]
    .iter()
    .any(|w| m.contains(w))
}
