//! The workspace and doc endpoints: the one workspace (listed per org or plainly, or fetched by
//! id), and getting, creating and deleting docs.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::answers::{emulator_error, error_answer, json_answer, respond};
use super::doc_access::with_doc;
use super::request::parse_body;
use crate::docs::Docs;
use crate::error::EmulatorError;
use crate::model::Doc;
use crate::seed;

/// The one workspace the emulator has.
const WORKSPACE_ID: i64 = 1;

fn doc_summaries(docs: &Docs) -> Vec<Value> {
    docs.read(|all| {
        all.values()
            .map(|d| json!({"id": d.id, "name": d.name, "access": "owners", "isPinned": false, "urlId": null}))
            .collect()
    })
}

fn workspace(docs: &Docs) -> Value {
    json!({
        "id": WORKSPACE_ID,
        "name": "Home",
        "access": "owners",
        "docs": doc_summaries(docs),
        "isSupportWorkspace": false,
        "orgDomain": "docs",
    })
}

pub(super) async fn list_workspaces(
    State(docs): State<Docs>,
    UrlPath(_org): UrlPath<String>,
) -> Response {
    json_answer(&json!([workspace(&docs)]))
}

pub(super) async fn list_workspaces_plain(State(docs): State<Docs>) -> Response {
    json_answer(&json!([workspace(&docs)]))
}

fn check_workspace(ws: &str) -> Result<(), EmulatorError> {
    if ws.parse::<i64>().ok() == Some(WORKSPACE_ID) {
        Ok(())
    } else {
        Err(EmulatorError::bad_request("workspace not found"))
    }
}

pub(super) async fn get_workspace(
    State(docs): State<Docs>,
    UrlPath(ws): UrlPath<String>,
) -> Response {
    match check_workspace(&ws) {
        Ok(()) => {
            let mut w = workspace(&docs);
            w["org"] = json!({"id": 1, "name": "Personal", "domain": "docs"});
            json_answer(&w)
        }
        Err(_) => error_answer(404, "workspace not found"),
    }
}

pub(super) async fn create_doc(
    State(docs): State<Docs>,
    UrlPath(ws): UrlPath<String>,
    body: Bytes,
) -> Response {
    if check_workspace(&ws).is_err() {
        return error_answer(404, "workspace not found");
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return emulator_error(&e),
    };
    let name = match body.get("name") {
        None | Some(Value::Null) => "Untitled document".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return error_answer(400, &format!("Invalid doc name: {other}")),
    };
    let id = loop {
        let id = seed::new_doc_id();
        if docs.doc(&id).is_none() {
            break id;
        }
    };
    let mut doc = Doc::new(id.clone());
    doc.name = name;
    docs.insert_doc(doc);
    json_answer(&id)
}

pub(super) async fn get_doc(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
) -> Response {
    respond(with_doc(&docs, &doc_id, |doc| {
        Ok(json!({
            "id": doc.id,
            "name": doc.name,
            "access": "owners",
            "isPinned": false,
            "urlId": null,
            "workspace": {"id": WORKSPACE_ID, "name": "Home", "org": {"id": 1, "name": "Personal", "domain": "docs"}},
        }))
    }))
}

pub(super) async fn delete_doc(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
) -> Response {
    if docs.remove_doc(&doc_id) {
        json_answer(&Value::Null)
    } else {
        emulator_error(&EmulatorError::UnknownDoc(doc_id))
    }
}
