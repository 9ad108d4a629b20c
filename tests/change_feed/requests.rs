//! What the change feed asks of Grist and what it does with the answers: a no-op asks one
//! question per doc, an edit reads only its rows, a link row copying another, and the deletes of
//! a delta going through the mass-delete guard.

use serde_json::json;

use super::{ids, step_args, summary_counter, Setup, DATA};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_asks_one_question_per_doc_and_an_edit_reads_only_its_rows() {
    let s = Setup::demo().await;
    let args = step_args(&[]);
    assert_eq!(s.etl(&args, &[]).await.code, Some(0));

    s.docs().reset_requests();
    let r = s.etl(&args, &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    let paths: Vec<String> = s.docs().requests().iter().map(|q| q.path.clone()).collect();
    // The graph reads two docs, the other extracts one each.
    assert_eq!(paths.len(), 4, "{paths:#?}");
    assert!(paths.iter().all(|p| p.ends_with("/states")), "{paths:#?}");
    assert_eq!(r.stdout.matches("source_unchanged: 1").count(), 3, "{r}");

    // One interest renamed: the graph compares, then reads that one row.
    s.docs()
        .update_record(
            DATA,
            "Anchor_interest",
            2,
            json!({"interest_name": "otters, mostly"}),
        )
        .unwrap();
    s.docs().reset_requests();
    let r = s.etl(&args, &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.written("grist_nodes"), (0, 1, 0), "{r}");
    assert_eq!(summary_counter(&r, "read_changes_only"), 1, "{r}");
    assert_eq!(summary_counter(&r, "rows_read_by_id"), 1, "{r}");
    let reads: Vec<String> = s
        .docs()
        .requests()
        .iter()
        .map(|q| q.path.clone())
        .filter(|p| !p.ends_with("/states"))
        .collect();
    assert_eq!(
        reads,
        [
            "/api/docs/demo-data/compare",
            "/api/docs/demo-data/tables/Anchor_interest/records"
        ],
        "{r}"
    );

    // One link removed: a delete, with no row to read.
    s.docs()
        .delete_record(DATA, "Link_person_likes_interest", 3)
        .unwrap();
    let r = s.etl(&args, &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        r.written("grist_edges").2,
        2,
        "an undirected edge and its reverse: {r}"
    );
    assert_eq!(summary_counter(&r, "read_changes_only"), 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_row_copying_another_leaves_the_first_rows_edge() {
    let s = Setup::demo().await;
    let args = step_args(&[]);
    assert_eq!(s.etl(&args, &[]).await.code, Some(0));
    let since = || async {
        s.count(
            "SELECT (attributes->>'since')::bigint FROM grist_edges \
             WHERE from_node_id = 'person:1' AND to_node_id = 'interest:1'",
        )
        .await
    };
    assert_eq!(since().await, 2018);
    // A copy of link 1 (person:1 to interest:1) with another `since`: link 1 comes first.
    let copy = s
        .docs()
        .add_record(
            DATA,
            "Link_person_likes_interest",
            json!({"from_node_id": "person:1", "to_node_id": "interest:1", "edge_label": "PERSON_likes_INTEREST", "since": 1900}),
        )
        .unwrap();
    let r = s.etl(&args, &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(since().await, 2018, "{r}");
    // The copy goes: the edge stays, link 1 still gives it.
    s.docs()
        .delete_record(DATA, "Link_person_likes_interest", copy)
        .unwrap();
    let r = s.etl(&args, &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(since().await, 2018, "{r}");
    assert_eq!(r.written("grist_edges"), (0, 0, 0), "{r}");
}

/// The change feed's deletes go through the mass-delete guard, which now counts the table only
/// as far as it decides: a refusal must still name the table's real size, and delete nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_most_links_in_grist_is_refused_naming_the_real_size_of_the_table() {
    let s = Setup::demo().await;
    let args = step_args(&[]);
    assert_eq!(s.etl(&args, &[]).await.code, Some(0));
    let before = s.count("SELECT count(*) FROM grist_edges").await;
    for id in ids(&s, "Link_person_likes_interest") {
        s.docs()
            .delete_record(DATA, "Link_person_likes_interest", id)
            .unwrap();
    }

    s.docs().reset_requests();
    let r = s.etl(&args, &[]).await;
    assert_eq!(r.code, Some(2), "{r}");
    // The deletes came from the delta: the graph's doc was compared, the link table not read.
    let paths: Vec<String> = s.docs().requests().iter().map(|q| q.path.clone()).collect();
    assert!(
        paths.contains(&"/api/docs/demo-data/compare".to_string()),
        "{paths:#?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("Link_person_likes_interest")),
        "{paths:#?}"
    );
    let out = format!("{}{}", r.stdout, r.stderr);
    let at = out
        .find("refusing to delete ")
        .unwrap_or_else(|| panic!("no refusal: {r}"));
    let words: Vec<&str> = out[at..].split_whitespace().collect();
    // "refusing to delete N of the M rows of table `grist_edges` ..."
    let deleting: i64 = words[3].parse().unwrap();
    assert_eq!(
        &words[4..10],
        ["of", "the", &before.to_string(), "rows", "of", "table"],
        "{r}"
    );
    assert!(words[10].starts_with("`grist_edges`"), "{r}");
    assert!(deleting * 2 > before, "{deleting} of {before}: {r}");
    assert_eq!(
        s.count("SELECT count(*) FROM grist_edges").await,
        before,
        "nothing deleted: {r}"
    );

    // Allowed, they go (read in full: the refused run had forgotten the extract's memo before
    // it would have written).
    let r = s.etl(&step_args(&["--allow-mass-delete"]), &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.written("grist_edges").2 as i64, deleting, "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM grist_edges").await,
        before - deleting
    );
}
