//! `GET /api/docs/{doc}/download/csv?tableId=T`: a table rendered as CSV (headers as labels
//! or column ids), served as an attachment named after the table.

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;

use super::answers::{answer, emulator_error, error_answer, CSV_TYPE};
use super::request::{query_pairs, query_param};
use crate::csv_export::{render_csv, HeaderMode};
use crate::docs::Docs;
use crate::error::EmulatorError;

pub(super) async fn get_csv(
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
