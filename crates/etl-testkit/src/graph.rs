//! A fresh graph database per test on the Bolt server that `scripts/services start bolt` runs
//! (ArcadeDB, speaking Bolt and openCypher in the Neo4j dialect). Created and dropped through
//! its HTTP API; a test fails loudly when the server is not running.

use std::sync::atomic::{AtomicU32, Ordering};

/// Where the server is: the settings `scripts/services start bolt` prints, or their defaults.
#[derive(Debug, Clone)]
pub struct BoltServer {
    pub bolt_uri: String,
    pub http_url: String,
    pub user: String,
    pub password: String,
}

impl BoltServer {
    pub fn from_env() -> BoltServer {
        let var = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_string())
        };
        BoltServer {
            bolt_uri: var("MEMGRAPH_URI", "bolt://127.0.0.1:57687"),
            http_url: var("ARCADEDB_HTTP_URL", "http://127.0.0.1:52480"),
            user: var("MEMGRAPH_USER", "root"),
            password: var("MEMGRAPH_PWD", "etl-test-pw"),
        }
    }

    async fn command(&self, command: &str) -> Result<(), String> {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/server", self.http_url))
            .basic_auth(&self.user, Some(&self.password))
            .json(&serde_json::json!({ "command": command }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ))
        }
    }
}

/// A graph database that exists for one test.
#[derive(Debug)]
pub struct TestGraph {
    pub server: BoltServer,
    pub database: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestGraph {
    pub async fn new() -> TestGraph {
        let server = BoltServer::from_env();
        let database = format!(
            "etl_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        if let Err(e) = server.command(&format!("create database {database}")).await {
            panic!(
                "\n\nthe Bolt graph server is not reachable for tests at {} ({e}).\n\
                 Start it with `scripts/services start bolt` (or run the README's test command, which does).\n\n",
                server.http_url
            );
        }
        TestGraph { server, database }
    }

    /// The environment the graph steps of `pipelines.toml` read.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("MEMGRAPH_URI", self.server.bolt_uri.clone()),
            ("MEMGRAPH_USER", self.server.user.clone()),
            ("MEMGRAPH_PWD", self.server.password.clone()),
            ("MEMGRAPH_DATABASE", self.database.clone()),
            ("MEMGRAPH_DIALECT", "neo4j".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for TestGraph {
    fn drop(&mut self) {
        let server = self.server.clone();
        let database = self.database.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(server.command(&format!("drop database {database}")));
            }
        })
        .join();
    }
}
