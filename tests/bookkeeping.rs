//! Bounded bookkeeping: tombstones are pruned once every step reading their table has seen the
//! deletion, and never sooner; the embedding cache forgets what no run has used for
//! `EMBEDDINGS_CACHE_MAX_AGE_DAYS`, and finds a batch's entries by probe however new it is.

mod support;

use support::{Run, Setup};

async fn tombstones(s: &Setup, table: &str) -> i64 {
    s.count(&format!(
        "SELECT count(*) FROM etl.\"meta__{table}\" WHERE delete_ts IS NOT NULL"
    ))
    .await
}

async fn ok(s: &Setup, args: &[&str], env: &[(&str, &str)]) -> Run {
    let r = s.etl(args, env).await;
    assert_eq!(r.code, Some(0), "etl {args:?}: {r}");
    r
}

/// Everything the pipeline keeps of the demo, outside the bookkeeping.
async fn outcome(s: &Setup) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>, i64) {
    (
        s.table_nodes().await,
        s.graph_nodes().await,
        s.table_edges().await,
        s.graph_edges().await,
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_tombstone_never_resurrects_a_row_or_resends_a_delete() {
    let s = Setup::demo().await;
    s.run().await;
    let nodes_before = s.count("SELECT count(*) FROM nodes").await;
    let person = s.docs().records("demo-data", "Anchor_person").unwrap()[0].clone();
    s.docs()
        .delete_record("demo-data", "Anchor_person", person.id)
        .unwrap();

    // The extract and two of the steps after it run. `nodes` is the only reader of
    // `grist_nodes` and has seen the deletion: that tombstone goes. `embed_nodes` has seen the
    // node's deletion in `nodes`, but `graph_nodes`, which reads it too, has not: that one stays,
    // and the next run still deletes the node from the graph.
    ok(
        &s,
        &[
            "run",
            "--step",
            "grist_graph",
            "--step",
            "nodes",
            "--step",
            "embed_nodes",
        ],
        &[],
    )
    .await;
    assert_eq!(tombstones(&s, "grist_nodes").await, 0);
    assert!(tombstones(&s, "nodes").await >= 1);
    s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM nodes").await,
        nodes_before - 1
    );
    let after_delete = outcome(&s).await;
    assert_eq!(
        after_delete.0, after_delete.1,
        "the graph's nodes equal the table's"
    );
    assert_eq!(
        after_delete.2, after_delete.3,
        "the graph's edges equal the table's"
    );

    // Every reader has seen it now: no tombstone is left anywhere along the way.
    for table in ["grist_nodes", "grist_edges", "nodes", "edges"] {
        assert_eq!(tombstones(&s, table).await, 0, "tombstones left in {table}");
    }

    // A no-op run re-sends no delete; a full refresh resurrects nothing.
    let r = s.run().await;
    assert!(r.processed_nothing(), "{r}");
    ok(&s, &["run", "--full-refresh"], &[]).await;
    assert_eq!(outcome(&s).await, after_delete);

    // The person comes back in Grist: an insert like any other, everywhere.
    let fields = serde_json::Value::Object(person.fields.into_iter().collect());
    s.docs()
        .add_record("demo-data", "Anchor_person", fields)
        .unwrap();
    let r = s.run().await;
    assert_eq!(r.written("nodes").0, 1, "{r}");
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, nodes_before);
    let back = outcome(&s).await;
    assert_eq!(back.0, back.1, "the graph's nodes equal the table's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_cache_forgets_only_what_no_run_has_used_for_its_max_age() {
    let s = Setup::demo().await;
    s.run().await;
    let entries = s.count("SELECT count(*) FROM etl.embedding_cache").await;
    assert!(entries > 0);
    let age_everything = "UPDATE etl.embedding_cache SET used_at = now() - interval '10 days'";
    let old = "SELECT count(*) FROM etl.embedding_cache WHERE used_at < now() - interval '1 day'";

    // Unbounded (the default), nothing is forgotten; a run that reads an entry marks it used.
    s.db.execute(age_everything).await;
    ok(&s, &["run", "--full-refresh"], &[]).await;
    assert_eq!(
        s.count("SELECT count(*) FROM etl.embedding_cache").await,
        entries
    );
    assert_eq!(s.count(old).await, 0, "the full refresh read every entry");

    // Bounded at 1 day: after a run that embeds, the entries unused for 10 days go and the
    // entries it used stay.
    s.db.execute(age_everything).await;
    s.docs()
        .update_record(
            "demo-data",
            "Anchor_person",
            1,
            serde_json::json!({"person_name": "Someone New"}),
        )
        .unwrap();
    let r = ok(&s, &["run"], &[("EMBEDDINGS_CACHE_MAX_AGE_DAYS", "1")]).await;
    let left = s.count("SELECT count(*) FROM etl.embedding_cache").await;
    assert_eq!(s.count(old).await, 0, "{r}");
    assert!(
        left >= 1 && left < entries,
        "{left} of {entries} entries left\n{r}"
    );
    // What was forgotten costs one embedding if it is ever needed again, and nothing else.
    let calls = s.model.requests();
    ok(&s, &["run", "--full-refresh"], &[]).await;
    assert!(
        s.model.requests() > calls,
        "forgotten texts are embedded again"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM etl.embedding_cache").await,
        entries,
        "every current text is cached again (the old name is not current any more, the new one is)"
    );
}

/// The bug: a cache that autovacuum had not sampled yet (a first run fills it faster than that)
/// was read by its key prefix, each entry compared with every hash of the batch: at 30,000
/// entries a lookup took a second, 7.7 s of the M benchmark's full run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_lookup_before_any_analyze_reads_one_entry_per_hash() {
    use embeddings::cache::{lookup_sql, text_hash};
    use embeddings::{EmbeddingCache, ModelId};

    let db = etl_testkit::postgres::TestDb::new().await;
    db.execute("ALTER TABLE etl.embedding_cache SET (autovacuum_enabled = false)")
        .await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let cached: Vec<Vec<u8>> = (1..=20000)
        .map(|i| text_hash(&format!("text {i}")).to_vec())
        .collect();
    sqlx::query(
        "INSERT INTO etl.embedding_cache (provider, model, dims, text_hash, embedding)
         SELECT 'p', 'm', 3, h, '[1,2,3]' FROM unnest($1::bytea[]) AS u(h)",
    )
    .bind(&cached)
    .execute(&pool)
    .await
    .unwrap();

    // A batch of 1,000 texts: 500 cached, 500 never seen.
    let batch: Vec<[u8; 32]> = (1..=500)
        .map(|i| text_hash(&format!("text {i}")))
        .chain((1..=500).map(|i| text_hash(&format!("new text {i}"))))
        .collect();
    let id = ModelId {
        provider: "p".into(),
        model: "m".into(),
        dims: 3,
    };
    let hits = EmbeddingCache::new(pool.clone())
        .get_many(&id, &batch)
        .await
        .unwrap();
    assert_eq!(hits.len(), 500, "every cached text is found, no other");
    assert!(hits.values().all(|v| v == &[1.0, 2.0, 3.0]));

    let keys: Vec<Vec<u8>> = batch.iter().map(|h| h.to_vec()).collect();
    let plan: serde_json::Value =
        sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", lookup_sql()))
            .bind("p")
            .bind("m")
            .bind(3i32)
            .bind(&keys)
            .fetch_one(&pool)
            .await
            .unwrap();
    let read = entries_read(&plan[0]["Plan"], "embedding_cache");
    assert!(
        read <= batch.len() as f64,
        "the lookup of {} hashes read {read} of 20,000 entries: {plan:#}",
        batch.len()
    );
}

/// The rows a plan read from `table`: those it returned plus those its filters removed, over
/// every loop.
fn entries_read(node: &serde_json::Value, table: &str) -> f64 {
    let own = if node["Relation Name"] == table {
        let rows = node["Actual Rows"].as_f64().unwrap_or(0.0)
            + node["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
        rows * node["Actual Loops"].as_f64().unwrap_or(1.0)
    } else {
        0.0
    };
    let children = node["Plans"]
        .as_array()
        .map(|plans| plans.iter().map(|p| entries_read(p, table)).sum())
        .unwrap_or(0.0);
    own + children
}
