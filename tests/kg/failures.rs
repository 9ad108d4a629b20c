//! Failures on the Grist side: a failure in the middle of a run deletes nothing and the next
//! run recovers, brief `SQLITE_BUSY` and server errors are retried past, and a wrong key, doc
//! or table gives a message that says what to check.

use std::time::Duration;

use crate::support::{demo_docs, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grist_failure_in_the_middle_of_a_run_deletes_nothing_and_the_next_run_recovers() {
    let s = Setup::demo().await;
    s.run().await;
    let edges = s.count("SELECT count(*) FROM edges").await;
    // Remove rows in Grist, then make the link table fail: 500s, then timeouts.
    s.docs()
        .delete_record("demo-data", "Anchor_person", 1)
        .unwrap();
    s.docs()
        .delete_record("demo-data", "Link_person_likes_interest", 2)
        .unwrap();
    for fault in ["500", "timeout"] {
        match fault {
            "500" => s
                .docs()
                .fail_next_for_table(100, "Link_person_likes_interest"),
            _ => s.docs().delay_next(
                100,
                Duration::from_secs(3),
                Some("Link_person_likes_interest"),
            ),
        }
        let r = s.etl(&["run"], &[("GRIST_TIMEOUT_SECS", "1")]).await;
        assert_eq!(r.code, Some(2), "{fault}: {r}");
        assert!(
            r.stdout.contains("grist_graph") && r.stdout.contains("FAILED"),
            "{r}"
        );
        assert_eq!(
            s.count("SELECT count(*) FROM nodes WHERE node_id = 'person:1'")
                .await,
            1,
            "{fault}: nothing deleted"
        );
        assert_eq!(
            s.count("SELECT count(*) FROM edges").await,
            edges,
            "{fault}: nothing deleted"
        );
        s.docs().clear_faults();
    }
    let r = s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE node_id = 'person:1'")
            .await,
        0,
        "{r}"
    );
    // person:1 had 2 likes (4 edges) and a city; the deleted link row was person:1's as well.
    assert_eq!(
        s.count("SELECT count(*) FROM edges").await,
        edges - 5,
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brief_sqlite_busy_and_server_errors_are_ridden_out() {
    let s = Setup::demo().await;
    s.docs().busy_next(2, Some("Anchor_person"));
    s.docs()
        .fail_next_for_table(2, "Link_person_likes_interest");
    let r = s.run().await;
    assert_eq!(
        s.docs().pending_faults(),
        0,
        "every fault was met and retried past:\n{r}"
    );
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, 34);
    assert_eq!(s.count("SELECT count(*) FROM edges").await, 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_doc_or_table_tell_the_user_what_to_check() {
    let grist = demo_docs().with_api_key(Some("right-key"));
    let s = Setup::new(grist, ["demo-data-model", "demo-data", "demo-test-set"]).await;

    let r = s
        .etl(&["run"], &[("GRIST_API_KEY", "wrong-key-1234")])
        .await;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(
        r.stdout
            .contains("Grist rejected the API key for doc `demo-data-model`"),
        "{r}"
    );
    assert!(r.stdout.contains("check GRIST_API_KEY"), "{r}");
    assert!(
        !r.stdout.contains("wrong-key-1234") && !r.stderr.contains("wrong-key-1234"),
        "the key leaked:\n{r}"
    );

    let r = s
        .etl(
            &["run"],
            &[
                ("GRIST_API_KEY", "right-key"),
                ("GRIST_DATA_DOC_ID", "no-such-doc"),
            ],
        )
        .await;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stdout.contains("doc `no-such-doc` not found"), "{r}");
    assert!(
        r.stdout.contains("check the doc id (GRIST_*_DOC_ID)"),
        "{r}"
    );

    let r = s
        .etl(
            &["run"],
            &[
                ("GRIST_API_KEY", "right-key"),
                ("GRIST_TEST_SET_TABLE", "gds"),
            ],
        )
        .await;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(
        r.stdout.contains("table `gds` not found in doc `demo-test-set` (table ids are case-sensitive; did you mean `Gds`?)"),
        "{r}"
    );

    // With the right key, everything works, and `etl check` reaches every doc.
    let r = s.etl(&["check"], &[("GRIST_API_KEY", "right-key")]).await;
    assert_eq!(r.code, Some(0), "{r}");
    let r = s.etl(&["run"], &[("GRIST_API_KEY", "right-key")]).await;
    assert_eq!(r.code, Some(0), "{r}");
}
