//! Graph write throughput: 100,000 nodes and 300,000 edges into the test Bolt server (ArcadeDB,
//! `scripts/services start bolt`), with the statements and the default batch size (10,000 rows a
//! transaction) of the graph sinks, indexes created first as the pipeline does:
//! `cargo bench -p etl-testkit --bench graph_throughput` (`NODES=... EDGES=...`).

use std::time::{Duration, Instant};

use etl_core::retry::RetryPolicy;
use etl_testkit::graph::TestGraph;
use graph::client::Statement;
use graph::{bolt, cypher, Dialect, GraphClient, GraphConfig};

const BATCH: usize = 10_000;

#[tokio::main]
async fn main() {
    let nodes: usize = std::env::var("NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let edges: usize = std::env::var("EDGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let test_graph = TestGraph::new().await;
    let s = &test_graph.server;
    let client = GraphClient::connect(&GraphConfig {
        uri: s.bolt_uri.clone(),
        user: s.user.clone(),
        password: s.password.clone(),
        database: test_graph.database.clone(),
        dialect: Dialect::Neo4j,
        connect_timeout: Duration::from_secs(10),
        retry: RetryPolicy::default(),
    })
    .await
    .unwrap();
    for statement in Dialect::Neo4j.create_anchor_indexes("person") {
        client.ddl(&statement).await.unwrap();
    }

    let started = Instant::now();
    for chunk in (0..nodes).collect::<Vec<_>>().chunks(BATCH) {
        let rows = chunk
            .iter()
            .map(|i| {
                let id = format!("person:{i}");
                bolt::map([
                    ("id", bolt::string(&id)),
                    ("props", bolt::from_json(&serde_json::json!({"id": id, "person_name": format!("Person {i}"), "age": i % 90}))),
                ])
            })
            .collect();
        let batch: Vec<Statement> = vec![(
            cypher::upsert_nodes("person"),
            vec![("rows", bolt::list(rows))],
        )];
        client.write("nodes", &batch).await.unwrap();
    }
    let node_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    for chunk in (0..edges).collect::<Vec<_>>().chunks(BATCH) {
        let rows = chunk
            .iter()
            .map(|i| {
                let from = format!("person:{}", i % nodes);
                let to = format!("person:{}", (i * 7 + 1) % nodes);
                bolt::map([
                    ("from", bolt::string(&from)),
                    ("to", bolt::string(&to)),
                    (
                        "props",
                        bolt::from_json(&serde_json::json!({"since": 2000 + i % 25})),
                    ),
                ])
            })
            .collect();
        let batch: Vec<Statement> = vec![(
            cypher::upsert_edges("person", "KNOWS", "person"),
            vec![("rows", bolt::list(rows))],
        )];
        client.write("edges", &batch).await.unwrap();
    }
    let edge_secs = started.elapsed().as_secs_f64();

    let counts = client.node_counts().await.unwrap();
    println!("server: ArcadeDB (Bolt), {BATCH} rows a transaction");
    println!(
        "nodes: {nodes} in {node_secs:.1} s: {:.0} nodes/s (graph holds {:?})",
        nodes as f64 / node_secs,
        counts
    );
    println!(
        "edges: {edges} in {edge_secs:.1} s: {:.0} edges/s",
        edges as f64 / edge_secs
    );
}
