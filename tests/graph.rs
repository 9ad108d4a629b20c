//! The graph end to end: the repository's `pipelines.toml` on the demo docs, written into a real
//! Bolt server (ArcadeDB, Neo4j dialect, a fresh database per test), and read back.

mod support;

use serde_json::json;
use support::Setup;

async fn assert_graph_equals_tables(s: &Setup) {
    assert_eq!(s.graph_nodes().await, s.table_nodes().await, "nodes differ");
    assert_eq!(s.graph_edges().await, s.table_edges().await, "edges differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_holds_exactly_the_tables_and_follows_every_edit() {
    let s = Setup::demo().await;
    let r = s.run().await;
    assert!(r.stdout.contains("graph_nodes_written: 34"), "{r}");
    assert!(r.stdout.contains("graph_edges_written: 63"), "{r}");
    assert_graph_equals_tables(&s).await;

    // A second run sends no write to the graph.
    let r = s.run().await;
    assert!(
        !r.stdout.contains("graph_nodes_written") && !r.stdout.contains("graph_edges_written"),
        "{r}"
    );

    // Renaming one node writes one node.
    s.docs()
        .update_record(
            "demo-data",
            "Anchor_person",
            2,
            json!({"person_name": "Ben O."}),
        )
        .unwrap();
    let r = s.run().await;
    assert!(r.stdout.contains("graph_nodes_written: 1\n"), "{r}");
    assert!(!r.stdout.contains("graph_edges_written"), "{r}");
    assert_graph_equals_tables(&s).await;

    // Deleting a link row of an undirected link removes two edges.
    s.docs()
        .delete_record("demo-data", "Link_person_likes_interest", 3)
        .unwrap();
    let r = s.run().await;
    assert!(r.stdout.contains("graph_edges_deleted: 2"), "{r}");
    assert_graph_equals_tables(&s).await;

    // Deleting a node removes it and its edges.
    s.docs()
        .delete_record("demo-data", "Anchor_person", 9)
        .unwrap();
    let r = s.run().await;
    assert!(r.stdout.contains("graph_nodes_deleted: 1"), "{r}");
    assert_graph_equals_tables(&s).await;
    assert!(!s.graph_edges().await.iter().any(|e| e.contains("person:9")));

    // Removing an attribute from the data model removes the property from every node of the type.
    let bio = s
        .docs()
        .records("demo-data-model", "Anchor_attributes")
        .unwrap()
        .into_iter()
        .find(|r| r.fields.get("attribute_name") == Some(&json!("bio")))
        .unwrap()
        .id;
    s.docs()
        .delete_record("demo-data-model", "Anchor_attributes", bio)
        .unwrap();
    s.run().await;
    assert!(!s.graph_nodes().await.iter().any(|n| n.contains("\"bio\"")));
    assert_graph_equals_tables(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchor_indexes_follow_the_data_model_once() {
    let s = Setup::demo().await;
    s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM memgraph_anchor_indexes")
            .await,
        3
    );
    assert_eq!(
        s.count("SELECT count(*) FROM memgraph_link_indexes").await,
        2
    );
    // The labels with an index on `id`, as the server reports them.
    let indexes = || async {
        s.graph_client()
            .await
            .rows("SHOW INDEXES", &["labelsOrTypes", "properties"])
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r[1] == json!(["id"]))
            .filter_map(|r| r[0][0].as_str().map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(indexes().await.contains("city"), "{:?}", indexes().await);

    // Removing an anchor from the data model drops its indexes and its bookkeeping row.
    s.docs()
        .delete_record("demo-data-model", "Anchors", 3)
        .unwrap();
    let r = s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM memgraph_anchor_indexes WHERE anchor = 'city'")
            .await,
        0,
        "{r}"
    );
    assert!(!indexes().await.contains("city"), "{:?}", indexes().await);
    assert!(!s.graph_nodes().await.iter().any(|n| n.contains("city")));

    // Adding it back creates them once, however many runs follow.
    s.docs()
        .add_record(
            "demo-data-model",
            "Anchors",
            json!({"noun": "city", "description": "back"}),
        )
        .unwrap();
    s.run().await;
    assert!(indexes().await.contains("city"));
    assert_eq!(
        s.count("SELECT count(*) FROM memgraph_anchor_indexes WHERE anchor = 'city'")
            .await,
        1
    );
    for _ in 0..2 {
        let r = s.run().await;
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("graph_anchor_indexes"))
            .unwrap()
            .to_string();
        assert!(line.contains("keys=0"), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_edge_labels_create_exactly_what_they_say() {
    let s = Setup::demo().await;
    s.run().await;
    let hostile = "x`]->() DETACH DELETE (m) //";
    s.docs()
        .update_record(
            "demo-data",
            "Link_person_likes_interest",
            1,
            json!({"edge_label": hostile}),
        )
        .unwrap();
    s.run().await;
    let nodes = s.graph_nodes().await;
    assert_eq!(nodes.len(), 34, "nothing was deleted");
    let edges = s.graph_edges().await;
    assert_eq!(
        edges
            .iter()
            .filter(|e| e.contains(&format!("-{}->", json!(hostile))))
            .count(),
        2,
        "{edges:#?}"
    );
    assert_graph_equals_tables(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_graph_is_reported_by_verify_and_repaired_by_the_next_run() {
    let s = Setup::demo().await;
    s.run().await;
    let r = s.etl(&["verify"], &[]).await;
    assert_eq!(r.code, Some(0), "{r}");

    // Memgraph in IN_MEMORY_ANALYTICAL mode after a restart: empty.
    s.empty_graph().await;
    let r = s.etl(&["verify"], &[]).await;
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stdout.contains("nodes: person") && r.stdout.contains("table        16  graph         0"),
        "{r}"
    );

    let r = s.run().await;
    assert!(r.stdout.contains("drift_repaired: 1"), "{r}");
    assert_graph_equals_tables(&s).await;
    let r = s.etl(&["verify"], &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
}

/// Regression: the sinks compared the graph with the tables before processing, and changes
/// made upstream in the same run looked like drift, so deleting one link reloaded every edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_upstream_in_the_same_run_are_not_mistaken_for_drift() {
    let s = Setup::demo().await;
    s.run().await;
    s.docs()
        .delete_record("demo-data", "Link_person_likes_interest", 5)
        .unwrap();
    s.docs()
        .update_record(
            "demo-data",
            "Anchor_person",
            7,
            json!({"person_name": "Greta L."}),
        )
        .unwrap();
    s.docs()
        .delete_record("demo-data", "Anchor_person", 12)
        .unwrap();
    let r = s.run().await;
    assert!(!r.stdout.contains("drift_repaired"), "{r}");
    assert!(r.stdout.contains("graph_nodes_written: 1\n"), "{r}");
    assert!(r.stdout.contains("graph_nodes_deleted: 1\n"), "{r}");
    assert!(!r.stdout.contains("graph_edges_written"), "{r}");
    assert_graph_equals_tables(&s).await;
}

/// The counted_at of a sink's memo (0 when it has none).
async fn counted_at(s: &Setup, step: &str) -> i64 {
    s.count(&format!(
        "SELECT coalesce((memo::json->>'counted_at')::bigint, 0) FROM etl.steps WHERE step = '{step}'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_graph_is_sampled_between_counts_and_an_emptied_one_still_repaired() {
    let s = Setup::demo().await;
    // The demo's graph counts as large: runs between two counts look up a sample of keys.
    let sampled = [("GRAPH_DRIFT_SAMPLE_FROM", "1")];
    let r = s.etl(&["run"], &sampled).await;
    assert_eq!(r.code, Some(0), "{r}");
    let first_count = counted_at(&s, "graph_edges").await;
    assert!(first_count > 0, "the first run counted and remembered when");

    // Another writer adds a node: a count would see it, a sample of the sink's keys cannot.
    s.graph_client()
        .await
        .write(
            "adding a stray node",
            &[("CREATE (:person {id: 'stray'})".to_string(), vec![])],
        )
        .await
        .unwrap();
    let r = s.etl(&["run"], &sampled).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.processed_nothing(), "sampled, no drift seen: {r}");
    let r = s
        .etl(&["run"], &[sampled[0], ("GRAPH_DRIFT_RECOUNT_SECS", "0")])
        .await;
    assert!(r.stdout.contains("drift_repaired: 1"), "counted: {r}");

    // An emptied graph is missing every sampled key: both sinks reload.
    s.empty_graph().await;
    let r = s.etl(&["run"], &sampled).await;
    let nodes_at = r.stdout.find("graph_nodes ").unwrap();
    let edges_at = r.stdout.find("graph_edges ").unwrap();
    assert!(
        r.stdout[nodes_at..edges_at].contains("drift_repaired: 1"),
        "{r}"
    );
    assert!(r.stdout[edges_at..].contains("drift_repaired: 1"), "{r}");
    assert_graph_equals_tables(&s).await;

    // A count that finds nothing starts the clock again.
    let before = counted_at(&s, "graph_edges").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s
        .etl(&["run"], &[sampled[0], ("GRAPH_DRIFT_RECOUNT_SECS", "1")])
        .await;
    assert!(r.processed_nothing(), "{r}");
    assert!(counted_at(&s, "graph_edges").await > before, "{r}");
}
