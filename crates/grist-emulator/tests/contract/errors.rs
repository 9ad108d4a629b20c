//! Errors: bad requests answer 400 (never a panic), and load errors name the file.

use grist_emulator::Emulator;
use serde_json::Value;

use crate::harness::{client, get_text, serve_recorded};

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
