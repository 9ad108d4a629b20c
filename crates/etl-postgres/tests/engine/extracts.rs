//! Extracts: a first run loads everything and a second writes nothing; changed and deleted
//! source rows recompute exactly the affected keys; duplicate keys keep the first row.

use crate::harness::{pkey, step, Harness};
use crate::pipeline_under_test::node;

#[tokio::test]
async fn first_run_loads_everything_and_a_second_run_writes_nothing() {
    let h = Harness::new().await;
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.count("SELECT count(*) FROM src_nodes").await, 13);
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 13);
    assert_eq!(h.count("SELECT count(*) FROM node_tags").await, 15);
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes = '{\"name\": \"Person 3\"}'")
            .await,
        1
    );
    // Metadata: one live row per data row, with hashes and create = update.
    assert_eq!(
        h.count(
            "SELECT count(*) FROM etl.meta__nodes_out WHERE hash IS NOT NULL AND delete_ts IS NULL"
        )
        .await,
        13
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__node_tags WHERE producer_key IS NOT NULL")
            .await,
        15
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE NOT pending AND is_success")
            .await,
        13
    );

    let seq_before = h.count("SELECT last_value FROM etl.change_seq").await;
    let updates_before = h
        .count("SELECT count(*) FROM etl.meta__nodes_out WHERE update_ts > create_ts")
        .await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.calls(), 0, "no key of shape is reprocessed: {r}");
    assert_eq!(h.tags.calls(), 0);
    assert_eq!(
        h.count("SELECT last_value FROM etl.change_seq").await,
        seq_before,
        "no row changed"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__nodes_out WHERE update_ts > create_ts")
            .await,
        updates_before
    );
    for s in &r.steps {
        assert_eq!(s.rows_written(), 0, "{} wrote rows", s.step);
    }
    let plan = h.plan().await;
    for s in &plan.steps {
        assert_eq!(
            s.plan.unwrap().total(),
            0,
            "plan of {} shows work: {:?}",
            s.step,
            s.plan
        );
    }
}

#[tokio::test]
async fn modified_and_deleted_rows_recompute_exactly_the_affected_keys() {
    let h = Harness::new().await;
    h.run().await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    h.source.edit("src_nodes", |rows| {
        rows[1].set("name", "Renamed");
        rows.retain(|r| r.text("node_id") != Some("p004"));
    });
    let plan = h.plan().await;
    assert_eq!(step(&plan, "load").plan.unwrap().changed, 1);
    assert_eq!(step(&plan, "load").plan.unwrap().deleted, 1);

    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        h.shape.keys_seen(),
        vec![pkey("p001", "person"), pkey("p004", "person")]
    );
    assert_eq!(
        h.tags.keys_seen(),
        vec![pkey("p001", "person"), pkey("p004", "person")]
    );
    let load = step(&r, "load");
    assert_eq!(load.tables["src_nodes"].updated, 1);
    assert_eq!(load.tables["src_nodes"].deleted, 1);
    assert_eq!(load.tables["src_nodes"].unchanged, 11);
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE node_id = 'p001' AND attributes->>'name' = 'Renamed'").await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE node_id = 'p004'")
            .await,
        0
    );
    // p004's tags are gone too, though its rows in src_tags remain: outputs follow the node.
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p004'")
            .await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p001' AND name = 'Renamed'")
            .await,
        1
    );
    // Deletions are recorded as tombstones; other rows were not touched.
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__nodes_out WHERE delete_ts IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__nodes_out WHERE update_ts > create_ts AND delete_ts IS NULL").await,
        1
    );
}

#[tokio::test]
async fn duplicate_keys_in_a_snapshot_keep_the_first_row() {
    let h = Harness::new().await;
    h.source.edit("src_nodes", |rows| {
        rows.push(node("p000", "person", "Impostor", "99"))
    });
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        step(&r, "load").counters.get("duplicate_keys_ignored"),
        Some(&1)
    );
    assert_eq!(
        h.count("SELECT count(*) FROM src_nodes WHERE name = 'Impostor'")
            .await,
        0
    );
}
