//! The `Docs` handle: edits through it show in the next request; injected faults and request
//! counts.

use std::time::Duration;

use grist_emulator::{Column, Fault, Record, Table};
use serde_json::{json, Value};

use crate::harness::{client, get_text, serve_recorded};

#[tokio::test]
async fn edits_through_the_handle_show_in_the_next_request() {
    let (running, _, _) = serve_recorded(None).await;
    let docs = running.docs().clone();
    let http = client();
    let csv = |table: &str| {
        format!(
            "{}/api/docs/edge-cases/download/csv?tableId={table}",
            running.url()
        )
    };

    // Update one record: the Ref display values of other tables follow.
    docs.update_record("edge-cases", "People", 2, json!({"Name": "Robert"}))
        .expect("update");
    let (_, tasks) = get_text(&http, csv("Tasks")).await;
    assert_eq!(
        tasks,
        "What,OwnerRaw,OwnerVis,OwnerDisp,HelpersDisp\nt1,People[2],2,Robert,\"Alice, Robert\"\nt2,,0,,\nt3,People[99],99,,\n"
    );

    // Add a record: id max + 1.
    let id = docs
        .add_record(
            "edge-cases",
            "People",
            json!({"Name": "Dan", "Age": 5, "Email": ""}),
        )
        .expect("add");
    assert_eq!(id, 4);
    let (_, people) = get_text(&http, csv("People")).await;
    assert!(people.ends_with("Dan,5,\n"), "{people}");

    // Delete a record.
    docs.delete_record("edge-cases", "People", 1)
        .expect("delete");
    let (_, people) = get_text(&http, csv("People")).await;
    assert!(!people.contains("Alice"), "{people}");
    assert!(docs.delete_record("edge-cases", "People", 1).is_err());

    // Replace all records.
    docs.set_records(
        "edge-cases",
        "People",
        vec![Record::new(7, json!({"Name": "Solo", "Age": 1, "Email": "s@x"})).expect("record")],
    )
    .expect("set");
    let (_, people) = get_text(&http, csv("People")).await;
    assert_eq!(people, "Name,Age,E-mail address\nSolo,1,s@x\n");
    let recs: Value = http
        .get(format!(
            "{}/api/docs/edge-cases/tables/People/records",
            running.url()
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        recs,
        json!({"records": [{"id": 7, "fields": {"Name": "Solo", "Age": 1, "Email": "s@x"}}]})
    );

    // Replace columns: a new label, a dropped column.
    let mut columns = docs.table("edge-cases", "People").expect("table").columns;
    columns.retain(|c| c.id != "Email");
    if let Some(age) = columns.iter_mut().find(|c| c.id == "Age") {
        age.fields.insert("label".into(), json!("Years"));
    }
    docs.replace_columns("edge-cases", "People", columns)
        .expect("columns");
    let (_, people) = get_text(&http, csv("People")).await;
    assert_eq!(people, "Name,Years\nSolo,1\n");

    // Add and remove a table.
    let table = Table::new(
        "Extra",
        vec![Column::new("A", "Text"), Column::new("N", "Numeric")],
        vec![Record::new(1, json!({"A": "x", "N": 2.5})).expect("record")],
    );
    docs.add_table("edge-cases", table).expect("add table");
    let (status, extra) = get_text(&http, csv("Extra")).await;
    assert_eq!((status, extra.as_str()), (200, "A,N\nx,2.5\n"));
    let tables: Value = http
        .get(format!("{}/api/docs/edge-cases/tables", running.url()))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(tables["tables"][4]["id"], "Extra");
    assert_eq!(tables["tables"][4]["fields"]["tableRef"], 5);
    docs.remove_table("edge-cases", "Extra")
        .expect("remove table");
    let (status, body) = get_text(&http, csv("Extra")).await;
    assert_eq!(
        (status, body.as_str()),
        (404, "{\"error\":\"Table Extra not found.\"}")
    );
    running.shutdown().await;
}

#[tokio::test]
async fn injected_faults_and_request_counts() {
    let (running, _, _) = serve_recorded(None).await;
    let docs = running.docs().clone();
    let http = client();
    let base = running.url();
    let csv =
        |table: &str| format!("{base}/api/docs/vedana-demo-data/download/csv?tableId={table}");

    docs.fail_next(2);
    for _ in 0..2 {
        let (status, body) = get_text(&http, csv("Anchor_person")).await;
        assert_eq!(status, 500);
        let v: Value = serde_json::from_str(&body).expect("JSON error body");
        assert!(v["error"].is_string());
    }
    assert_eq!(get_text(&http, csv("Anchor_person")).await.0, 200);

    // Only requests about one table.
    docs.busy_next(1, Some("Anchor_interest"));
    assert_eq!(get_text(&http, csv("Anchor_person")).await.0, 200);
    let (status, body) = get_text(
        &http,
        format!("{base}/api/docs/vedana-demo-data/tables/Anchor_interest/records"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (500, "{\"error\":\"SQLITE_BUSY: database is locked\"}")
    );
    assert_eq!(get_text(&http, csv("Anchor_interest")).await.0, 200);
    assert_eq!(docs.pending_faults(), 0);

    // A delay long enough for the client to give up.
    docs.inject(Fault::delay(1, Duration::from_secs(3)).for_table("Gds"));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = impatient
        .get(format!(
            "{base}/api/docs/vedana-demo-gds/download/csv?tableId=Gds"
        ))
        .send()
        .await
        .expect_err("should time out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        get_text(
            &http,
            format!("{base}/api/docs/vedana-demo-gds/download/csv?tableId=Gds")
        )
        .await
        .0,
        200
    );

    // Counters per path.
    let path = "/api/docs/vedana-demo-data/download/csv";
    assert_eq!(docs.request_count(path), 5);
    assert_eq!(
        docs.request_count("/api/docs/vedana-demo-data/tables/Anchor_interest/records"),
        1
    );
    assert!(docs
        .requests()
        .iter()
        .any(|r| r.table.as_deref() == Some("Anchor_interest") && r.query.is_none()));
    docs.reset_requests();
    assert_eq!(docs.request_count(path), 0);
    running.shutdown().await;
}
