//! The shared harness: the recorded folders (`$ETL_GRIST_RECORDED`) and their manifest, an
//! emulator serving them, and the HTTP client and request helpers the tests use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use grist_emulator::{Emulator, RunningEmulator};
use serde_json::Value;

pub const API_KEY: &str = "secret-test-key";

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

pub struct Entry {
    pub file: String,
    pub request: String,
    pub status: u16,
    pub content_type: String,
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

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

pub async fn serve_recorded(key: Option<&str>) -> (RunningEmulator, Vec<Entry>, PathBuf) {
    let dir = recorded_dir();
    let entries = manifest(&dir);
    let emulator = Emulator::from_dirs(&doc_dirs(&dir, &entries))
        .expect("load recorded docs")
        .with_api_key(key);
    let running = emulator.serve(localhost()).await.expect("serve");
    (running, entries, dir)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// "GET /api/docs/{docId}/..." -> ("GET", "/api/docs/{docId}/...").
pub fn split_request(request: &str) -> (&str, &str) {
    request.split_once(' ').expect("METHOD PATH")
}

pub async fn get_text(http: &reqwest::Client, url: String) -> (u16, String) {
    let resp = http.get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("text"))
}

pub async fn send_json(
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
