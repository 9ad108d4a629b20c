//! Contract tests: the emulator, serving the recorded doc folders, must answer every recorded
//! request of a real Grist (grist-core 1.7.17) with the same status, content type and body
//! (CSV byte for byte, JSON as values); plus tests of editing through the handle, fault
//! injection, auth, and the write endpoints used to seed docs.
//!
//! The recordings come from `$ETL_GRIST_RECORDED`, by default `../shared/grist/recorded` beside
//! the workspace. They are required: a missing folder fails the tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use grist_emulator::{Column, Emulator, Fault, Record, RunningEmulator, Table};
use serde_json::{json, Value};

const API_KEY: &str = "secret-test-key";

fn recorded_dir() -> PathBuf {
    let dir = match std::env::var_os("ETL_GRIST_RECORDED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/grist/recorded"),
    };
    assert!(
        dir.join("MANIFEST.json").is_file(),
        "recorded Grist answers not found at {} (set ETL_GRIST_RECORDED to the folder holding \
         MANIFEST.json; these tests need them and do not skip)",
        dir.display()
    );
    dir
}

struct Entry {
    file: String,
    request: String,
    status: u16,
    content_type: String,
}

fn manifest(dir: &std::path::Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.json")).expect("read MANIFEST.json");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("parse MANIFEST.json");
    entries
        .into_iter()
        .map(|e| Entry {
            file: e["file"].as_str().expect("file").to_string(),
            request: e["request"].as_str().expect("request").to_string(),
            status: e["status"].as_u64().expect("status") as u16,
            content_type: e["content_type"]
                .as_str()
                .expect("content_type")
                .to_string(),
        })
        .collect()
}

/// The doc folders named by the manifest.
fn doc_dirs(dir: &std::path::Path, entries: &[Entry]) -> Vec<PathBuf> {
    let mut names: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.file.split_once('/').map(|(d, _)| d))
        .filter(|d| *d != "errors")
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|n| dir.join(n)).collect()
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

async fn serve_recorded(key: Option<&str>) -> (RunningEmulator, Vec<Entry>, PathBuf) {
    let dir = recorded_dir();
    let entries = manifest(&dir);
    let emulator = Emulator::from_dirs(&doc_dirs(&dir, &entries))
        .expect("load recorded docs")
        .with_api_key(key);
    let running = emulator.serve(localhost()).await.expect("serve");
    (running, entries, dir)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// "GET /api/docs/{docId}/..." -> ("GET", "/api/docs/{docId}/...").
fn split_request(request: &str) -> (&str, &str) {
    request.split_once(' ').expect("METHOD PATH")
}

#[tokio::test]
async fn every_recorded_answer_is_reproduced() {
    let (running, entries, dir) = serve_recorded(None).await;
    let http = client();
    let mut checked = 0;
    let mut failures = Vec::new();
    for e in entries.iter().filter(|e| !e.file.starts_with("errors/")) {
        let (doc, _) = e.file.split_once('/').expect("doc/file");
        let (method, path) = split_request(&e.request);
        assert_eq!(method, "GET");
        let url = format!("{}{}", running.url(), path.replace("{docId}", doc));
        let resp = http.get(&url).send().await.expect("request");
        let status = resp.status().as_u16();
        let ctype = content_type(&resp);
        let body = resp.bytes().await.expect("body");
        let expected = std::fs::read(dir.join(&e.file)).expect("recorded file");
        if status != e.status {
            failures.push(format!(
                "{}: status {status}, recorded {}",
                e.file, e.status
            ));
            continue;
        }
        if ctype != e.content_type {
            failures.push(format!(
                "{}: content type {ctype:?}, recorded {:?}",
                e.file, e.content_type
            ));
        }
        if e.file.ends_with(".csv") {
            if body.as_ref() != expected.as_slice() {
                failures.push(format!(
                    "{}: CSV differs\n--- emulator\n{}\n--- recorded\n{}",
                    e.file,
                    String::from_utf8_lossy(&body),
                    String::from_utf8_lossy(&expected)
                ));
            }
        } else {
            let got: Value = serde_json::from_slice(&body).expect("emulator JSON");
            let want: Value = serde_json::from_slice(&expected).expect("recorded JSON");
            if got == want && body.as_ref() != expected.as_slice() {
                // Same values; the emulator also keeps Grist's key order and formatting.
                failures.push(format!("{}: same JSON values, different bytes", e.file));
            }
            if got != want {
                failures.push(format!(
                    "{}: JSON differs\n--- emulator\n{got}\n--- recorded\n{want}",
                    e.file
                ));
            }
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // 4 docs, 15 tables x 4 files + 4 tables.json.
    assert!(checked >= 60, "only {checked} recorded answers checked");
    running.shutdown().await;
}

/// Maps the real doc ids in the error requests to the emulator's doc ids: a real id is the
/// doc holding the table the request names.
fn map_doc_ids(
    dir: &std::path::Path,
    entries: &[Entry],
    running: &RunningEmulator,
) -> BTreeMap<String, String> {
    let docs = running.docs();
    let mut map = BTreeMap::new();
    for e in entries.iter().filter(|e| e.file.starts_with("errors/")) {
        // Requests the real Grist did not find a doc for name no doc.
        let body = std::fs::read_to_string(dir.join(&e.file)).expect("recorded file");
        if body.contains("document not found") {
            continue;
        }
        let (_, path) = split_request(&e.request);
        let Some(rest) = path.strip_prefix("/api/docs/") else {
            continue;
        };
        let real = rest.split('/').next().unwrap_or("").to_string();
        let table = path
            .split("tableId=")
            .nth(1)
            .map(|t| t.split('&').next().unwrap_or(""))
            .unwrap_or("");
        if table.is_empty() {
            continue;
        }
        if let Some(doc) = docs
            .doc_ids()
            .into_iter()
            .find(|d| docs.table(d, table).is_some())
        {
            map.insert(real, doc);
        }
    }
    map
}

#[tokio::test]
async fn every_recorded_error_is_reproduced() {
    let (running, entries, dir) = serve_recorded(Some(API_KEY)).await;
    let ids = map_doc_ids(&dir, &entries, &running);
    let http = client();
    let mut checked = 0;
    let mut failures = Vec::new();
    for e in entries.iter().filter(|e| e.file.starts_with("errors/")) {
        let (method, path) = split_request(&e.request);
        assert_eq!(method, "GET");
        let mut path = path.to_string();
        for (real, ours) in &ids {
            path = path.replace(&format!("/api/docs/{real}/"), &format!("/api/docs/{ours}/"));
        }
        let name = e
            .file
            .trim_start_matches("errors/")
            .trim_end_matches(".json");
        let auth = match name {
            "invalid-key" => Some(format!("Bearer not-{API_KEY}")),
            "no-bearer" => Some("Basic dXNlcjpwYXNzd29yZA==".to_string()),
            "no-credentials" => None,
            _ => Some(format!("Bearer {API_KEY}")),
        };
        let mut req = http.get(format!("{}{path}", running.url()));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let ctype = content_type(&resp);
        let body = resp.bytes().await.expect("body");
        let expected = std::fs::read(dir.join(&e.file)).expect("recorded file");
        if status != e.status || body.as_ref() != expected.as_slice() || ctype != e.content_type {
            failures.push(format!(
                "{} ({path}): got {status} {ctype:?} {:?}, recorded {} {:?} {:?}",
                e.file,
                String::from_utf8_lossy(&body),
                e.status,
                e.content_type,
                String::from_utf8_lossy(&expected)
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 11, "error recordings replayed");
    running.shutdown().await;
}

#[tokio::test]
async fn right_key_is_accepted_and_no_key_means_no_auth() {
    let (keyed, _, _) = serve_recorded(Some(API_KEY)).await;
    let http = client();
    let url = format!("{}/api/docs/edge-cases/tables", keyed.url());
    let ok = http
        .get(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status().as_u16(), 200);
    let anon = http
        .get(format!("{}/api/docs/NoSuchDoc/tables", keyed.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(anon.status().as_u16(), 404);
    keyed.shutdown().await;

    let (open, _, _) = serve_recorded(None).await;
    for auth in [None, Some("Bearer whatever"), Some("Basic abc")] {
        let mut req = http.get(format!("{}/api/docs/edge-cases/tables", open.url()));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        assert_eq!(
            req.send().await.expect("request").status().as_u16(),
            200,
            "{auth:?}"
        );
    }
    open.shutdown().await;
}

#[tokio::test]
async fn columns_without_hidden_leave_out_helpers() {
    let (running, _, _) = serve_recorded(None).await;
    let http = client();
    let get = |hidden: bool| {
        let url = format!(
            "{}/api/docs/edge-cases/tables/Tasks/columns{}",
            running.url(),
            if hidden { "?hidden=true" } else { "" }
        );
        let http = http.clone();
        async move {
            let v: Value = http
                .get(url)
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            v["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| c["id"].as_str().expect("id").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        get(false).await,
        ["What", "OwnerRaw", "OwnerVis", "OwnerDisp", "HelpersDisp"]
    );
    let all = get(true).await;
    assert_eq!(all.len(), 8);
    assert!(all.contains(&"manualSort".to_string()));
    assert!(all.contains(&"gristHelper_Display2".to_string()));
    running.shutdown().await;
}

async fn get_text(http: &reqwest::Client, url: String) -> (u16, String) {
    let resp = http.get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("text"))
}

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

async fn send_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> (u16, Value) {
    let resp = http
        .request(method, url)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("text");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn seeding_a_doc_through_the_write_endpoints() {
    let running = Emulator::new().serve(localhost()).await.expect("serve");
    let http = client();
    let base = running.url();
    use reqwest::Method;

    let workspaces: Value = http
        .get(format!("{base}/api/orgs/current/workspaces"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let ws = workspaces[0]["id"].as_i64().expect("workspace id");
    assert_eq!(ws, 1);

    let (status, doc) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/workspaces/{ws}/docs"),
        json!({"name": "Seeded"}),
    )
    .await;
    assert_eq!(status, 200);
    let doc = doc.as_str().expect("doc id as a JSON string").to_string();

    let (status, tables) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/tables"),
        json!({"tables": [
            {"id": "Anchors", "columns": [
                {"id": "noun", "fields": {"label": "noun", "type": "Text"}},
                {"id": "weight", "fields": {"label": "Weight", "type": "Numeric"}},
            ]},
            {"id": "Attributes", "columns": [
                {"id": "name", "fields": {"type": "Text"}},
                {"id": "anchor", "fields": {"type": "Ref:Anchors", "visibleCol": "noun"}},
                {"id": "raw", "fields": {"type": "Ref:Anchors"}},
                {"id": "others", "fields": {"type": "RefList:Anchors"}},
                {"id": "on", "fields": {"type": "Bool"}},
                {"id": "since", "fields": {"type": "Date"}},
                {"id": "nounCopy", "fields": {"type": "Any", "isFormula": true, "formula": "$anchor.noun"}},
            ]},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{tables}");
    assert_eq!(
        tables,
        json!({"tables": [{"id": "Anchors"}, {"id": "Attributes"}]})
    );

    let (status, ids) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/tables/Anchors/records"),
        json!({"records": [{"fields": {"noun": "person", "weight": 0.5}}, {"fields": {"noun": "interest, hobby"}}]}),
    )
    .await;
    assert_eq!(
        (status, ids),
        (200, json!({"records": [{"id": 1}, {"id": 2}]}))
    );
    let (status, ids) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/tables/Attributes/records"),
        json!({"records": [
            {"fields": {"name": "person_id", "anchor": 1, "raw": 1, "others": ["L", 1, 2], "on": true, "since": 1705276800}},
            {"fields": {"name": "blank"}},
        ]}),
    )
    .await;
    assert_eq!(
        (status, ids),
        (200, json!({"records": [{"id": 1}, {"id": 2}]}))
    );

    // RefList shows display values once it has a display formula (the real-Grist way).
    let columns: Value = http
        .get(format!(
            "{base}/api/docs/{doc}/tables/Attributes/columns?hidden=true"
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let col = |id: &str| {
        columns["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(columns["columns"][0]["id"], "manualSort");
    let helper = col("gristHelper_Display");
    assert_eq!(helper["fields"]["formula"], "$anchor.noun");
    assert_eq!(
        col("anchor")["fields"]["displayCol"],
        helper["fields"]["colRef"]
    );
    let noun_ref = {
        let anchors: Value = http
            .get(format!("{base}/api/docs/{doc}/tables/Anchors/columns"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        anchors["columns"][0]["fields"]["colRef"].clone()
    };
    assert_eq!(col("anchor")["fields"]["visibleCol"], noun_ref);
    let others_ref = col("others")["fields"]["colRef"].clone();
    let others_table_ref = col("others")["fields"]["parentId"].clone();
    let (status, _) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/apply"),
        json!([
            ["UpdateRecord", "_grist_Tables_column", others_ref, {"visibleCol": noun_ref}],
            ["SetDisplayFormula", "Attributes", null, others_ref, "$others.noun"],
        ]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(others_table_ref.as_i64().is_some_and(|r| r > 0));

    let csv =
        |header: &str| format!("{base}/api/docs/{doc}/download/csv?tableId=Attributes{header}");
    let (status, labels) = get_text(&http, csv("")).await;
    assert_eq!(status, 200);
    assert_eq!(
        labels,
        "name,anchor,raw,others,on,since,nounCopy\n\
         person_id,person,Anchors[1],\"person, \"\"interest, hobby\"\"\",true,2024-01-15,person\n\
         blank,,,,false,,\n"
    );
    let (_, col_ids) = get_text(&http, csv("&header=colId")).await;
    assert_eq!(
        col_ids.lines().next(),
        Some("name,gristHelper_Display,raw,gristHelper_Display2,on,since,nounCopy")
    );
    let (_, anchors) = get_text(
        &http,
        format!("{base}/api/docs/{doc}/download/csv?tableId=Anchors"),
    )
    .await;
    assert_eq!(anchors, "noun,Weight\nperson,0.5\n\"interest, hobby\",0\n");

    // Update and read back as records.
    let (status, _) = send_json(
        &http,
        Method::PATCH,
        format!("{base}/api/docs/{doc}/tables/Anchors/records"),
        json!({"records": [{"id": 2, "fields": {"noun": "interest"}}]}),
    )
    .await;
    assert_eq!(status, 200);
    let recs: Value = http
        .get(format!("{base}/api/docs/{doc}/tables/Attributes/records"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(recs["records"][0]["fields"]["nounCopy"], "person");
    assert_eq!(recs["records"][0]["fields"]["others"], json!(["L", 1, 2]));
    assert!(recs["records"][0]["fields"]
        .get("gristHelper_Display")
        .is_none());

    // The tables listing has both tables.
    let tables: Value = http
        .get(format!("{base}/api/docs/{doc}/tables"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(tables["tables"].as_array().map(Vec::len), Some(2));
    running.shutdown().await;
}

#[tokio::test]
async fn bad_requests_answer_400_not_panics() {
    let (running, _, _) = serve_recorded(None).await;
    let http = client();
    let base = running.url();
    let bad_bodies = [
        (
            reqwest::Method::POST,
            "/api/docs/edge-cases/tables/People/records",
            "not json",
        ),
        (
            reqwest::Method::POST,
            "/api/docs/edge-cases/tables/People/records",
            "{\"records\": 5}",
        ),
        (
            reqwest::Method::POST,
            "/api/docs/edge-cases/tables/People/records",
            "{\"records\": [{\"fields\": {\"Nope\": 1}}]}",
        ),
        (
            reqwest::Method::PATCH,
            "/api/docs/edge-cases/tables/People/records",
            "{\"records\": [{\"fields\": {}}]}",
        ),
        (
            reqwest::Method::POST,
            "/api/docs/edge-cases/tables",
            "{\"tables\": [{\"id\": \"X\", \"columns\": 3}]}",
        ),
        (
            reqwest::Method::POST,
            "/api/docs/edge-cases/apply",
            "[[\"Frobnicate\"]]",
        ),
        (reqwest::Method::POST, "/api/docs/edge-cases/apply", "[5]"),
        (
            reqwest::Method::POST,
            "/api/workspaces/1/docs",
            "{\"name\": 5}",
        ),
    ];
    for (method, path, body) in bad_bodies {
        let resp = http
            .request(method.clone(), format!("{base}{path}"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 400, "{method} {path} {body}");
        let v: Value = resp.json().await.expect("JSON error");
        assert!(v["error"].is_string());
    }
    // Nothing was half-applied.
    assert!(running.docs().table("edge-cases", "X").is_none());
    let (status, _) = get_text(
        &http,
        format!("{base}/api/docs/edge-cases/tables/People/records?filter=%7Bbad"),
    )
    .await;
    assert_eq!(status, 400);
    running.shutdown().await;
}

#[tokio::test]
async fn load_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("grist-emulator-bad-{}", std::process::id()));
    let doc = dir.join("broken-doc");
    std::fs::create_dir_all(&doc).expect("mkdir");
    std::fs::write(doc.join("T.columns.json"), "{\"columns\": [").expect("write");
    let err = Emulator::from_dirs(&[&doc]).expect_err("broken JSON");
    assert!(err.to_string().contains("T.columns.json"), "{err}");
    std::fs::write(doc.join("T.columns.json"), "{\"columns\": []}").expect("write");
    std::fs::write(doc.join("U.records.json"), "{\"records\": []}").expect("write");
    let err = Emulator::from_dirs(&[&doc]).expect_err("records without columns");
    assert!(err.to_string().contains("U.records.json"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Seeds a copy of a loaded doc into an empty emulator the way a seeding client does with a
/// real Grist (tables with their columns, data records with remapped references, then
/// `visibleCol` and display formulas through `/apply`); returns the new doc id.
async fn seed_copy(http: &reqwest::Client, base: &str, source: &grist_emulator::Doc) -> String {
    use reqwest::Method;
    let (_, doc) = send_json(
        http,
        Method::POST,
        format!("{base}/api/workspaces/1/docs"),
        json!({"name": source.name}),
    )
    .await;
    let doc = doc.as_str().expect("doc id").to_string();
    let mut new_ids: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    let target_of = |c: &Column| {
        let t = c.col_type();
        t.strip_prefix("Ref:")
            .or_else(|| t.strip_prefix("RefList:"))
            .map(str::to_string)
    };
    // Referenced tables first.
    let mut order: Vec<&Table> = Vec::new();
    while order.len() < source.tables.len() {
        for t in &source.tables {
            if order.iter().any(|o| o.id == t.id) {
                continue;
            }
            let ready = t.columns.iter().filter_map(target_of).all(|target| {
                target == t.id
                    || order.iter().any(|o| o.id == target)
                    || source.table(&target).is_none()
            });
            if ready {
                order.push(t);
            }
        }
    }
    for table in order {
        let columns: Vec<Value> = table
            .columns
            .iter()
            .filter(|c| !c.is_hidden())
            .map(|c| {
                json!({"id": c.id, "fields": {
                    "label": c.label(), "type": c.col_type(), "isFormula": c.is_formula(), "formula": c.formula(),
                }})
            })
            .collect();
        let (status, answer) = send_json(
            http,
            Method::POST,
            format!("{base}/api/docs/{doc}/tables"),
            json!({"tables": [{"id": table.id, "columns": columns}]}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let data: Vec<&Column> = table
            .columns
            .iter()
            .filter(|c| !c.is_hidden() && !c.is_formula())
            .collect();
        let remap = |v: &Value, target: &str| -> Value {
            let one = |id: i64| {
                new_ids
                    .get(target)
                    .and_then(|m| m.get(&id))
                    .copied()
                    .unwrap_or(id)
            };
            match v {
                Value::Number(n) if n.as_i64().is_some_and(|i| i > 0) => {
                    json!(one(n.as_i64().unwrap_or(0)))
                }
                Value::Array(items) if items.first() == Some(&json!("L")) => {
                    let mut out = vec![json!("L")];
                    out.extend(
                        items[1..]
                            .iter()
                            .map(|i| i.as_i64().map_or(i.clone(), |id| json!(one(id)))),
                    );
                    Value::Array(out)
                }
                other => other.clone(),
            }
        };
        let mut records: Vec<&Record> = table.records.iter().collect();
        records.sort_by_key(|r| r.id);
        let body: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut fields = serde_json::Map::new();
                for c in &data {
                    if let Some(v) = r.fields.get(&c.id) {
                        let v = match target_of(c) {
                            Some(target) => remap(v, &target),
                            None => v.clone(),
                        };
                        fields.insert(c.id.clone(), v);
                    }
                }
                json!({"fields": fields})
            })
            .collect();
        let (status, answer) = send_json(
            http,
            Method::POST,
            format!("{base}/api/docs/{doc}/tables/{}/records", table.id),
            json!({"records": body}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let created: Vec<i64> = answer["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect();
        new_ids.insert(
            table.id.clone(),
            records.iter().map(|r| r.id).zip(created).collect(),
        );
    }
    let mut actions = Vec::new();
    for table in &source.tables {
        let cols: Value = http
            .get(format!("{base}/api/docs/{doc}/tables/{}/columns", table.id))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        for c in &table.columns {
            // Every shown column (with or without a display formula) is carried over.
            let Some(target) = target_of(c) else {
                continue;
            };
            let helper = table.column_by_ref(c.display_col());
            let Some(shown) = source
                .table(&target)
                .and_then(|t| t.column_by_ref(c.visible_col()))
            else {
                continue;
            };
            let new_ref = cols["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .find(|x| x["id"] == c.id.as_str())
                .map(|x| x["fields"]["colRef"].clone());
            let target_cols: Value = http
                .get(format!("{base}/api/docs/{doc}/tables/{target}/columns"))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            let shown_ref = target_cols["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .find(|x| x["id"] == shown.id.as_str())
                .map(|x| x["fields"]["colRef"].clone());
            if let (Some(col_ref), Some(shown_ref)) = (new_ref, shown_ref) {
                actions.push(json!(["UpdateRecord", "_grist_Tables_column", col_ref, {"visibleCol": shown_ref}]));
                if let Some(helper) = helper {
                    actions.push(json!([
                        "SetDisplayFormula",
                        table.id,
                        null,
                        col_ref,
                        helper.formula()
                    ]));
                }
            }
        }
    }
    let (status, answer) = send_json(
        http,
        Method::POST,
        format!("{base}/api/docs/{doc}/apply"),
        Value::Array(actions),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    doc
}

#[tokio::test]
async fn a_seeded_copy_renders_like_the_recording() {
    let (recorded, _, dir) = serve_recorded(None).await;
    let empty = Emulator::new().serve(localhost()).await.expect("serve");
    let http = client();
    for doc_id in ["edge-cases", "vedana-demo-data-model"] {
        let source = recorded.docs().doc(doc_id).expect("doc");
        let copy = seed_copy(&http, &empty.url(), &source).await;
        for table in &source.tables {
            // Formulas the emulator cannot evaluate (`1/0 if ...`, lookups) are left out.
            let skip: Vec<usize> = table
                .columns_in_position_order()
                .into_iter()
                .filter(|c| !c.is_hidden())
                .enumerate()
                .filter(|(_, c)| {
                    c.is_formula() && !c.formula().is_empty() && !c.formula().starts_with('$')
                })
                .map(|(i, _)| i)
                .collect();
            let strip = |csv: &str| -> Vec<Vec<String>> {
                let mut rows = Vec::new();
                let mut reader = csv_rows(csv);
                for row in reader.drain(..) {
                    rows.push(
                        row.into_iter()
                            .enumerate()
                            .filter(|(i, _)| !skip.contains(i))
                            .map(|(_, v)| v)
                            .collect(),
                    );
                }
                rows
            };
            let (status, got) = get_text(
                &http,
                format!(
                    "{}/api/docs/{copy}/download/csv?tableId={}",
                    empty.url(),
                    table.id
                ),
            )
            .await;
            assert_eq!(status, 200);
            let want = std::fs::read_to_string(dir.join(doc_id).join(format!("{}.csv", table.id)))
                .expect("recorded csv");
            assert_eq!(strip(&got), strip(&want), "{doc_id}/{}", table.id);
        }
    }
    recorded.shutdown().await;
    empty.shutdown().await;
}

/// A small RFC 4180 reader, for comparing CSVs cell by cell.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}
