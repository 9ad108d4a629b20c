//! The write endpoints of a doc: adding tables, adding, changing and deleting columns and
//! records, and `/apply` of user actions. Each parses its JSON body and hands the change to
//! [`crate::seed`] on a copy of the doc.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::answers::respond;
use super::doc_access::edit_doc;
use super::request::parse_body;
use crate::docs::Docs;
use crate::seed;

pub(super) async fn post_tables(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    respond(parse_body(&body).and_then(|body| {
        let ids = edit_doc(&docs, &doc_id, |doc| seed::add_tables(doc, &body))?;
        Ok(json!({"tables": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}))
    }))
}

pub(super) async fn post_columns(
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

pub(super) async fn patch_columns(
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

pub(super) async fn delete_column(
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

pub(super) async fn post_records(
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

pub(super) async fn patch_records(
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

pub(super) async fn delete_records(
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

pub(super) async fn apply(
    State(docs): State<Docs>,
    UrlPath(doc_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    respond(
        parse_body(&body)
            .and_then(|body| edit_doc(&docs, &doc_id, |doc| seed::apply_actions(doc, &body))),
    )
}
