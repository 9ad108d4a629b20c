//! Owns the HTTP side: [`Emulator`] (docs + API key, ready to serve), [`RunningEmulator`] (the
//! background server task), the request gate (request log, injected faults, API-key check with
//! Grist's exact error answers) and the axum handlers of the read and write endpoints.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::csv_export::{render_csv, HeaderMode};
use crate::docs::Docs;
use crate::error::EmulatorError;
use crate::eval::{cell, display_value};
use crate::fault::{FaultKind, RequestInfo};
use crate::load::load_dirs;
use crate::model::{is_hidden_col, Column, Doc, Fields, Table, MANUAL_SORT};
use crate::seed;

const JSON_TYPE: &str = "application/json; charset=utf-8";
const CSV_TYPE: &str = "text/csv; charset=utf-8";
/// Seeding big tables posts big bodies.
const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;
/// The one workspace the emulator has.
const WORKSPACE_ID: i64 = 1;

/// A fake Grist: docs in memory, an optional API key, ready to serve.
#[derive(Clone, Debug, Default)]
pub struct Emulator {
    docs: Docs,
}

impl Emulator {
    /// An emulator with no docs (create some through the API or the [`Docs`] handle).
    pub fn new() -> Emulator {
        Emulator::default()
    }

    /// An emulator serving these docs.
    pub fn with_docs(docs: Vec<Doc>) -> Emulator {
        Emulator {
            docs: Docs::new(docs),
        }
    }

    /// Loads doc folders (see the crate docs for the format); errors name the file.
    pub fn from_dirs<P: AsRef<Path>>(dirs: &[P]) -> Result<Emulator, EmulatorError> {
        Ok(Emulator::with_docs(load_dirs(dirs)?))
    }

    /// Requires `Authorization: Bearer <key>` on every request (`None`: no auth at all).
    pub fn with_api_key(self, key: Option<&str>) -> Emulator {
        self.docs.set_api_key(key.map(str::to_string));
        self
    }

    /// The handle on the docs, fault rules and request log, shared with the server.
    pub fn docs(&self) -> Docs {
        self.docs.clone()
    }

    /// The axum router answering the API (for embedding in another server).
    pub fn router(&self) -> Router {
        router(self.docs.clone())
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background task.
    pub async fn serve(self, addr: SocketAddr) -> Result<RunningEmulator, EmulatorError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(self.docs.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "grist emulator stopped");
            }
        });
        tracing::info!(addr = %local, "grist emulator listening");
        Ok(RunningEmulator {
            addr: local,
            docs: self.docs,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A serving emulator; stops on [`RunningEmulator::shutdown`] or when dropped.
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    docs: Docs,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT` (the loopback address when bound to all interfaces).
    pub fn url(&self) -> String {
        let ip = self.addr.ip();
        let host = if ip.is_unspecified() {
            match ip {
                std::net::IpAddr::V4(_) => "127.0.0.1".to_string(),
                std::net::IpAddr::V6(_) => "[::1]".to_string(),
            }
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("http://{host}:{}", self.addr.port())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The handle on the served docs.
    pub fn docs(&self) -> &Docs {
        &self.docs
    }

    /// Stops accepting requests, lets the ones in flight finish (at most 5 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Serves until the server task ends (it ends only on shutdown or failure).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn router(docs: Docs) -> Router {
    Router::new()
        .route("/api/orgs/{org}/workspaces", get(list_workspaces))
        .route("/api/workspaces", get(list_workspaces_plain))
        .route("/api/workspaces/{ws}", get(get_workspace))
        .route("/api/workspaces/{ws}/docs", post(create_doc))
        .route("/api/docs/{doc}", get(get_doc).delete(delete_doc))
        .route("/api/docs/{doc}/tables", get(get_tables).post(post_tables))
        .route(
            "/api/docs/{doc}/tables/{table}/columns",
            get(get_columns).post(post_columns).patch(patch_columns),
        )
        .route(
            "/api/docs/{doc}/tables/{table}/columns/{col}",
            delete(delete_column),
        )
        .route(
            "/api/docs/{doc}/tables/{table}/records",
            get(get_records).post(post_records).patch(patch_records),
        )
        .route(
            "/api/docs/{doc}/tables/{table}/records/delete",
            post(delete_records),
        )
        .route("/api/docs/{doc}/download/csv", get(get_csv))
        .route("/api/docs/{doc}/apply", post(apply))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(docs.clone(), gate))
        .with_state(docs)
}

// ---- answers ----

fn answer(status: u16, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_answer<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => answer(200, JSON_TYPE, body),
        Err(e) => error_answer(500, &e.to_string()),
    }
}

/// Grist's error answer: `{"error": message}`.
fn error_answer(status: u16, message: &str) -> Response {
    answer(status, JSON_TYPE, json!({ "error": message }).to_string())
}

fn emulator_error(e: &EmulatorError) -> Response {
    error_answer(e.status(), &e.to_string())
}

async fn not_found(req: Request) -> Response {
    error_answer(
        404,
        &format!("not found: {} {}", req.method(), req.uri().path()),
    )
}

// ---- request gate: log, faults, auth ----

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

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

async fn gate(State(docs): State<Docs>, req: Request, next: Next) -> Response {
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

// ---- helpers for handlers ----

fn parse_body(body: &Bytes) -> Result<Value, EmulatorError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| EmulatorError::bad_request(format!("Invalid JSON body: {e}")))
}

/// Runs `f` on a copy of the doc, which replaces it only if `f` succeeds.
fn edit_doc<R>(
    docs: &Docs,
    doc_id: &str,
    f: impl FnOnce(&mut Doc) -> Result<R, EmulatorError>,
) -> Result<R, EmulatorError> {
    docs.with_doc_mut(doc_id, |doc| {
        let mut copy = doc.clone();
        let result = f(&mut copy)?;
        *doc = copy;
        Ok(result)
    })
}

fn with_doc<R>(
    docs: &Docs,
    doc_id: &str,
    f: impl FnOnce(&Doc) -> Result<R, EmulatorError>,
) -> Result<R, EmulatorError> {
    docs.read(|all| match all.get(doc_id) {
        Some(doc) => f(doc),
        None => Err(EmulatorError::UnknownDoc(doc_id.to_string())),
    })
}

fn respond<T: Serialize>(result: Result<T, EmulatorError>) -> Response {
    match result {
        Ok(v) => json_answer(&v),
        Err(e) => emulator_error(&e),
    }
}

/// Grist's `isAffirmative`.
fn affirmative(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "true" | "yes"))
}

// ---- workspaces and docs ----

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

async fn list_workspaces(State(docs): State<Docs>, UrlPath(_org): UrlPath<String>) -> Response {
    json_answer(&json!([workspace(&docs)]))
}

async fn list_workspaces_plain(State(docs): State<Docs>) -> Response {
    json_answer(&json!([workspace(&docs)]))
}

fn check_workspace(ws: &str) -> Result<(), EmulatorError> {
    if ws.parse::<i64>().ok() == Some(WORKSPACE_ID) {
        Ok(())
    } else {
        Err(EmulatorError::bad_request("workspace not found"))
    }
}

async fn get_workspace(State(docs): State<Docs>, UrlPath(ws): UrlPath<String>) -> Response {
    match check_workspace(&ws) {
        Ok(()) => {
            let mut w = workspace(&docs);
            w["org"] = json!({"id": 1, "name": "Personal", "domain": "docs"});
            json_answer(&w)
        }
        Err(_) => error_answer(404, "workspace not found"),
    }
}

async fn create_doc(
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

async fn get_doc(State(docs): State<Docs>, UrlPath(doc_id): UrlPath<String>) -> Response {
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

async fn delete_doc(State(docs): State<Docs>, UrlPath(doc_id): UrlPath<String>) -> Response {
    if docs.remove_doc(&doc_id) {
        json_answer(&Value::Null)
    } else {
        emulator_error(&EmulatorError::UnknownDoc(doc_id))
    }
}

// ---- reads ----

async fn get_tables(State(docs): State<Docs>, UrlPath(doc_id): UrlPath<String>) -> Response {
    match with_doc(&docs, &doc_id, |doc| Ok(doc.tables_json())) {
        Ok(body) => answer(200, JSON_TYPE, body),
        Err(e) => emulator_error(&e),
    }
}

async fn get_columns(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let hidden = affirmative(query_param(&pairs, "hidden"));
    #[derive(Serialize)]
    struct Answer<'a> {
        columns: Vec<&'a Column>,
    }
    let result = with_doc(&docs, &doc_id, |doc| {
        let table = doc.table_or_err(&table_id)?;
        let columns = table
            .columns
            .iter()
            .filter(|c| hidden || !c.is_hidden())
            .collect();
        serde_json::to_string(&Answer { columns })
            .map_err(|e| EmulatorError::bad_request(e.to_string()))
    });
    match result {
        Ok(body) => answer(200, JSON_TYPE, body),
        Err(e) => emulator_error(&e),
    }
}

#[derive(Serialize)]
struct RecordOut {
    id: i64,
    fields: Fields,
    #[serde(skip_serializing_if = "Fields::is_empty")]
    errors: Fields,
}

/// The `/records` entries of a table: stored fields, then the columns a record has no stored
/// value for (simple formulas computed, data columns at their default).
fn records_out(doc: &Doc, table: &Table, hidden: bool) -> Vec<RecordOut> {
    let columns = table.columns_in_position_order();
    let mut records: Vec<_> = table.records.iter().collect();
    records.sort_by_key(|r| r.id);
    records
        .into_iter()
        .map(|rec| {
            let keep = |k: &str| hidden || !is_hidden_col(k);
            let mut fields: Fields = rec
                .fields
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let errors: Fields = rec
                .errors
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for col in &columns {
                if fields.contains_key(&col.id) || !keep(&col.id) {
                    continue;
                }
                let value = if col.id == MANUAL_SORT {
                    json!(rec.id)
                } else if let Some(owner) = columns
                    .iter()
                    .find(|c| c.display_col() > 0 && c.display_col() == col.col_ref())
                {
                    display_value(doc, table, rec, owner, col)
                } else {
                    cell(doc, table, rec, &col.id)
                };
                fields.insert(col.id.clone(), value);
            }
            RecordOut {
                id: rec.id,
                fields,
                errors,
            }
        })
        .collect()
}

fn sort_rank(v: &Value) -> (u8, f64, Cow<'_, str>) {
    match v {
        Value::Null => (0, 0.0, Cow::Borrowed("")),
        Value::Bool(b) => (1, if *b { 1.0 } else { 0.0 }, Cow::Borrowed("")),
        Value::Number(n) => (1, n.as_f64().unwrap_or(0.0), Cow::Borrowed("")),
        Value::String(s) => (2, 0.0, Cow::Borrowed(s.as_str())),
        other => (3, 0.0, Cow::Owned(other.to_string())),
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Applies `/records` query options: `filter` (JSON `{col: [values]}`), `sort`
/// (`col,-col2`) and `limit`.
fn query_records(
    mut records: Vec<RecordOut>,
    pairs: &[(String, String)],
) -> Result<Vec<RecordOut>, EmulatorError> {
    if let Some(filter) = query_param(pairs, "filter").filter(|f| !f.is_empty()) {
        let filter: Value = serde_json::from_str(filter)
            .map_err(|e| EmulatorError::bad_request(format!("Invalid filter parameter: {e}")))?;
        let Value::Object(filter) = filter else {
            return Err(EmulatorError::bad_request(
                "Invalid filter parameter: expected an object",
            ));
        };
        for (col, allowed) in &filter {
            let Value::Array(allowed) = allowed else {
                return Err(EmulatorError::bad_request(format!(
                    "Invalid filter parameter: values of {col} must be a list"
                )));
            };
            records.retain(|r| {
                let value = if col == "id" {
                    json!(r.id)
                } else {
                    r.fields.get(col).cloned().unwrap_or(Value::Null)
                };
                allowed.iter().any(|a| values_equal(a, &value))
            });
        }
    }
    if let Some(sort) = query_param(pairs, "sort").filter(|s| !s.is_empty()) {
        let keys: Vec<(bool, String)> = sort
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| match k.strip_prefix('-') {
                Some(rest) => (true, rest.to_string()),
                None => (false, k.to_string()),
            })
            .collect();
        records.sort_by(|a, b| {
            for (desc, col) in &keys {
                let get = |r: &RecordOut| {
                    if col == "id" {
                        json!(r.id)
                    } else {
                        r.fields.get(col).cloned().unwrap_or(Value::Null)
                    }
                };
                let (va, vb) = (get(a), get(b));
                let (ra, rb) = (sort_rank(&va), sort_rank(&vb));
                let ord =
                    ra.0.cmp(&rb.0)
                        .then(ra.1.total_cmp(&rb.1))
                        .then(ra.2.cmp(&rb.2));
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            a.id.cmp(&b.id)
        });
    }
    if let Some(limit) = query_param(pairs, "limit").filter(|l| !l.is_empty()) {
        let limit: usize = limit.parse().map_err(|_| {
            EmulatorError::bad_request(format!("limit parameter should be an integer: {limit}"))
        })?;
        if limit > 0 {
            records.truncate(limit);
        }
    }
    Ok(records)
}

async fn get_records(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let hidden = affirmative(query_param(&pairs, "hidden"));
    #[derive(Serialize)]
    struct Answer {
        records: Vec<RecordOut>,
    }
    respond(with_doc(&docs, &doc_id, |doc| {
        let table = doc.table_or_err(&table_id)?;
        let records = query_records(records_out(doc, table, hidden), &pairs)?;
        Ok(Answer { records })
    }))
}

async fn get_csv(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let result: Result<(String, String), Box<Response>> = docs.read(|all| {
        let doc = all
            .get(&doc_id)
            .ok_or_else(|| Box::new(emulator_error(&EmulatorError::UnknownDoc(doc_id.clone()))))?;
        let table_id = query_param(&pairs, "tableId")
            .ok_or_else(|| Box::new(error_answer(400, "tableId parameter is required")))?;
        let header = match query_param(&pairs, "header") {
            None | Some("label") => HeaderMode::Label,
            Some("colId") => HeaderMode::ColId,
            Some(other) => {
                return Err(Box::new(error_answer(
                    400,
                    &format!("header parameter {other} should be one of label,colId"),
                )))
            }
        };
        let table = doc
            .table(table_id)
            .ok_or_else(|| Box::new(error_answer(404, &format!("Table {table_id} not found."))))?;
        Ok((table.id.clone(), render_csv(doc, table, header)))
    });
    let (table_id, csv) = match result {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let mut resp = answer(200, CSV_TYPE, csv);
    let ascii: String = table_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}.csv\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

// ---- writes ----

async fn post_tables(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    respond(parse_body(&body).and_then(|body| {
        let ids = edit_doc(&docs, &doc_id, |doc| seed::add_tables(doc, &body))?;
        Ok(json!({"tables": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}))
    }))
}

async fn post_columns(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    respond(parse_body(&body).and_then(|body| {
        let ids = edit_doc(&docs, &doc_id, |doc| {
            seed::add_columns(doc, &table_id, &body)
        })?;
        Ok(json!({"columns": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}))
    }))
}

async fn patch_columns(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    respond(parse_body(&body).and_then(|body| {
        edit_doc(&docs, &doc_id, |doc| {
            seed::update_columns(doc, &table_id, &body)
        })?;
        Ok(Value::Null)
    }))
}

async fn delete_column(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id, col_id)): UrlPath<(String, String, String)>,
) -> Response {
    respond(
        edit_doc(&docs, &doc_id, |doc| {
            seed::remove_column(doc, &table_id, &col_id)
        })
        .map(|()| Value::Null),
    )
}

async fn post_records(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    respond(parse_body(&body).and_then(|body| {
        let ids = edit_doc(&docs, &doc_id, |doc| {
            seed::add_records(doc, &table_id, &body)
        })?;
        Ok(json!({"records": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}))
    }))
}

async fn patch_records(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    respond(parse_body(&body).and_then(|body| {
        edit_doc(&docs, &doc_id, |doc| {
            seed::update_records(doc, &table_id, &body)
        })?;
        Ok(Value::Null)
    }))
}

async fn delete_records(
    State(docs): State<Docs>,
    UrlPath((doc_id, table_id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    respond(parse_body(&body).and_then(|body| {
        edit_doc(&docs, &doc_id, |doc| {
            seed::delete_records(doc, &table_id, &body)
        })?;
        Ok(Value::Null)
    }))
}

async fn apply(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    respond(
        parse_body(&body)
            .and_then(|body| edit_doc(&docs, &doc_id, |doc| seed::apply_actions(doc, &body))),
    )
}
