//! What the end-to-end tests share: a Grist emulator serving some docs, a fake OpenAI-compatible
//! embedding server, a fresh migrated database (`vector(8)` columns), a fresh graph database on
//! the Bolt server, and the built `etl` binary run against them with the repository's
//! `pipelines.toml`.

#![allow(dead_code)] // each test file uses a part

pub mod serve;

use std::path::{Path, PathBuf};

use grist_emulator::{Docs, Emulator, RunningEmulator};

use etl_testkit::fake_openai::FakeOpenAi;
use etl_testkit::graph::TestGraph;
use etl_testkit::postgres::{TestDb, TEST_EMBEDDINGS_DIM};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Real Grist's recorded answers (`ETL_GRIST_RECORDED`, default `../shared/grist/recorded`).
pub fn recorded() -> PathBuf {
    let dir = std::env::var("ETL_GRIST_RECORDED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("../shared/grist/recorded"));
    assert!(
        dir.join("MANIFEST.json").exists(),
        "real Grist's recorded answers are not at {} (set ETL_GRIST_RECORDED)",
        dir.display()
    );
    dir
}

/// The repository's `pipelines.toml` with every step's batches of `size` keys (so that a small
/// run has several), written to a file of its own.
pub fn config_with_batch_size(size: usize) -> PathBuf {
    let text = std::fs::read_to_string(root().join("pipelines.toml")).unwrap();
    let re_sized: String = text
        .lines()
        .map(|l| {
            if l.starts_with("batch_size = ") {
                format!("batch_size = {size}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path =
        std::env::temp_dir().join(format!("etl-batches-of-{size}-{}.toml", std::process::id()));
    std::fs::write(&path, re_sized).unwrap();
    path
}

/// The project's demo docs, as an emulator.
pub fn demo_docs() -> Emulator {
    let dir = root().join("fixtures/grist");
    Emulator::from_dirs(&[
        dir.join("demo-data-model"),
        dir.join("demo-data"),
        dir.join("demo-test-set"),
    ])
    .unwrap()
}

/// An `etl` process's outcome.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Whether every transform and sink of the run's summary processed no key.
    pub fn processed_nothing(&self) -> bool {
        self.stdout
            .lines()
            .filter(|l| l.contains(" keys="))
            .all(|l| l.ends_with(" keys=0"))
    }

    /// A counter from the run's summary, among the lines under `step`'s.
    pub fn step_counter(&self, step: &str, counter: &str) -> Option<u64> {
        let mut lines = self
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{step} ")));
        lines.next()?;
        lines
            .take_while(|l| l.starts_with("    "))
            .find_map(|l| l.trim().strip_prefix(&format!("{counter}: ")))
            .and_then(|n| n.parse().ok())
    }

    /// Rows written to `table` by the run, from its summary: (+inserted, ~updated, -deleted).
    pub fn written(&self, table: &str) -> (u64, u64, u64) {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("    ") && l.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("no line for {table} in\n{self}"));
        let n = |prefix: char| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(prefix).and_then(|v| v.parse().ok()))
                .unwrap()
        };
        (n('+'), n('~'), n('-'))
    }
}

/// Settings with defaults that a test's environment must not inherit from the shell.
pub const OPTIONAL_SETTINGS: &[&str] = &[
    "GRIST_API_KEY",
    "GRIST_TEST_SET_TABLE",
    "GDS_TABLE_NAME",
    "GRIST_TIMEOUT_SECS",
    "EMBEDDINGS_MODEL_DIR",
    "EMBEDDINGS_TOP_N",
    "EMBEDDINGS_MAX_BATCH_SIZE",
    "EMBEDDINGS_MAX_TOKENS_PER_BATCH",
    "OPENAI_API_BASE",
];

/// The API key the tests give the fake model server: it must never appear in any output.
pub const MODEL_KEY: &str = "sk-test-secret-123";

pub struct Setup {
    pub grist: RunningEmulator,
    pub model: FakeOpenAi,
    pub db: TestDb,
    pub graph: TestGraph,
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// Serves `grist` and runs the pipeline on the docs `[data model, data, test set]`.
    pub async fn new(grist: Emulator, docs: [&str; 3]) -> Setup {
        let grist = grist.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Setup::with_running(grist, docs).await
    }

    pub async fn with_running(grist: RunningEmulator, docs: [&str; 3]) -> Setup {
        let model = FakeOpenAi::start(0).await;
        let db = TestDb::new().await;
        let graph = TestGraph::new().await;
        let mut env: Vec<(String, String)> = [
            ("DB_CONN_URI", db.url.clone()),
            ("GRIST_SERVER_URL", grist.url()),
            ("GRIST_DATA_MODEL_DOC_ID", docs[0].to_string()),
            ("GRIST_DATA_DOC_ID", docs[1].to_string()),
            ("GRIST_TEST_SET_DOC_ID", docs[2].to_string()),
            ("EMBEDDINGS_PROVIDER", "openai".to_string()),
            ("OPENAI_BASE_URL", model.base_url()),
            ("OPENAI_API_KEY", MODEL_KEY.to_string()),
            ("EMBEDDINGS_MODEL", "fake-model".to_string()),
            ("EMBEDDINGS_DIM", TEST_EMBEDDINGS_DIM.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(graph.env());
        Setup {
            grist,
            model,
            db,
            graph,
            env,
        }
    }

    pub async fn demo() -> Setup {
        Setup::new(
            demo_docs(),
            ["demo-data-model", "demo-data", "demo-test-set"],
        )
        .await
    }

    pub fn docs(&self) -> &Docs {
        self.grist.docs()
    }

    pub async fn etl(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        self.etl_with(args, extra_env, &[]).await
    }

    /// `etl` with `extra_env` set and the variables `unset` removed from its environment.
    pub async fn etl_with(&self, args: &[&str], extra_env: &[(&str, &str)], unset: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"));
        cmd.current_dir(root()).args(args).env("RUST_LOG", "warn");
        for k in OPTIONAL_SETTINGS {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            if !unset.contains(&k.as_str()) {
                cmd.env(k, v);
            }
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        for k in unset {
            cmd.env_remove(k);
        }
        let o = cmd.output().await.unwrap();
        let run = Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        };
        assert!(
            !run.stdout.contains(MODEL_KEY) && !run.stderr.contains(MODEL_KEY),
            "the model's key leaked: {run}"
        );
        run
    }

    /// `etl` with exactly these environment variables and no others.
    pub async fn etl_only(&self, args: &[&str], env: &[(&str, String)]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"));
        cmd.current_dir(root()).args(args).env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().await.unwrap();
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }

    /// `etl run`, which must succeed.
    pub async fn run(&self) -> Run {
        let r = self.etl(&["run"], &[]).await;
        assert_eq!(r.code, Some(0), "{r}");
        r
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.scalar(sql).await
    }

    /// The engine's change counter: unchanged when a run wrote nothing.
    pub async fn seq(&self) -> i64 {
        self.count("SELECT last_value FROM etl.change_seq").await
    }
}

impl Setup {
    /// A client on this test's graph database.
    pub async fn graph_client(&self) -> graph::GraphClient {
        let s = &self.graph.server;
        graph::GraphClient::connect(&graph::GraphConfig {
            uri: s.bolt_uri.clone(),
            user: s.user.clone(),
            password: s.password.clone(),
            database: self.graph.database.clone(),
            dialect: graph::Dialect::Neo4j,
            connect_timeout: std::time::Duration::from_secs(10),
            retry: etl_core::retry::RetryPolicy::quick(),
        })
        .await
        .unwrap()
    }

    /// Every node in the graph as `label id {props}`, sorted.
    /// Empties the test's graph, as a Memgraph restart in IN_MEMORY_ANALYTICAL mode does.
    pub async fn empty_graph(&self) {
        self.graph_client()
            .await
            .write(
                "emptying the graph",
                &[("MATCH (n) DETACH DELETE n".to_string(), vec![])],
            )
            .await
            .unwrap();
    }

    pub async fn graph_nodes(&self) -> Vec<String> {
        let rows = self
            .graph_client()
            .await
            .rows(
                "MATCH (n) RETURN labels(n) AS labels, properties(n) AS props",
                &["labels", "props"],
            )
            .await
            .unwrap();
        let mut out: Vec<String> = rows
            .into_iter()
            .map(|r| format!("{} {}", r[0], canonical(&r[1])))
            .collect();
        out.sort();
        out
    }

    /// Every edge in the graph as `from(labels) -type-> to(labels) {props}`, sorted.
    pub async fn graph_edges(&self) -> Vec<String> {
        let rows = self
            .graph_client()
            .await
            .rows(
                "MATCH (a)-[r]->(b) RETURN a.id AS a, labels(a) AS la, type(r) AS t, b.id AS b, labels(b) AS lb, properties(r) AS props",
                &["a", "la", "t", "b", "lb", "props"],
            )
            .await
            .unwrap();
        let mut out: Vec<String> = rows
            .into_iter()
            .map(|r| {
                format!(
                    "{}{} -{}-> {}{} {}",
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    canonical(&r[5])
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The `nodes` table in the shape of [`Setup::graph_nodes`].
    pub async fn table_nodes(&self) -> Vec<String> {
        let mut c = self.db.connect().await;
        let rows: Vec<(String, String, serde_json::Value)> =
            sqlx::query_as("SELECT node_id, node_type, attributes FROM nodes")
                .fetch_all(&mut c)
                .await
                .unwrap();
        let mut out: Vec<String> = rows
            .into_iter()
            .map(|(id, ty, mut attrs)| {
                attrs
                    .as_object_mut()
                    .unwrap()
                    .insert("id".into(), serde_json::Value::String(id));
                format!("{} {}", serde_json::json!([ty]), canonical(&attrs))
            })
            .collect();
        out.sort();
        out
    }

    /// The `edges` table in the shape of [`Setup::graph_edges`].
    pub async fn table_edges(&self) -> Vec<String> {
        let mut c = self.db.connect().await;
        let rows: Vec<(String, String, String, String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT from_node_id, from_node_type, edge_label, to_node_id, to_node_type, attributes FROM edges",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        let mut out: Vec<String> = rows
            .into_iter()
            .map(|(a, la, t, b, lb, props)| {
                let j = |s: &str| serde_json::Value::String(s.to_string());
                format!(
                    "{}{} -{}-> {}{} {}",
                    j(&a),
                    serde_json::json!([la]),
                    j(&t),
                    j(&b),
                    serde_json::json!([lb]),
                    canonical(&props)
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// JSON with object keys sorted, for comparing.
pub fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: std::collections::BTreeMap<_, _> =
                m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect();
            format!(
                "{{{}}}",
                sorted
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        other => other.to_string(),
    }
}

/// Polls `check` every 50 ms until it holds; fails the test after `limit`.
pub async fn wait_for(
    what: &str,
    limit: std::time::Duration,
    mut check: impl AsyncFnMut() -> bool,
) {
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
