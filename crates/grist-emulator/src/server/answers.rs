//! Building responses: a status with a content type and body, JSON answers, and Grist's error
//! answer `{"error": message}` (also for unknown routes and for [`EmulatorError`]s).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::json;

use crate::error::EmulatorError;

pub(super) const JSON_TYPE: &str = "application/json; charset=utf-8";
pub(super) const CSV_TYPE: &str = "text/csv; charset=utf-8";

pub(super) fn answer(status: u16, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(super) fn json_answer<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => answer(200, JSON_TYPE, body),
        Err(e) => error_answer(500, &e.to_string()),
    }
}

/// Grist's error answer: `{"error": message}`.
pub(super) fn error_answer(status: u16, message: &str) -> Response {
    answer(status, JSON_TYPE, json!({ "error": message }).to_string())
}

pub(super) fn emulator_error(e: &EmulatorError) -> Response {
    error_answer(e.status(), &e.to_string())
}

pub(super) async fn not_found(req: Request) -> Response {
    error_answer(
        404,
        &format!("not found: {} {}", req.method(), req.uri().path()),
    )
}

pub(super) fn respond<T: Serialize>(result: Result<T, EmulatorError>) -> Response {
    match result {
        Ok(v) => json_answer(&v),
        Err(e) => emulator_error(&e),
    }
}
