//! The change feed against the recorded answers of a real Grist (`changes/` of the recordings):
//! the same edits of the `edge-cases` doc, made through the API, must give the same `/compare`
//! answers (hashes aside: the emulator's are its own), the same `/records?filter` answer, and
//! `/states` of the same shape.
//!
//! User tables' deltas must be equal, cell for cell. Of Grist's metadata tables, the emulator
//! reports `_grist_Tables` and `_grist_Tables_column` (not views, pages or sections): their
//! `tableId`/`colId` cells must be equal.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{client, get_text, send_json, serve_recorded};

fn recorded(name: &str) -> Value {
    let dir = match std::env::var_os("ETL_GRIST_RECORDED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/grist/recorded"),
    };
    let text = std::fs::read_to_string(dir.join("changes").join(name))
        .unwrap_or_else(|e| panic!("read recorded changes/{name}: {e}"));
    serde_json::from_str(&text).expect("recorded JSON")
}

/// Checks an emulator comparison against a recorded one.
fn assert_same_changes(got: &Value, want: &Value, what: &str) {
    assert_eq!(got["summary"], want["summary"], "{what}: summary");
    let (got, want) = (
        &got["details"]["rightChanges"],
        &want["details"]["rightChanges"],
    );
    assert_eq!(
        got["tableRenames"], want["tableRenames"],
        "{what}: tableRenames"
    );
    let tables = |v: &Value, meta: bool| -> Vec<String> {
        v["tableDeltas"]
            .as_object()
            .expect("tableDeltas")
            .keys()
            .filter(|t| t.starts_with("_grist_") == meta)
            .cloned()
            .collect()
    };
    assert_eq!(
        tables(got, false),
        tables(want, false),
        "{what}: user tables"
    );
    for t in tables(want, false) {
        assert_eq!(
            got["tableDeltas"][&t], want["tableDeltas"][&t],
            "{what}: delta of table {t}"
        );
    }
    for (meta, field) in [
        ("_grist_Tables", "tableId"),
        ("_grist_Tables_column", "colId"),
    ] {
        assert_eq!(
            got["tableDeltas"][meta]["columnDeltas"][field],
            want["tableDeltas"][meta]["columnDeltas"][field],
            "{what}: {meta}.{field}"
        );
    }
}

async fn json_get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let (status, text) = get_text(http, url).await;
    (status, serde_json::from_str(&text).expect("JSON answer"))
}

#[tokio::test]
async fn the_change_feed_answers_as_the_recorded_grist_does() {
    let (running, _, _) = serve_recorded(None).await;
    let http = client();
    let doc = format!("{}/api/docs/edge-cases", running.url());
    let head = |states: &Value| states["states"][0]["h"].as_str().expect("h").to_string();

    let (status, states) = json_get(&http, format!("{doc}/states")).await;
    assert_eq!(status, 200);
    let want = recorded("states-initial.json");
    let entry = &states["states"][0];
    assert!(entry["n"].is_u64() && entry["h"].as_str().is_some_and(|h| h.len() == 64));
    assert_eq!(
        entry.as_object().unwrap().keys().collect::<Vec<_>>(),
        want["states"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    let initial = head(&states);
    let initial_n = entry["n"].as_u64().unwrap();

    let (status, same) = json_get(&http, format!("{doc}/compare?left={initial}")).await;
    assert_eq!(status, 200);
    assert_same_changes(&same, &recorded("compare-same.json"), "nothing changed");
    assert_eq!(same["left"], same["right"]);

    // One cell updated.
    let (status, _) = send_json(
        &http,
        Method::PATCH,
        format!("{doc}/tables/People/records"),
        json!({"records": [{"id": 1, "fields": {"Name": "Renamed"}}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, c) = json_get(&http, format!("{doc}/compare?left={initial}")).await;
    assert_same_changes(&c, &recorded("compare-update.json"), "one cell updated");
    let after_update = c["right"]["h"].as_str().unwrap().to_string();
    assert_eq!(c["right"]["n"].as_u64(), Some(initial_n + 1));

    // A row added, a row removed.
    let (status, _) = send_json(
        &http,
        Method::POST,
        format!("{doc}/tables/People/records"),
        json!({"records": [{"fields": {"Name": "Newcomer", "Age": 22}}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send_json(
        &http,
        Method::POST,
        format!("{doc}/tables/People/records/delete"),
        json!([2]),
    )
    .await;
    assert_eq!(status, 200);
    let (_, c) = json_get(&http, format!("{doc}/compare?left={after_update}")).await;
    assert_same_changes(
        &c,
        &recorded("compare-add-remove.json"),
        "a row added and one removed",
    );
    let (_, c) = json_get(
        &http,
        format!("{doc}/compare?left={after_update}&maxRows=1"),
    )
    .await;
    assert_same_changes(
        &c,
        &recorded("compare-add-remove-maxrows.json"),
        "the same with maxRows=1",
    );
    let after_rows = c["right"]["h"].as_str().unwrap().to_string();

    // A column added, one renamed.
    let (status, _) = send_json(
        &http,
        Method::POST,
        format!("{doc}/tables/People/columns"),
        json!({"columns": [{"id": "Nick", "fields": {"type": "Text"}}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send_json(
        &http,
        Method::PATCH,
        format!("{doc}/tables/People/columns"),
        json!({"columns": [{"id": "Email", "fields": {"colId": "Mail"}}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, c) = json_get(&http, format!("{doc}/compare?left={after_rows}")).await;
    assert_same_changes(
        &c,
        &recorded("compare-columns.json"),
        "columns added and renamed",
    );
    let after_columns = c["right"]["h"].as_str().unwrap().to_string();

    // A table renamed, one added.
    let (status, _) = send_json(
        &http,
        Method::POST,
        format!("{doc}/apply"),
        json!([["RenameTable", "Projects", "Projects2"]]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send_json(
        &http,
        Method::POST,
        format!("{doc}/tables"),
        json!({"tables": [{"id": "Extra", "columns": [{"id": "X", "fields": {"type": "Text"}}]}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, c) = json_get(&http, format!("{doc}/compare?left={after_columns}")).await;
    assert_same_changes(
        &c,
        &recorded("compare-tables.json"),
        "tables renamed and added",
    );

    let (_, c) = json_get(&http, format!("{doc}/compare?left={initial}")).await;
    assert_same_changes(
        &c,
        &recorded("compare-since-upload.json"),
        "since the upload",
    );

    let zeros = "0".repeat(64);
    let (status, c) = json_get(&http, format!("{doc}/compare?left={zeros}")).await;
    assert_eq!(status, 500);
    assert_eq!(c, recorded("compare-unknown-left.json"));

    let filter = percent_encoding::utf8_percent_encode(
        r#"{"id":[1,4]}"#,
        percent_encoding::NON_ALPHANUMERIC,
    );
    let (status, r) = json_get(
        &http,
        format!("{doc}/tables/People/records?filter={filter}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(r, recorded("records-filter.json"));

    let (_, states) = json_get(&http, format!("{doc}/states")).await;
    let final_n = states["states"][0]["n"].as_u64().unwrap();
    let want = recorded("states-final.json");
    let want_steps = want["states"][0]["n"].as_u64().unwrap()
        - recorded("states-initial.json")["states"][0]["n"]
            .as_u64()
            .unwrap();
    assert_eq!(
        final_n - initial_n,
        want_steps,
        "one state per change, as in Grist"
    );
    assert_eq!(
        states["states"][1]["n"].as_u64(),
        Some(final_n - 1),
        "newest first"
    );
}

#[tokio::test]
async fn a_history_cut_short_forgets_the_old_hashes() {
    let (running, _, _) = serve_recorded(None).await;
    let http = client();
    let doc = format!("{}/api/docs/edge-cases", running.url());
    let (_, states) = json_get(&http, format!("{doc}/states")).await;
    let old = states["states"][0]["h"].as_str().unwrap().to_string();
    running
        .docs()
        .set_history_limits(grist_emulator::history::HistoryLimits {
            max_states: 2,
            ..Default::default()
        });
    for name in ["a", "b"] {
        send_json(
            &http,
            Method::PATCH,
            format!("{doc}/tables/People/records"),
            json!({"records": [{"id": 1, "fields": {"Name": name}}]}),
        )
        .await;
    }
    let (status, c) = json_get(&http, format!("{doc}/compare?left={old}")).await;
    assert_eq!((status, c), (500, json!({"error": "Cannot read hash"})));
    let (_, states) = json_get(&http, format!("{doc}/states")).await;
    assert_eq!(states["states"].as_array().unwrap().len(), 2);
}
