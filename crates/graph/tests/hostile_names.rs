//! Hostile labels and property names against a real Bolt server (ArcadeDB from
//! `scripts/services start bolt`): they create exactly what they say, and nothing else happens.

use std::time::Duration;

use etl_core::retry::RetryPolicy;
use etl_testkit::graph::TestGraph;
use graph::client::Statement;
use graph::{bolt, cypher, Dialect, GraphClient, GraphConfig};
use serde_json::json;

async fn client(g: &TestGraph) -> GraphClient {
    GraphClient::connect(&GraphConfig {
        uri: g.server.bolt_uri.clone(),
        user: g.server.user.clone(),
        password: g.server.password.clone(),
        database: g.database.clone(),
        dialect: Dialect::Neo4j,
        connect_timeout: Duration::from_secs(10),
        retry: RetryPolicy::quick(),
    })
    .await
    .unwrap()
}

fn node(id: &str, props: serde_json::Value) -> neo4rs::BoltType {
    bolt::map([("id", bolt::string(id)), ("props", bolt::from_json(&props))])
}

#[tokio::test]
async fn a_hostile_label_and_property_names_create_exactly_what_they_say() {
    let g = TestGraph::new().await;
    let c = client(&g).await;
    let hostile = "x`) DETACH DELETE (m";
    let prop = "a`b} SET n.pwned = true //";
    let writes: Vec<Statement> = vec![
        (
            cypher::upsert_nodes("bystander"),
            vec![("rows", bolt::list(vec![node("b1", json!({"id": "b1"}))]))],
        ),
        (
            cypher::upsert_nodes(hostile),
            vec![(
                "rows",
                bolt::list(vec![node("h1", json!({"id": "h1", prop: "value"}))]),
            )],
        ),
    ];
    c.write("writing", &writes).await.unwrap();

    let counts = c.node_counts().await.unwrap();
    assert_eq!(counts.get("bystander"), Some(&1), "{counts:?}");
    assert_eq!(counts.get(hostile), Some(&1), "{counts:?}");
    assert_eq!(counts.len(), 2, "{counts:?}");
    let rows = c
        .rows(
            &format!(
                "MATCH (n:{}) RETURN properties(n) AS p",
                cypher::quote(hostile)
            ),
            &["p"],
        )
        .await
        .unwrap();
    assert_eq!(rows, vec![vec![json!({"id": "h1", prop: "value"})]]);

    // Deleting by the hostile label deletes that node only.
    let delete: Vec<Statement> = vec![(
        cypher::delete_nodes(hostile),
        vec![("ids", bolt::list(vec![bolt::string("h1")]))],
    )];
    c.write("deleting", &delete).await.unwrap();
    let counts = c.node_counts().await.unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![("bystander".to_string(), 1)]
    );

    // Indexes on a hostile label stay inside their quotes too.
    for s in Dialect::Neo4j.create_anchor_indexes(hostile) {
        c.ddl(&s).await.unwrap();
    }
    assert_eq!(c.node_counts().await.unwrap().len(), 1);
}
