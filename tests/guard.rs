//! No target can be wiped by accident: a run of a transform or sink that would delete more than
//! its `max_delete_fraction` of a Postgres table, the embedding table, the graph's nodes or its
//! edges stops before deleting anything and exits 2; `--allow-mass-delete` lets it through. A
//! step rewired to another table with the same key never loses what it wrote.

mod support;

use support::{root, Run, Setup};

/// Removes every person and interest of the demo: 30 of its 34 nodes and all of its edges.
fn empty_most_of_the_demo(s: &Setup) {
    let docs = s.docs();
    for table in ["Anchor_person", "Anchor_interest"] {
        let ids: Vec<i64> = docs
            .records("demo-data", table)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        for id in ids {
            docs.delete_record("demo-data", table, id).unwrap();
        }
    }
}

fn assert_refused(r: &Run, target: &str) {
    assert_eq!(r.code, Some(2), "{r}");
    assert!(
        r.stdout.contains("refusing to delete") && r.stdout.contains(target),
        "expected a refusal naming {target}:\n{r}"
    );
    assert!(r.stdout.contains("--allow-mass-delete"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_would_delete_most_of_a_target_stops_first_for_every_kind_of_target() {
    let s = Setup::demo().await;
    s.run().await;
    let nodes = s.count("SELECT count(*) FROM nodes").await;
    let edges = s.count("SELECT count(*) FROM edges").await;
    let embeddings = s.count("SELECT count(*) FROM rag_anchor_embeddings").await;
    let graph_nodes = s.graph_nodes().await;
    let graph_edges = s.graph_edges().await;
    assert!(nodes > 30 && edges > 0 && embeddings > 0);

    empty_most_of_the_demo(&s);
    // The extract is refused too, unless allowed: allow it alone, so that the steps after it
    // each meet their own guard.
    let r = s
        .etl(
            &["run", "--step", "grist_graph", "--allow-mass-delete"],
            &[],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r}");

    // A Postgres output table.
    let r = s.etl(&["run", "--step", "nodes"], &[]).await;
    assert_refused(&r, "table `nodes`");
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, nodes);
    let r = s.etl(&["run", "--step", "edges"], &[]).await;
    assert_refused(&r, "table `edges`");
    assert_eq!(s.count("SELECT count(*) FROM edges").await, edges);

    // Allowed: the normalize steps go through, and the next steps meet their guards.
    for step in ["nodes", "edges"] {
        let r = s
            .etl(&["run", "--step", step, "--allow-mass-delete"], &[])
            .await;
        assert_eq!(r.code, Some(0), "{r}");
    }
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, 4);
    assert_eq!(s.count("SELECT count(*) FROM edges").await, 0);

    // The embedding table.
    let r = s.etl(&["run", "--step", "embed_nodes"], &[]).await;
    assert_refused(&r, "rag_anchor_embeddings");
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        embeddings
    );

    // The graph's edges, then its nodes, read back from the graph.
    let r = s.etl(&["run", "--step", "graph_edges"], &[]).await;
    assert_refused(&r, "the graph's edges");
    assert_eq!(s.graph_edges().await, graph_edges);
    let r = s.etl(&["run", "--step", "graph_nodes"], &[]).await;
    assert_refused(&r, "the graph's nodes");
    assert_eq!(s.graph_nodes().await, graph_nodes);

    // The refused keys stayed pending: an allowed run finishes the work.
    let r = s.etl(&["run", "--allow-mass-delete"], &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        4
    );
    assert_eq!(s.graph_nodes().await, s.table_nodes().await);
    assert!(s.graph_edges().await.is_empty());
    // And the next run has nothing to do.
    let r = s.run().await;
    assert!(!r.stdout.contains("refusing"), "{r}");
}

/// The repository's `pipelines.toml` with one replacement, written beside the test's state.
fn rewired(from: &str, to: &str) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(root().join("pipelines.toml")).unwrap();
    assert!(text.contains(from), "pipelines.toml has no `{from}`");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text.replacen(from, to, 1)).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_or_embedding_step_rewired_to_another_table_with_the_same_key_loses_nothing() {
    let s = Setup::demo().await;
    s.run().await;
    let graph_nodes = s.graph_nodes().await;
    let graph_edges = s.graph_edges().await;
    let embeddings = s.count("SELECT count(*) FROM rag_anchor_embeddings").await;

    for (from, to) in [
        (
            "inputs = [\"nodes\"]\nafter = [\"graph_anchor_indexes\"]",
            "inputs = [\"grist_nodes\"]\nafter = [\"graph_anchor_indexes\"]",
        ),
        (
            "inputs = [\"nodes\", { table = \"dm_anchor_attributes\"",
            "inputs = [\"grist_nodes\", { table = \"dm_anchor_attributes\"",
        ),
        // An explicit join comes sorted by name, not in the key's order: a key built from the
        // rows in join order matched no key of the step, and every edge looked gone.
        (
            "inputs = [\"edges\"]\nafter = [\"graph_nodes\", \"graph_link_indexes\"]",
            "inputs = [{ table = \"edges\", on = { from_node_id = \"from_node_id\", to_node_id = \"to_node_id\", from_node_type = \"from_node_type\", to_node_type = \"to_node_type\", edge_label = \"edge_label\" } }]\nafter = [\"graph_nodes\", \"graph_link_indexes\"]",
        ),
    ] {
        let config = rewired(from, to);
        let path = config.path().to_str().unwrap();
        let check = s.etl(&["--config", path, "check"], &[]).await;
        let run = s.etl(&["--config", path, "run"], &[]).await;
        // Whatever the outcome (a refused configuration, a refused delete, or a correct run from
        // the new input), nothing the steps wrote is lost.
        assert!(
            matches!(run.code, Some(0) | Some(2) | Some(4)),
            "{check}\n{run}"
        );
        assert_eq!(s.graph_nodes().await, graph_nodes, "{run}");
        assert_eq!(s.graph_edges().await, graph_edges, "{run}");
        assert_eq!(
            s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
            embeddings,
            "{run}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_binding_is_refused_by_check_naming_step_role_and_table() {
    let s = Setup::demo().await;
    for (from, to, expected) in [
        // An input bound to a table of another shape (edges for nodes).
        (
            "inputs = [\"nodes\"]\nafter = [\"graph_anchor_indexes\"]",
            "inputs = [\"edges\"]\nafter = [\"graph_anchor_indexes\"]",
            "steps.graph_nodes.inputs[0]: table `edges` does not fit role `rows` of `kg.graph_nodes`",
        ),
        // A missing role: the attributes of the embedding step.
        (
            "inputs = [\"nodes\", { table = \"dm_anchor_attributes\", on = { node_type = \"anchor\" } }]",
            "inputs = { rows = \"nodes\" }",
            "steps.embed_nodes.inputs: role `attributes` of `kg.embed_nodes`",
        ),
        // The right key but not the columns the role reads (checked against the database).
        (
            "inputs = [\"nodes\"]\nafter = [\"graph_anchor_indexes\"]",
            "inputs = [\"rag_anchor_embeddings\"]\nafter = [\"graph_anchor_indexes\"]",
            "steps.graph_nodes.inputs: table `rag_anchor_embeddings` does not fit role `rows` (the nodes to hold in the graph): it has no column attributes",
        ),
        // Outputs bound out of order: each table must be keyed as its role says.
        (
            "outputs = [\"dm_anchors\", \"dm_anchor_attributes\",",
            "outputs = [\"dm_anchor_attributes\", \"dm_anchors\",",
            "steps.grist_data_model.outputs[0]: table `dm_anchor_attributes` does not fit output role `anchors` of `grist.data_model`",
        ),
        // An unknown role.
        (
            "inputs = [\"grist_nodes\"]\noutputs = [\"nodes\"]",
            "inputs = { nodes = \"grist_nodes\" }\noutputs = [\"nodes\"]",
            "steps.nodes.inputs.nodes: `kg.normalize_nodes` has no input role `nodes` (table `grist_nodes`)",
        ),
    ] {
        let config = rewired(from, to);
        let path = config.path().to_str().unwrap();
        let r = s.etl(&["--config", path, "check"], &[]).await;
        assert_eq!(r.code, Some(4), "{r}");
        assert!(r.stderr.contains(expected), "expected `{expected}`:\n{r}");
        // Nothing ran: a run refuses the same way, and wrote nothing.
        let r = s.etl(&["--config", path, "run"], &[]).await;
        assert_eq!(r.code, Some(4), "{r}");
        assert_eq!(s.count("SELECT count(*) FROM nodes").await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_server_that_refuses_every_statement_stops_the_step_at_the_first_error() {
    let s = Setup::demo().await;
    // No such database: nothing any key can change. The step stops at once (exit 2), with no
    // key recorded as failed: the batch is not split into a transaction per key.
    let r = s
        .etl(&["run"], &[("MEMGRAPH_DATABASE", "no_such_database")])
        .await;
    assert_eq!(r.code, Some(2), "{r}");
    for step in ["graph_anchor_indexes", "graph_nodes"] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            line.contains("FAILED") || line.contains("skipped"),
            "{line}"
        );
        assert!(!line.contains("keys failed"), "{line}");
    }
    assert!(!r.stdout.contains("keys failed"), "{r}");

    // Memgraph's index statements on a server that speaks the Neo4j dialect: each is refused,
    // the step fails, and no index is recorded as made.
    let r = s.etl(&["run"], &[("MEMGRAPH_DIALECT", "memgraph")]).await;
    assert_eq!(r.code, Some(2), "{r}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("graph_anchor_indexes"))
        .unwrap();
    assert!(line.contains("refused the statement"), "{line}");
    assert_eq!(
        s.count("SELECT count(*) FROM memgraph_anchor_indexes")
            .await,
        0
    );
    assert_eq!(
        s.count("SELECT count(*) FROM etl.\"keys__graph_anchor_indexes\" WHERE is_success = false")
            .await,
        0
    );
    // The right dialect then makes them all.
    let r = s.run().await;
    assert!(!r.stdout.contains("FAILED"), "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM memgraph_anchor_indexes")
            .await,
        3
    );
}
