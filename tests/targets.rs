//! Targets kept safe: the vector index as the settings ask, applied by `etl migrate` and shown by
//! `etl status`; a new embedding dimension as a documented path. The built binary, the demo
//! docs, real Postgres; every assertion reads back the catalogue or the rows.

mod support;

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
