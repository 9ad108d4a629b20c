//! The HTTP client: `Authorization: Bearer`, a timeout per request, retries with backoff on 5xx,
//! timeouts, connection errors and `SQLITE_BUSY`, and errors that name the doc and table.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use etl_core::retry::{retry, RetryPolicy};

use crate::api::{Column, ColumnList, Record, RecordList, TableList};
use crate::csv_stream::CsvStream;
use crate::error::GristError;
use crate::read_log::ReadLog;

#[derive(Debug, Clone)]
pub struct GristConfig {
    /// e.g. `http://localhost:8484` (a trailing `/` and `/api` are accepted).
    pub server_url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl GristConfig {
    pub fn new(server_url: &str, api_key: Option<String>) -> Self {
        GristConfig {
            server_url: server_url.to_string(),
            api_key,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Clone)]
pub struct GristClient {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
    timeout: Duration,
    retry: RetryPolicy,
    /// Where reads are recorded, when an extract asked for it (see [`crate::read_log`]).
    log: Option<Arc<ReadLog>>,
}

impl std::fmt::Debug for GristClient {
    /// The key is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GristClient")
            .field("server", &self.base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Doc and table ids go into URL paths percent-encoded.
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl GristClient {
    pub fn new(config: GristConfig) -> Result<Self, GristError> {
        // Each read must make progress within the timeout; JSON requests also have it as a
        // total limit, CSV downloads (which may be long) do not.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(config.timeout)
            .build()
            .map_err(|e| GristError::Protocol {
                what: "building the HTTP client".into(),
                detail: e.to_string(),
            })?;
        let mut base = config.server_url.trim_end_matches('/').to_string();
        if let Some(stripped) = base.strip_suffix("/api") {
            base = stripped.to_string();
        }
        Ok(GristClient {
            http,
            base,
            api_key: config.api_key,
            timeout: config.timeout,
            retry: config.retry,
            log: None,
        })
    }

    pub(crate) fn with_log(&self, log: Arc<ReadLog>) -> GristClient {
        GristClient {
            log: Some(log),
            ..self.clone()
        }
    }

    /// The request part of a URL of this server (what a read log records).
    fn request_of<'u>(&self, url: &'u str) -> &'u str {
        url.strip_prefix(self.base.as_str()).unwrap_or(url)
    }

    /// The blake3 digest of the answer to `request` (a path and query on this server), streamed;
    /// `None` when the doc or table is not there (any more).
    pub(crate) async fn digest_of(
        &self,
        request: &str,
    ) -> Result<Option<blake3::Hash>, GristError> {
        use futures::StreamExt;
        let url = format!("{}{request}", self.base);
        // For messages: the doc the request is about.
        let doc = request
            .strip_prefix("/api/docs/")
            .and_then(|r| r.split(['/', '?']).next())
            .unwrap_or("-")
            .to_string();
        let what = format!("{request} (checking whether the source changed)");
        let answer = retry(&self.retry, &what, || async {
            let response = self
                .request(&url)
                .send()
                .await
                .map_err(|e| self.transport_error(e, &what))?;
            let response = self.check(response, &doc, Some("-"), &what).await?;
            let mut hasher = blake3::Hasher::new();
            let mut body = response.bytes_stream();
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| self.transport_error(e, &what))?;
                read += chunk.len() as u64;
                hasher.update(&chunk);
            }
            if let Some(log) = &self.log {
                log.counted(read);
            }
            Ok(hasher.finalize())
        })
        .await;
        match answer {
            Ok(digest) => Ok(Some(digest)),
            Err(GristError::UnknownDoc { .. } | GristError::UnknownTable { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.get(url);
        match &self.api_key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// Sends a GET with retries; returns the response (whose body is still to read) once its
    /// status is a success.
    async fn get_streaming(
        &self,
        url: &str,
        doc: &str,
        table: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, GristError> {
        retry(&self.retry, what, || async {
            let response = self
                .request(url)
                .send()
                .await
                .map_err(|e| self.transport_error(e, what))?;
            self.check(response, doc, table, what).await
        })
        .await
    }

    fn transport_error(&self, e: reqwest::Error, what: &str) -> GristError {
        if e.is_timeout() {
            GristError::Timeout {
                what: what.to_string(),
                timeout: self.timeout,
            }
        } else {
            GristError::Connection {
                server: self.base.clone(),
                what: what.to_string(),
                source: e.without_url(),
            }
        }
    }

    async fn check(
        &self,
        response: reqwest::Response,
        doc: &str,
        table: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, GristError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let server = self.base.clone();
        Err(match status {
            StatusCode::UNAUTHORIZED => GristError::InvalidKey {
                server,
                doc: doc.into(),
            },
            StatusCode::FORBIDDEN => GristError::NoAccess {
                server,
                doc: doc.into(),
                detail,
            },
            StatusCode::NOT_FOUND if detail.contains("document not found") || table.is_none() => {
                GristError::UnknownDoc {
                    server,
                    doc: doc.into(),
                }
            }
            StatusCode::NOT_FOUND => {
                let table = table.unwrap_or_default().to_string();
                // Help the user: which tables does the doc have?
                let known = match self.known_tables(doc).await {
                    Some(ts) => {
                        let close: Vec<&String> = ts
                            .iter()
                            .filter(|t| t.eq_ignore_ascii_case(&table))
                            .collect();
                        match close.first() {
                            Some(c) => format!("; did you mean `{c}`?"),
                            None => format!("; the doc has: {}", ts.join(", ")),
                        }
                    }
                    None => String::new(),
                };
                GristError::UnknownTable {
                    doc: doc.into(),
                    table,
                    known,
                }
            }
            StatusCode::INTERNAL_SERVER_ERROR if detail == "Cannot read hash" => {
                GristError::UnknownState { doc: doc.into() }
            }
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || detail.contains("SQLITE_BUSY") =>
            {
                GristError::Server {
                    what: what.into(),
                    status: s.as_u16(),
                    detail,
                    retry_after,
                }
            }
            s => GristError::BadRequest {
                what: what.into(),
                status: s.as_u16(),
                detail,
            },
        })
    }

    /// The doc's table ids for an error message: one plain try, no retries.
    async fn known_tables(&self, doc: &str) -> Option<Vec<String>> {
        let url = format!("{}/api/docs/{}/tables", self.base, path_segment(doc));
        let response = self.request(&url).timeout(self.timeout).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let list: TableList = response.json().await.ok()?;
        Some(list.tables.into_iter().map(|t| t.id).collect())
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        doc: &str,
        table: Option<&str>,
        what: &str,
    ) -> Result<T, GristError> {
        retry(&self.retry, what, || async {
            let response = self
                .request(url)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| self.transport_error(e, what))?;
            let response = self.check(response, doc, table, what).await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|e| self.transport_error(e, what))?;
            let parsed = serde_json::from_slice(&bytes).map_err(|e| GristError::Protocol {
                what: what.to_string(),
                detail: e.to_string(),
            })?;
            if let Some(log) = &self.log {
                log.opened();
                log.finished(
                    self.request_of(url),
                    blake3::hash(&bytes),
                    bytes.len() as u64,
                );
            }
            Ok(parsed)
        })
        .await
    }

    /// Sends a write (POST/PATCH) with a JSON body; no retries (writes are not idempotent).
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
        doc: &str,
    ) -> Result<T, GristError> {
        let url = format!("{}{}", self.base, path);
        let what = format!("{method} {path}");
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| GristError::Protocol {
                what: what.clone(),
                detail: e.to_string(),
            })?;
        let mut request = self
            .http
            .request(method, &url)
            .timeout(self.timeout)
            .json(body);
        if let Some(k) = &self.api_key {
            request = request.bearer_auth(k);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(e, &what))?;
        let response = self.check(response, doc, None, &what).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, &what))?;
        if bytes.is_empty() {
            return serde_json::from_value(serde_json::Value::Null).map_err(|e| {
                GristError::Protocol {
                    what,
                    detail: e.to_string(),
                }
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| GristError::Protocol {
            what,
            detail: e.to_string(),
        })
    }

    /// The id of the first workspace the key can see.
    pub async fn first_workspace(&self) -> Result<i64, GristError> {
        let url = format!("{}/api/orgs/current/workspaces", self.base);
        let list: serde_json::Value = self
            .get_json(&url, "-", None, "the list of workspaces")
            .await?;
        crate::workspaces::writable_workspace(&list).ok_or_else(|| GristError::Protocol {
            what: "the list of workspaces".into(),
            detail: format!(
                "the key in GRIST_API_KEY can write to no workspace on {}: give its user edit access to one, or pass --workspace ID",
                self.base
            ),
        })
    }

    /// A doc endpoint's answer as it came (`suffix` after `/api/docs/{doc}`), with retries.
    pub async fn raw(
        &self,
        doc: &str,
        table: Option<&str>,
        suffix: &str,
    ) -> Result<bytes::Bytes, GristError> {
        let url = format!("{}/api/docs/{}{suffix}", self.base, path_segment(doc));
        let what = format!("{suffix} of doc `{doc}`");
        retry(&self.retry, &what, || async {
            let response = self
                .request(&url)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| self.transport_error(e, &what))?;
            let response = self.check(response, doc, table, &what).await?;
            response
                .bytes()
                .await
                .map_err(|e| self.transport_error(e, &what))
        })
        .await
    }

    /// The table ids of a doc.
    pub async fn tables(&self, doc: &str) -> Result<Vec<String>, GristError> {
        let url = format!("{}/api/docs/{}/tables", self.base, path_segment(doc));
        let list: TableList = self
            .get_json(&url, doc, None, &format!("the tables of doc `{doc}`"))
            .await?;
        Ok(list.tables.into_iter().map(|t| t.id).collect())
    }

    /// Every column of a table, hidden ones included.
    pub async fn columns(&self, doc: &str, table: &str) -> Result<Vec<Column>, GristError> {
        let url = format!(
            "{}/api/docs/{}/tables/{}/columns?hidden=true",
            self.base,
            path_segment(doc),
            path_segment(table)
        );
        let list: ColumnList = self
            .get_json(
                &url,
                doc,
                Some(table),
                &format!("the columns of `{doc}`/`{table}`"),
            )
            .await?;
        Ok(list.columns)
    }

    /// Every record of a table (typed JSON, with row ids).
    pub async fn records(&self, doc: &str, table: &str) -> Result<Vec<Record>, GristError> {
        let url = format!(
            "{}/api/docs/{}/tables/{}/records",
            self.base,
            path_segment(doc),
            path_segment(table)
        );
        let list: RecordList = self
            .get_json(
                &url,
                doc,
                Some(table),
                &format!("the records of `{doc}`/`{table}`"),
            )
            .await?;
        Ok(list.records)
    }

    /// A table's CSV (header = column ids), as a stream of records. Retries apply until the
    /// first byte; a download that breaks later fails (the caller's snapshot is incomplete).
    pub async fn csv(&self, doc: &str, table: &str) -> Result<CsvStream, GristError> {
        let url = format!(
            "{}/api/docs/{}/download/csv?tableId={}&header=colId",
            self.base,
            path_segment(doc),
            path_segment(table)
        );
        let what = format!("the CSV of `{doc}`/`{table}`");
        let response = self.get_streaming(&url, doc, Some(table), &what).await?;
        let log = self.log.clone().map(|log| {
            log.opened();
            (log, self.request_of(&url).to_string())
        });
        Ok(CsvStream::start(response, what, log))
    }
}
