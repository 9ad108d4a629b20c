//! Targets kept safe: the vector index as the settings ask, applied by `etl migrate` and shown by
//! `etl status`; a new embedding dimension as a documented path. The built binary, the demo
//! docs, real Postgres; every assertion reads back the catalogue or the rows.

mod support;

use serde_json::json;

use support::Setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_the_index_settings_and_status_shows_the_index_in_force() {
    let s = Setup::demo().await;
    s.run().await;
    let ivfflat = [
        ("EMBEDDINGS_INDEX", "ivfflat"),
        ("EMBEDDINGS_IVFFLAT_LISTS", "4"),
    ];
    let m = s.etl(&["migrate"], &ivfflat).await;
    assert_eq!(m.code, Some(0), "{m}");
    assert!(
        m.stdout.contains("rag_anchor_embeddings: vector index ivfflat (lists=4) (made now: rag_anchor_embeddings_ivfflat)"),
        "{m}"
    );
    let again = s.etl(&["migrate"], &ivfflat).await;
    assert!(
        again
            .stdout
            .contains("rag_edge_embeddings: vector index ivfflat (lists=4) (in place)"),
        "{again}"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM pg_indexes WHERE tablename = 'rag_anchor_embeddings' AND indexname <> 'rag_anchor_embeddings_pkey'")
            .await,
        1
    );
    let status = s.etl(&["status"], &[]).await;
    assert!(
        status.stdout.contains("vector index of rag_anchor_embeddings (embedding vector(8)): ivfflat (lists=4) `rag_anchor_embeddings_ivfflat`"),
        "{status}"
    );
    // A run after it writes nothing: the index is not the steps' business.
    let seq = s.seq().await;
    s.run().await;
    assert_eq!(s.seq().await, seq);
    // Bad settings stop migrate with every problem named.
    let bad = s
        .etl(
            &["migrate"],
            &[("EMBEDDINGS_INDEX", "flat"), ("EMBEDDINGS_HNSW_M", "x")],
        )
        .await;
    assert_eq!(bad.code, Some(4), "{bad}");
    assert!(bad.stderr.contains("EMBEDDINGS_INDEX: `flat`"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_embedding_dimension_is_migrated_and_the_next_run_embeds_again() {
    let s = Setup::demo().await;
    s.run().await;
    let vectors = s.count("SELECT count(*) FROM rag_anchor_embeddings").await;
    assert!(vectors > 0);
    // The old dimension's run refuses the new model before calling it.
    let refused = s
        .etl(
            &["run", "--step", "embed_nodes"],
            &[("EMBEDDINGS_DIM", "4")],
        )
        .await;
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(
        refused.stdout.contains("etl migrate --embeddings-dim 4"),
        "{refused}"
    );

    let m = s.etl(&["migrate", "--embeddings-dim", "4"], &[]).await;
    assert_eq!(m.code, Some(0), "{m}");
    assert!(
        m.stdout.contains(&format!("rag_anchor_embeddings: embedding vector(8) is now vector(4); {vectors} vectors dropped")),
        "{m}"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        0
    );
    let r = s.etl(&["run"], &[("EMBEDDINGS_DIM", "4")]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings WHERE vector_dims(embedding) = 4")
            .await,
        vectors
    );
    assert_eq!(
        s.count("SELECT count(*) FROM pg_indexes WHERE indexname = 'rag_anchor_embeddings_hnsw'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_wipe_restore_and_rebuild_give_the_same_graph_and_the_next_run_writes_nothing() {
    let s = Setup::demo().await;
    // A hostile edge type and a property value holding every character a literal must escape.
    let hostile = "x`]->() DETACH DELETE (m) //";
    let bio = "it's a \"test\" \\ with\na new line, a tab\t and `ticks` ;";
    s.docs()
        .update_record(
            "demo-data",
            "Link_person_likes_interest",
            1,
            json!({"edge_label": hostile}),
        )
        .unwrap();
    s.docs()
        .update_record("demo-data", "Anchor_person", 2, json!({"bio": bio}))
        .unwrap();
    s.run().await;
    let nodes = s.graph_nodes().await;
    let edges = s.graph_edges().await;
    assert_eq!(nodes.len(), 34);
    assert!(nodes.iter().any(|n| n.contains("a new line")), "{nodes:#?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.cypherl");
    let file_arg = file.to_str().unwrap();
    let e = s.etl(&["graph", "export", "--out", file_arg], &[]).await;
    assert_eq!(e.code, Some(0), "{e}");
    assert!(
        e.stdout
            .contains(&format!("exported 34 nodes, {} edges", edges.len())),
        "{e}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let last = text.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "// etl graph export complete: 34 nodes, {} edges",
            edges.len()
        )
    );
    assert!(
        text.lines()
            .filter(|l| *l != last)
            .all(|l| l.ends_with(';')),
        "one statement per line"
    );
    // A file cut short is refused.
    let cut = dir.path().join("cut.cypherl");
    std::fs::write(&cut, text.lines().take(3).collect::<Vec<_>>().join("\n")).unwrap();

    // Into a graph that holds nodes: refused, nothing loaded.
    let refused = s.etl(&["graph", "restore", file_arg], &[]).await;
    assert_eq!(refused.code, Some(4), "{refused}");
    assert_eq!(s.graph_nodes().await, nodes);

    // Memgraph restarted in IN_MEMORY_ANALYTICAL mode: empty. The file brings it back.
    s.empty_graph().await;
    let r = s
        .etl(&["graph", "restore", cut.to_str().unwrap()], &[])
        .await;
    assert_eq!(r.code, Some(4), "{r}");
    assert!(r.stderr.contains("cut short"), "{r}");
    s.empty_graph().await;
    let r = s.etl(&["graph", "restore", file_arg], &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("the graph holds 34 nodes"), "{r}");
    assert_eq!(s.graph_nodes().await, nodes);
    assert_eq!(s.graph_edges().await, edges);
    let next = s.run().await;
    assert!(
        !next.stdout.contains("graph_nodes_written")
            && !next.stdout.contains("graph_edges_written"),
        "{next}"
    );

    // Rebuilt from the tables alone: the same graph, without Grist or the model.
    let requests = (s.model.requests(), s.docs().requests().len());
    let b = s.etl(&["graph", "rebuild"], &[]).await;
    assert_eq!(b.code, Some(0), "{b}");
    assert_eq!((s.model.requests(), s.docs().requests().len()), requests);
    assert_eq!(s.graph_nodes().await, nodes);
    assert_eq!(s.graph_edges().await, edges);
    let next = s.run().await;
    assert!(
        !next.stdout.contains("graph_nodes_written")
            && !next.stdout.contains("graph_edges_written"),
        "{next}"
    );
}
