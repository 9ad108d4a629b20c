//! The connection settings every graph step takes (`uri`, `user`, `password`, `database`,
//! `dialect`, `connect_timeout_secs`), one lazily opened client per step, and the graph's errors
//! as the engine's.

use std::time::Duration;

use tokio::sync::OnceCell;

use etl_core::config::Settings;
use etl_core::retry::RetryPolicy;
use etl_core::StepError;

use crate::{Dialect, GraphClient, GraphConfig, GraphError};

/// The graph connection of one step.
pub struct GraphConnection {
    config: GraphConfig,
    /// Whether the dialect is found out from the server (`auto`).
    detect_dialect: bool,
    client: OnceCell<GraphClient>,
}

impl GraphConnection {
    pub fn from_settings(settings: &mut Settings) -> GraphConnection {
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
            client: OnceCell::new(),
        }
    }

    /// The client, connected (and its dialect found out) on first use.
    pub async fn client(&self) -> Result<&GraphClient, StepError> {
        self.client
            .get_or_try_init(|| async {
                let mut client = GraphClient::connect(&self.config)
                    .await
                    .map_err(graph_error)?;
                if self.detect_dialect {
                    client.dialect = self.detected(&client).await?;
                }
                Ok(client)
            })
            .await
    }
}

/// Dialects found out in this process, by server and database: the graph steps of a run share
/// one answer instead of asking once each.
static DETECTED: std::sync::Mutex<Vec<(String, String, Dialect)>> =
    std::sync::Mutex::new(Vec::new());

impl GraphConnection {
    async fn detected(&self, client: &GraphClient) -> Result<Dialect, StepError> {
        let (uri, database) = (&self.config.uri, &self.config.database);
        let known = DETECTED
            .lock()
            .expect("dialect cache")
            .iter()
            .find(|(u, d, _)| u == uri && d == database)
            .map(|(_, _, dialect)| *dialect);
        if let Some(dialect) = known {
            return Ok(dialect);
        }
        let dialect = client.detect_dialect().await.map_err(graph_error)?;
        tracing::debug!(dialect = dialect.name(), "graph dialect detected");
        DETECTED
            .lock()
            .expect("dialect cache")
            .push((uri.clone(), database.clone(), dialect));
        Ok(dialect)
    }
}

/// A graph error as the engine's (see [`crate::error_policy`]).
pub fn graph_error(e: GraphError) -> StepError {
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
