//! Embeddings end to end: the repository's `pipelines.toml` run by the built `etl` binary on the
//! demo docs (a Grist emulator), with a fake OpenAI-compatible server that counts every request
//! and text, into real Postgres + pgvector. Test databases have `vector(8)` columns.

use std::time::Duration;

use serde_json::json;

use etl_testkit::fake_openai::fake_vector;
use etl_testkit::postgres::TEST_EMBEDDINGS_DIM;

mod support;

use support::Setup;

/// Embeddable texts of the demo: person_name (16), bio (15: one is empty), interest_name (14),
/// city_name (4).
const DEMO_TEXTS: i64 = 16 + 15 + 14 + 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_embeddable_attribute_is_embedded_once_and_searchable() {
    let s = Setup::demo().await;
    s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        DEMO_TEXTS
    );
    assert_eq!(
        s.count(&format!("SELECT count(*) FROM rag_anchor_embeddings WHERE vector_dims(embedding) = {TEST_EMBEDDINGS_DIM}")).await,
        DEMO_TEXTS
    );
    // No id, no number, no empty text: only the listed embeddable strings.
    assert_eq!(
        s.count("SELECT count(DISTINCT attribute_name) FROM rag_anchor_embeddings")
            .await,
        4
    );
    assert_eq!(s.count("SELECT count(*) FROM rag_edge_embeddings").await, 0);
    assert_eq!(
        s.model.texts().len() as i64,
        DEMO_TEXTS,
        "each text sent once"
    );

    // A cosine search finds the row of the text it was given.
    let query = pgvector_literal(&fake_vector("river otters", TEST_EMBEDDINGS_DIM as usize));
    let mut c = s.db.connect().await;
    let (node, value): (String, String) = sqlx::query_as(
        "SELECT node_id, attribute_value FROM rag_anchor_embeddings ORDER BY embedding <=> $1::vector LIMIT 1",
    )
    .bind(&query)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(
        (node.as_str(), value.as_str()),
        ("interest:1", "river otters")
    );

    // A second run makes zero model calls.
    s.model.reset_counts();
    s.run().await;
    assert_eq!(s.model.requests(), 0);
}

fn pgvector_literal(v: &[f32]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_one_person_sends_exactly_one_text() {
    let s = Setup::demo().await;
    s.run().await;
    s.model.reset_counts();
    s.grist
        .docs()
        .update_record(
            "demo-data",
            "Anchor_person",
            5,
            json!({"person_name": "Elin N."}),
        )
        .unwrap();
    s.run().await;
    assert_eq!(s.model.requests(), 1);
    assert_eq!(s.model.texts(), vec!["Elin N.".to_string()]);
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings WHERE node_id = 'person:5' AND attribute_value = 'Elin N.'").await,
        1
    );

    // Editing a non-embeddable attribute calls the model for nothing.
    s.model.reset_counts();
    s.grist
        .docs()
        .update_record("demo-data", "Anchor_person", 5, json!({"age": 56}))
        .unwrap();
    let r = s.run().await;
    assert_eq!(s.model.requests(), 0, "{r}");
    assert!(
        r.stdout.contains("rag_anchor_embeddings        +0 ~0 -0"),
        "{r}"
    );

    // A deleted node deletes its rows.
    s.grist
        .docs()
        .delete_record("demo-data", "Anchor_person", 5)
        .unwrap();
    s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings WHERE node_id = 'person:5'")
            .await,
        0
    );
    assert_eq!(s.model.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_embeddable_on_sends_only_those_texts_and_equal_texts_cost_one() {
    let s = Setup::demo().await;
    s.run().await;
    // A new attribute, not embeddable: the nodes change, the model is not called.
    let id = s
        .grist
        .docs()
        .add_record(
            "demo-data-model",
            "Anchor_attributes",
            json!({"attribute_name": "notes", "anchor": 1, "embeddable": false}),
        )
        .unwrap();
    s.model.reset_counts();
    s.run().await;
    assert_eq!(s.model.requests(), 0);
    // Switched on: only those texts are sent; all 16 persons share one note, sent once.
    s.grist
        .docs()
        .update_record(
            "demo-data-model",
            "Anchor_attributes",
            id,
            json!({"embeddable": true}),
        )
        .unwrap();
    s.run().await;
    assert_eq!(
        s.model.texts(),
        vec!["internal note, not an attribute".to_string()]
    );
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings WHERE attribute_name = 'notes'")
            .await,
        16
    );
    // Switched off again: its rows go, nothing is sent.
    s.model.reset_counts();
    s.grist
        .docs()
        .update_record(
            "demo-data-model",
            "Anchor_attributes",
            id,
            json!({"embeddable": false}),
        )
        .unwrap();
    s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings WHERE attribute_name = 'notes'")
            .await,
        0
    );
    assert_eq!(s.model.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_and_a_500_are_ridden_out() {
    let s = Setup::demo().await;
    s.model.fail_next(3, 429, Some(1));
    s.model.fail_next(1, 500, None);
    let started = std::time::Instant::now();
    s.run().await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "Retry-After was honoured"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        DEMO_TEXTS
    );
    assert_eq!(s.model.requests() - s.model.answered(), 4, "4 refused");
    assert!(s.model.answered() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_text_fails_only_its_key_and_is_retried_next_run() {
    let s = Setup::demo().await;
    s.model.poison("Dev Raman");
    let r = s.etl(&["run"], &[]).await;
    assert_eq!(r.code, Some(1), "keys failed: {r}");
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        DEMO_TEXTS - 2,
        "person:4's two texts"
    );
    let status = s.etl(&["status", "--step", "embeddings"], &[]).await;
    assert_eq!(status.code, Some(1), "{status}");
    assert!(
        status
            .stdout
            .contains(r#"key ["person:4","person"] failed (1 attempt)"#),
        "{status}"
    );
    assert!(
        status
            .stdout
            .contains("the model refused the text of attribute `person_name`"),
        "{status}"
    );

    s.model.cure();
    s.model.reset_counts();
    s.run().await;
    // Only the refused text is sent: the other text of the key was cached when it was paid for.
    assert_eq!(s.model.texts(), vec!["Dev Raman".to_string()]);
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        DEMO_TEXTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dimension_that_differs_from_the_table_is_refused_before_any_call() {
    let s = Setup::demo().await;
    let r = s.etl(&["run"], &[("EMBEDDINGS_DIM", "16")]).await;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(
        r.stdout
            .contains("gives 16 dimensions but rag_anchor_embeddings.embedding is vector(8)"),
        "{r}"
    );
    assert!(r.stdout.contains("set EMBEDDINGS_DIM"), "{r}");
    assert_eq!(s.model.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_embeddings_runs_nodes_and_edges_and_a_new_model_re_embeds_everything() {
    let s = Setup::demo().await;
    s.run().await;
    let r = s.etl(&["run", "--step", "embeddings"], &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    let steps: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("total"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(steps, vec!["embed_edges", "embed_nodes"], "{r}");

    // Another model: every text again (the cache is per model), every row rewritten.
    s.model.reset_counts();
    let r = s
        .etl(
            &["run", "--step", "embeddings"],
            &[("EMBEDDINGS_MODEL", "fake-model-2")],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(s.model.texts().len() as i64, DEMO_TEXTS);
}

/// The oid of the HNSW index of `rag_anchor_embeddings` (0 when there is none).
async fn anchor_index_oid(s: &Setup) -> i64 {
    s.count("SELECT coalesce((SELECT to_regclass('rag_anchor_embeddings_hnsw')::oid::bigint), 0)")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_load_builds_the_vector_index_after_the_rows_even_after_a_killed_run() {
    let s = Setup::demo().await;
    let bulk = [("EMBEDDINGS_BULK_LOAD_FROM", "10")];
    let before = anchor_index_oid(&s).await;
    assert_ne!(before, 0, "the migration made the index");

    // A first load of 49 texts is a bulk load: the index is set aside and made again.
    let r = s.etl(&["run"], &bulk).await;
    assert_eq!(r.code, Some(0), "{r}");
    let after = anchor_index_oid(&s).await;
    assert_ne!(after, 0, "the index is back");
    assert_ne!(
        after, before,
        "the index was made again over the loaded rows"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM etl.deferred_indexes").await,
        0
    );
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings").await,
        DEMO_TEXTS
    );

    // A run with nothing to do leaves the index alone.
    let r = s.etl(&["run"], &bulk).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(anchor_index_oid(&s).await, after);

    // So does a full refresh whose texts are all in the cache: every key is pending, but the
    // rows come back as stored, so setting the index aside would only cost a rebuild.
    let r = s.etl(&["run", "--full-refresh"], &bulk).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        s.model.texts().len() as i64,
        DEMO_TEXTS,
        "nothing sent again"
    );
    assert_eq!(
        anchor_index_oid(&s).await,
        after,
        "a full refresh that changed nothing made the vector index again"
    );

    // What a run killed in the middle of a bulk load leaves: the index dropped, its definition
    // recorded, the step's memo forgotten. The next run, even with nothing to embed, makes it.
    s.db.execute(
        "INSERT INTO etl.deferred_indexes (table_name, index_name, definition)
         SELECT 'rag_anchor_embeddings', '\"public\".\"rag_anchor_embeddings_hnsw\"', pg_get_indexdef('rag_anchor_embeddings_hnsw'::regclass)",
    )
    .await;
    s.db.execute("DROP INDEX rag_anchor_embeddings_hnsw").await;
    s.db.execute("UPDATE etl.steps SET memo = NULL WHERE step = 'embed_nodes'")
        .await;
    let r = s.etl(&["run"], &bulk).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_ne!(anchor_index_oid(&s).await, 0, "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM etl.deferred_indexes").await,
        0
    );
    assert_eq!(
        s.model.texts().len() as i64,
        DEMO_TEXTS,
        "nothing embedded twice"
    );
}

/// Every stored vector is the model's vector for its text, exactly.
async fn every_vector_is_the_models(s: &Setup) {
    let mut c = s.db.connect().await;
    let rows: Vec<(String, pgvector::Vector)> =
        sqlx::query_as("SELECT attribute_value, embedding FROM rag_anchor_embeddings")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(rows.len() as i64, DEMO_TEXTS);
    for (text, v) in rows {
        assert_eq!(
            v.to_vec(),
            fake_vector(&text, TEST_EMBEDDINGS_DIM as usize),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_come_as_base64_and_are_stored_bit_for_bit() {
    let s = Setup::demo().await;
    s.run().await;
    assert!(s.model.requests() > 0);
    assert_eq!(s.model.base64_requests(), s.model.requests());
    every_vector_is_the_models(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_base64_is_asked_for_floats_from_then_on() {
    let s = Setup::demo().await;
    s.model.refuse_base64(true);
    let r = s.run().await;
    assert_eq!(s.model.base64_requests(), 0);
    // Refused once, then asked for as floats, every request after that too.
    assert_eq!(s.model.requests() - s.model.answered(), 1, "{r}");
    every_vector_is_the_models(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_with_nothing_embeddable_are_settled_without_a_batch() {
    let s = Setup::demo().await;
    let run = s.run().await;
    let links = s.count("SELECT count(*) FROM edges").await;
    assert!(links > 0);
    // The demo's one link attribute (`since`) is not embeddable: no edge is read for it.
    assert_eq!(
        run.step_counter("embed_edges", "keys_settled_unread"),
        Some(links as u64),
        "{run}"
    );
    let settled = "SELECT count(*) FROM etl.keys__embed_edges WHERE NOT pending AND is_success";
    assert_eq!(s.count(settled).await, links);
    assert_eq!(s.count("SELECT count(*) FROM rag_edge_embeddings").await, 0);

    // A deleted link's keys are forgotten, as a batch would have.
    let link = s
        .docs()
        .records("demo-data", "Link_person_likes_interest")
        .unwrap()[0]
        .clone();
    s.docs()
        .delete_record("demo-data", "Link_person_likes_interest", link.id)
        .unwrap();
    let run = s.run().await;
    // One link is an edge each way.
    let left = s.count("SELECT count(*) FROM edges").await;
    assert!(left < links, "{run}");
    assert_eq!(
        s.count("SELECT count(*) FROM etl.keys__embed_edges").await,
        left
    );
    assert_eq!(s.count(settled).await, left);

    // Marked embeddable, the attribute list no longer says "nothing": the batches read the
    // edges (`since` holds numbers, so still no text is sent).
    let since = s
        .docs()
        .records("demo-data-model", "Link_attributes")
        .unwrap()[0]
        .clone();
    s.docs()
        .update_record(
            "demo-data-model",
            "Link_attributes",
            since.id,
            json!({"embeddable": true}),
        )
        .unwrap();
    s.model.reset_counts();
    let run = s.run().await;
    let liked = s
        .count(
            "SELECT count(*) FROM edges AS e JOIN dm_link_attributes AS a ON a.link = e.edge_label
              WHERE a.attribute_name = 'since'",
        )
        .await;
    assert!(liked > 0);
    assert_eq!(
        run.step_counter("embed_edges", "keys_settled_unread"),
        None,
        "{run}"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("embed_edges ") && l.ends_with(&format!("keys={liked}"))),
        "{run}"
    );
    assert_eq!(s.model.requests(), 0);
}
