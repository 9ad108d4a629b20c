//! The request gate, the middleware every request passes before its handler: it logs the
//! request (with the doc and table it is about), applies an injected fault, and checks the API
//! key with Grist's exact answers to missing or bad credentials.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::answers::{answer, error_answer, JSON_TYPE};
use super::request::{percent_decode, query_pairs, query_param};
use crate::docs::Docs;
use crate::fault::{FaultKind, RequestInfo};

/// The doc and table a request is about, from its path or its `tableId` parameter.
fn request_target(path: &str, query: Option<&str>) -> (Option<String>, Option<String>) {
    let segments: Vec<&str> = path.split('/').collect();
    let doc = match segments.as_slice() {
        ["", "api", "docs", doc, ..] => Some(percent_decode(doc)),
        _ => None,
    };
    let table = match segments.as_slice() {
        ["", "api", "docs", _, "tables", table, ..] => Some(percent_decode(table)),
        _ => query_param(&query_pairs(query), "tableId").map(str::to_string),
    };
    (doc, table)
}

pub(super) async fn gate(State(docs): State<Docs>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let (doc, table) = request_target(&path, query.as_deref());
    docs.log_request(RequestInfo {
        method: req.method().to_string(),
        path,
        query,
        table: table.clone(),
    });
    match docs.take_fault(table.as_deref()) {
        Some(FaultKind::InternalError) => {
            return error_answer(500, "Internal Server Error (injected fault)")
        }
        Some(FaultKind::SqliteBusy) => return error_answer(500, "SQLITE_BUSY: database is locked"),
        Some(FaultKind::Status { status, body }) => return answer(status, JSON_TYPE, body),
        Some(FaultKind::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    if let Some(key) = docs.api_key() {
        if let Some(denied) = check_auth(&docs, &req, &key, doc.as_deref()) {
            return denied;
        }
    }
    next.run(req).await
}

/// Grist's answers to bad credentials (`None`: let the request through).
fn check_auth(docs: &Docs, req: &Request, key: &str, doc: Option<&str>) -> Option<Response> {
    let Some(auth) = req.headers().get(header::AUTHORIZATION) else {
        // Anonymous: unknown docs are not found, known ones are not viewable.
        if let Some(doc) = doc {
            if docs.read(|d| !d.contains_key(doc)) {
                return Some(error_answer(404, "document not found"));
            }
        }
        return Some(error_answer(403, "No view access"));
    };
    let auth = String::from_utf8_lossy(auth.as_bytes());
    let mut parts = auth.split(' ');
    if parts.next() != Some("Bearer") {
        return Some(error_answer(
            401,
            "Bad request: unsupported Authorization scheme, expected 'Bearer'",
        ));
    }
    if parts.next() != Some(key) || parts.next().is_some() {
        return Some(error_answer(401, "Bad request: invalid API key"));
    }
    None
}
