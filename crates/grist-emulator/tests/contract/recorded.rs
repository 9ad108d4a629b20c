//! Every recorded answer (status, content type, body) and every recorded error of a real Grist,
//! reproduced by the emulator serving the recorded folders.

use std::collections::BTreeMap;

use grist_emulator::RunningEmulator;
use serde_json::Value;

use crate::harness::{client, content_type, serve_recorded, split_request, Entry, API_KEY};

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
