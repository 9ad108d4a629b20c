//! Transforms: one-to-many outputs follow deletes in either input, a side-table change
//! invalidates only the keys depending on it, and a fingerprint change reprocesses one step.

use std::sync::Arc;

use etl_core::runner::{KEYS_SETTLED_UNREAD, PLAN_PRODUCES_NOTHING};
use etl_core::Runner;
use etl_testkit::steps::text_row;

use crate::harness::{options, pkey, step, Harness};
use crate::pipeline_under_test::{node, seed, CONFIG};

#[tokio::test]
async fn one_to_many_outputs_follow_deletes_in_either_input() {
    let h = Harness::new().await;
    h.run().await;
    h.tags.reset_calls();
    // Delete one tag row (second input) of p000, which has tags a and b.
    h.source.edit("src_tags", |rows| {
        rows.retain(|r| !(r.text("node_id") == Some("p000") && r.text("tag") == Some("b")))
    });
    // Add a tag to p003 (second input).
    h.source.edit("src_tags", |rows| {
        rows.push(text_row(&[
            ("node_id", "p003"),
            ("node_type", "person"),
            ("tag", "z"),
        ]))
    });
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        h.tags.keys_seen(),
        vec![pkey("p000", "person"), pkey("p003", "person")]
    );
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p000'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p003'")
            .await,
        2
    );
    let t = step(&r, "tags").tables["node_tags"];
    assert_eq!((t.inserted, t.deleted, t.updated), (1, 1, 0));
    // Shape does not read src_tags: untouched.
    assert_eq!(step(&r, "shape").keys_processed, 0);

    // Delete the node itself (first input): every tag row it produced goes.
    h.source.edit("src_nodes", |rows| {
        rows.retain(|r| r.text("node_id") != Some("p002"))
    });
    h.run().await;
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p002'")
            .await,
        0
    );
    // A key with no input left is forgotten by the step.
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE node_id = 'p002'")
            .await,
        0
    );
    // ... but its tags remain in src_tags, so the tags step still knows the key (no outputs).
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__tags WHERE node_id = 'p002' AND NOT pending")
            .await,
        1
    );
}

#[tokio::test]
async fn a_side_table_change_invalidates_only_the_keys_that_depend_on_it() {
    let h = Harness::new().await;
    h.run().await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    h.source.edit("attrs", |rows| {
        rows.push(text_row(&[
            ("anchor", "interest"),
            ("attribute_name", "age"),
        ]))
    });
    let plan = h.plan().await;
    assert_eq!(step(&plan, "load").plan.unwrap().new, 1);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    // Exactly the 3 interest nodes, none of the 10 persons.
    assert_eq!(h.shape.keys_seen(), interest_keys());
    assert_eq!(h.tags.calls(), 0);
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes ? 'age'")
            .await,
        3
    );
    // Only the changed outputs were written.
    assert_eq!(step(&r, "shape").tables["nodes_out"].updated, 3);
}

#[tokio::test]
async fn a_fingerprint_change_reprocesses_every_key_of_that_step_only() {
    let h = Harness::new().await;
    h.run().await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    h.catalog.set_version("shape", 2);
    let plan = h.plan().await;
    assert!(step(&plan, "shape").plan.unwrap().all_keys);
    assert_eq!(step(&plan, "tags").plan.unwrap().total(), 0);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.keys_seen().len(), 13);
    assert_eq!(h.tags.calls(), 0);
    // Same output: nothing rewritten.
    assert_eq!(step(&r, "shape").rows_written(), 0);

    // A setting that is part of the identity changes the fingerprint too.
    h.shape.reset_calls();
    let with_setting = CONFIG.replace(
        "labels = { stage = \"derive\", part = \"nodes\" }",
        "labels = { stage = \"derive\", part = \"nodes\" }\nsettings = { flavour = \"spicy\" }",
    );
    let pipeline = Arc::new(h.pipeline_from(&with_setting));
    let r = Runner::new(h.store.clone(), pipeline)
        .run(&options())
        .await
        .unwrap();
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.keys_seen().len(), 13);
}

/// A capture that finds nothing new writes nothing (no watermark rewritten to the value it
/// had), so its transaction commits without a disk flush; one after a fingerprint change still
/// records the new fingerprint, so the run after it has nothing to do.
#[tokio::test]
async fn a_capture_that_finds_no_change_rewrites_no_watermark() {
    let h = Harness::new().await;
    h.run().await;
    let versions = "SELECT coalesce(sum(xmin::text::bigint), 0)::bigint FROM etl.step_watermarks";
    let rows = h.count("SELECT count(*) FROM etl.step_watermarks").await;
    assert!(rows > 0, "the first run recorded its watermarks");
    let before = h.count(versions).await;
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        h.count(versions).await,
        before,
        "a no-op rewrote a watermark"
    );

    h.catalog.set_version("shape", 2);
    h.shape.reset_calls();
    h.run().await;
    assert_eq!(h.shape.keys_seen().len(), 13);
    h.shape.reset_calls();
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.calls(), 0, "the new fingerprint was not recorded");
}

/// The indexes of a key table, as Postgres describes them.
async fn key_indexes(h: &Harness, step: &str) -> Vec<String> {
    let mut c = h.db.connect().await;
    sqlx::query_scalar(
        "SELECT indexdef || CASE WHEN EXISTS (SELECT 1 FROM pg_constraint k
                                    WHERE k.conindid = (quote_ident(schemaname) || '.' || quote_ident(indexname))::regclass
                                      AND k.contype = 'p') THEN ' (primary key)' ELSE '' END
           FROM pg_indexes WHERE schemaname = 'etl' AND tablename = $1 ORDER BY indexname",
    )
    .bind(format!("keys__{step}"))
    .fetch_all(&mut c)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_first_capture_loads_the_keys_without_indexes_and_makes_the_same_ones_again() {
    let h = Harness::new().await;
    // The bookkeeping as `prepare` makes it, before any capture.
    etl_core::Store::prepare(h.store.as_ref(), &Arc::new(h.pipeline()))
        .await
        .unwrap();
    let made = key_indexes(&h, "shape").await;
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(
        made.iter().any(|d| d.ends_with("(primary key)")),
        "{made:?}"
    );
    assert!(made.iter().any(|d| d.contains("WHERE pending")), "{made:?}");

    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    // The index of pending keys, left out while the run marked its keys done, is back; the
    // load's fillfactor is not left on the table.
    assert_eq!(key_indexes(&h, "shape").await, made);
    assert_eq!(
        h.count("SELECT count(*) FROM pg_class WHERE oid = 'etl.keys__shape'::regclass AND reloptions IS NOT NULL")
            .await,
        0
    );
    let nodes = h.count("SELECT count(*) FROM src_nodes").await;
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE NOT pending AND is_success")
            .await,
        nodes
    );
    // The loaded table is sampled when its run ends, so that the next run counts its pending
    // keys through the index, not by scanning the table as a table without statistics is.
    assert_eq!(
        h.count("SELECT count(*) FROM pg_stats WHERE schemaname = 'etl' AND tablename = 'keys__shape' AND attname = 'pending'")
            .await,
        1
    );

    // The next captures go through the primary key (ON CONFLICT): an edit and a new node.
    h.source.edit("src_nodes", |rows| {
        rows[0].set("name", "renamed");
        rows.push(node("p100", "person", "Person 100", "30"));
    });
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(step(&r, "shape").keys_processed, 2);
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE NOT pending")
            .await,
        nodes + 1
    );

    // A run that died after a first capture left the index of pending keys out: the next run
    // makes it before it captures.
    h.db.execute("DROP INDEX etl.keys__shape__pending").await;
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(key_indexes(&h, "shape").await, made);
}

#[tokio::test]
async fn a_step_that_produces_nothing_settles_its_keys_unread_while_it_holds_no_rows() {
    let h = Harness::new().await;
    h.shape.claim_nothing(true);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    let nodes = h.count("SELECT count(*) FROM src_nodes").await;
    assert_eq!(h.shape.calls(), 0, "no batch was read");
    let shape = step(&r, "shape");
    assert_eq!(shape.keys_processed, nodes as u64);
    assert_eq!(
        shape.counters.get(KEYS_SETTLED_UNREAD),
        Some(&(nodes as u64))
    );
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 0);
    let settled = "SELECT count(*) FROM etl.keys__shape WHERE NOT pending AND is_success";
    assert_eq!(h.count(settled).await, nodes);
    // The first capture's index of pending keys was made, as after batches.
    let indexes = key_indexes(&h, "shape").await;
    assert!(
        indexes.iter().any(|d| d.contains("WHERE pending")),
        "{indexes:?}"
    );

    // A node deleted upstream: its key is forgotten, the rest stay settled.
    h.source.edit("src_nodes", |rows| {
        rows.retain(|r| r.text("node_id") != Some("p000"))
    });
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.calls(), 0);
    // Counted as a batch counts it: a key processed, which vanished.
    assert_eq!(step(&r, "shape").keys_processed, 1);
    assert_eq!(
        step(&r, "shape").counters.get(KEYS_SETTLED_UNREAD),
        Some(&1)
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape").await,
        nodes - 1
    );
    assert_eq!(h.count(settled).await, nodes - 1);
}

#[tokio::test]
async fn planning_a_step_that_produces_nothing_estimates_none_of_its_keys() {
    let h = Harness::new().await;
    h.run().await;
    h.catalog.set_version("shape", 2);
    let plan = h.plan().await;
    let shape = step(&plan, "shape");
    assert_eq!(shape.counters.get("estimated_keys"), Some(&13), "{plan}");
    assert_eq!(shape.counters.get(PLAN_PRODUCES_NOTHING), None, "{plan}");
    // Nothing to estimate: the plan reads none of the keys.
    h.shape.claim_nothing(true);
    let plan = h.plan().await;
    let shape = step(&plan, "shape");
    assert_eq!(shape.counters.get("estimated_keys"), None, "{plan}");
    assert_eq!(
        shape.counters.get(PLAN_PRODUCES_NOTHING),
        Some(&1),
        "{plan}"
    );
    assert_eq!(
        shape.plan.unwrap().total(),
        13,
        "the keys are still counted"
    );
}

#[tokio::test]
async fn a_step_that_says_it_produces_nothing_still_runs_its_batches_while_it_holds_rows() {
    let h = Harness::new().await;
    h.run().await;
    let written = h.count("SELECT count(*) FROM nodes_out").await;
    let interests = "SELECT count(*) FROM nodes_out WHERE node_type = 'interest'";
    assert!(h.count(interests).await > 0);
    h.shape.reset_calls();
    h.shape.claim_nothing(true);
    // The interest nodes pend (a side-table change), and now produce nothing.
    h.source.edit("attrs", |rows| {
        rows.push(text_row(&[
            ("anchor", "interest"),
            ("attribute_name", "age"),
        ]))
    });
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    let shape = step(&r, "shape");
    assert_eq!(shape.counters.get(KEYS_SETTLED_UNREAD), None, "{r}");
    // Only the batches may delete what the step wrote: they ran, and deleted those rows.
    assert_eq!(h.shape.keys_seen(), interest_keys());
    assert_eq!(shape.tables["nodes_out"].deleted, 3);
    assert_eq!(h.count(interests).await, 0);
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, written - 3);
}

/// The keys of the seed's three interest nodes.
fn interest_keys() -> Vec<etl_core::Key> {
    ["i0", "i1", "i2"]
        .into_iter()
        .map(|id| pkey(id, "interest"))
        .collect()
}

/// When the engine's test database last vacuumed `etl.keys__shape` (by hand, not autovacuum).
async fn shape_keys_vacuumed_at(h: &Harness) -> Option<String> {
    h.db.text(
        "SELECT last_vacuum::text FROM pg_stat_user_tables WHERE schemaname = 'etl' AND relname = 'keys__shape'",
    )
    .await
}

#[tokio::test]
async fn the_no_op_after_a_first_capture_visited_the_old_key_rows_until_the_run_vacuumed_them() {
    let h = Harness::new().await;
    seed(&h.source, 12_000);
    // Batches of thousands, as a real step's: the harness's batches of two would take minutes.
    let config = CONFIG
        .replace("batch_size = 2", "batch_size = 4000")
        .replace("batch_size = 3", "batch_size = 4000");
    let r = h.run_config(&config).await;
    assert!(!r.any_failed(), "{r}");
    assert!(step(&r, "shape").keys_processed >= 12_000);
    // Marking every key done left an old row per key; the run vacuumed them once its steps
    // ended, so the next run counts its pending keys without visiting a row.
    assert!(shape_keys_vacuumed_at(&h).await.is_some());
    let plan: serde_json::Value = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM etl.keys__shape WHERE pending",
    )
    .fetch_one(&mut h.db.connect().await)
    .await
    .unwrap();
    let fetches = plan[0]["Plan"]["Plans"][0]["Heap Fetches"].as_i64();
    assert_eq!(fetches, Some(0), "{plan}");

    // A run that rewrites a few keys leaves them to autovacuum: a vacuum reads the table's
    // indexes whole, which would cost more than the few rows save.
    let before = shape_keys_vacuumed_at(&h).await;
    h.source
        .edit("src_nodes", |rows| rows[0].set("name", "renamed"));
    let r = h.run_config(&config).await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(step(&r, "shape").keys_processed, 1);
    assert_eq!(shape_keys_vacuumed_at(&h).await, before);
}
