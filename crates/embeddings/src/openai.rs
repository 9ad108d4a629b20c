//! Any OpenAI-compatible `/v1/embeddings` endpoint.
//!
//! Spoken with reqwest rather than async-openai: the engine needs each answer's HTTP status and
//! `Retry-After` to decide between retrying (429, 5xx), splitting the batch (400) and stopping
//! (401, 403, 404), and async-openai folds those into its own retry loop.
//!
//! Vectors are asked for as `encoding_format: "base64"` (little-endian f32s), as OpenAI's own
//! SDKs do: a quarter of the bytes of JSON floats, and no float parsing. A server that refuses
//! it (a 400 naming `encoding_format`) is asked for floats from then on; one that answers floats
//! anyway is read as it answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::provider::{EmbedError, Embedder, ModelId};

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com/v1` (`OPENAI_BASE_URL`).
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub dims: u32,
    pub timeout: Duration,
}

pub struct OpenAiEmbedder {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    id: ModelId,
    timeout: Duration,
    /// The server refused `encoding_format: "base64"`: ask for floats.
    floats_only: AtomicBool,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("url", &self.url)
            .field("id", &self.id)
            .finish()
    }
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [String],
    dimensions: u32,
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Embedding,
}

/// An embedding as the server sent it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Embedding {
    Floats(Vec<f32>),
    Base64(String),
}

impl Embedding {
    /// The vector, or `None` when base64 text does not decode to whole f32s.
    fn into_vector(self) -> Option<Vec<f32>> {
        match self {
            Embedding::Floats(v) => Some(v),
            Embedding::Base64(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .ok()?;
                (bytes.len() % 4 == 0).then(|| {
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })
            }
        }
    }
}

impl OpenAiEmbedder {
    pub fn new(config: OpenAiConfig) -> Result<Self, EmbedError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| EmbedError::Fatal {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let base = config.base_url.trim_end_matches('/');
        let url = if base.ends_with("/embeddings") {
            base.to_string()
        } else {
            format!("{base}/embeddings")
        };
        Ok(OpenAiEmbedder {
            http,
            url,
            api_key: config.api_key,
            id: ModelId {
                provider: "openai".into(),
                model: config.model,
                dims: config.dims,
            },
            timeout: config.timeout,
            floats_only: AtomicBool::new(false),
        })
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn id(&self) -> &ModelId {
        &self.id
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let base64 = !self.floats_only.load(Ordering::Relaxed);
        match self.request(texts, base64).await {
            Err(EmbedError::Rejected { message })
                if base64 && message.contains("encoding_format") =>
            {
                tracing::info!("the embedding server refuses base64 vectors: asking for floats");
                self.floats_only.store(true, Ordering::Relaxed);
                self.request(texts, false).await
            }
            other => other,
        }
    }
}

impl OpenAiEmbedder {
    /// One request for `texts`, with vectors in base64 or as floats.
    async fn request(&self, texts: &[String], base64: bool) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = Request {
            model: &self.id.model,
            input: texts,
            dimensions: self.id.dims,
            encoding_format: if base64 { "base64" } else { "float" },
        };
        let mut request = self.http.post(&self.url).timeout(self.timeout).json(&body);
        if let Some(k) = &self.api_key {
            request = request.bearer_auth(k);
        }
        let response = request.send().await.map_err(|e| EmbedError::Transient {
            message: format!(
                "embedding request to {} failed: {}",
                self.url,
                e.without_url()
            ),
            retry_after: None,
        })?;
        let status = response.status();
        if !status.is_success() {
            let after = retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            let detail: String = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.chars().take(200).collect());
            let message = format!(
                "embedding endpoint {} answered {status}: {detail}",
                self.url
            );
            return Err(error_of_status(status.as_u16(), message, after));
        }
        let parsed: Response = response.json().await.map_err(|e| EmbedError::Transient {
            message: format!("unreadable answer from {}: {}", self.url, e.without_url()),
            retry_after: None,
        })?;
        let mut out = vec![Vec::new(); texts.len()];
        for item in parsed.data {
            let Some(vector) = item.embedding.into_vector() else {
                return Err(EmbedError::Transient {
                    message: format!("an embedding from {} is not valid base64 f32s", self.url),
                    retry_after: None,
                });
            };
            if let Some(slot) = out.get_mut(item.index) {
                *slot = vector;
            }
        }
        if let Some(bad) = out.iter().position(|v| v.len() != self.id.dims as usize) {
            return Err(EmbedError::Fatal {
                message: format!(
                    "the model {} returned {} dimensions for input {bad}, expected {} (EMBEDDINGS_DIM): does it support `dimensions`?",
                    self.id.model,
                    out[bad].len(),
                    self.id.dims
                ),
            });
        }
        Ok(out)
    }
}

/// The one table for the embedding API: what an HTTP status means for the run.
///
/// | status | class | what happens |
/// | --- | --- | --- |
/// | 408, 429, 5xx | transient | retried by the batcher (honouring `Retry-After`), the one layer of retries |
/// | 400, 413, 422 | rejected | the request's content: split until the bad text is isolated, its key fails |
/// | 401, 403 | fatal | the key: check `OPENAI_API_KEY` |
/// | 404 | fatal | the endpoint or model: check `OPENAI_BASE_URL` and `EMBEDDINGS_MODEL` |
/// | anything else | fatal | |
pub fn error_of_status(status: u16, message: String, retry_after: Option<Duration>) -> EmbedError {
    match status {
        429 | 500..=599 | 408 => EmbedError::Transient {
            message,
            retry_after,
        },
        400 | 413 | 422 => EmbedError::Rejected { message },
        401 | 403 => EmbedError::Fatal {
            message: format!("{message} (check OPENAI_API_KEY)"),
        },
        404 => EmbedError::Fatal {
            message: format!("{message} (check OPENAI_BASE_URL and EMBEDDINGS_MODEL)"),
        },
        _ => EmbedError::Fatal { message },
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn every_row_of_the_table() {
        let class = |status| match error_of_status(status, String::new(), None) {
            EmbedError::Transient { .. } => "transient",
            EmbedError::Rejected { .. } => "rejected",
            EmbedError::Fatal { .. } => "fatal",
        };
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(class(s), "transient", "{s}");
        }
        for s in [400, 413, 422] {
            assert_eq!(class(s), "rejected", "{s}");
        }
        for s in [401, 403, 404, 405, 409] {
            assert_eq!(class(s), "fatal", "{s}");
        }
        match error_of_status(401, "x".into(), None) {
            EmbedError::Fatal { message } => assert!(message.contains("OPENAI_API_KEY")),
            other => panic!("{other:?}"),
        }
    }
}
