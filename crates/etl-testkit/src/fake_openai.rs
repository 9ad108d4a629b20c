//! A fake OpenAI-compatible embeddings server: `POST /v1/embeddings` answers deterministic unit
//! vectors (the same text always gets the same vector), and on demand 429 with `Retry-After`,
//! 500, or 400 for requests holding a poisoned text; it adds latency and counts every request
//! and text, so tests can assert every call that was made. Vectors come as JSON floats, or as
//! base64 little-endian f32s when asked (`encoding_format: "base64"`), unless the fake is told
//! to refuse base64 as some servers do.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The vector the fake gives a text: blake3's output stream as numbers, normalized.
pub fn fake_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut reader = blake3::Hasher::new().update(text.as_bytes()).finalize_xof();
    let mut bytes = vec![0u8; dims * 4];
    reader.fill(&mut bytes);
    let v: Vec<f32> = bytes
        .chunks(4)
        .map(|c| {
            (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64 / u32::MAX as f64 * 2.0 - 1.0)
                as f32
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / norm).collect()
}

/// A vector shaped like a text model's: the sum of one [`fake_vector`] per word, normalized, so
/// texts that share words lie close together ("Person number 7" and "Person number 8": cosine
/// about 2/3) and texts that share none far apart, as a real model's clusters do. Uniformly
/// random vectors ([`fake_vector`]) are the costly case for an HNSW index; these are closer to
/// what one holds in production.
pub fn word_sum_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dims];
    for word in text.split_whitespace() {
        for (s, x) in sum.iter_mut().zip(fake_vector(&word.to_lowercase(), dims)) {
            *s += x;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm < 1e-12 {
        return fake_vector(text, dims);
    }
    sum.into_iter().map(|x| x / norm).collect()
}

#[derive(Debug, Clone, Copy)]
struct Failure {
    status: u16,
    retry_after: Option<u64>,
}

#[derive(Debug, Default)]
struct FakeState {
    latency: Mutex<Duration>,
    failures: Mutex<VecDeque<Failure>>,
    poisoned: Mutex<HashSet<String>>,
    requests: AtomicU64,
    answered: AtomicU64,
    base64_requests: AtomicU64,
    refuse_base64: std::sync::atomic::AtomicBool,
    /// Vectors from [`word_sum_vector`] instead of [`fake_vector`].
    word_sums: std::sync::atomic::AtomicBool,
    texts: Mutex<Vec<String>>,
}

/// A running fake; dropped, it stops.
#[derive(Debug)]
pub struct FakeOpenAi {
    state: Arc<FakeState>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOpenAi {
    /// Starts on 127.0.0.1 (port 0: any free port).
    pub async fn start(port: u16) -> FakeOpenAi {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route("/v1/embeddings", post(embeddings))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the fake OpenAI server");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpenAi { state, addr, task }
    }

    /// The base URL, as OPENAI_BASE_URL takes it.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Answers [`word_sum_vector`]s from now on (the benchmark's `ETL_BENCH_VECTORS=words`).
    pub fn answer_word_sums(&self, on: bool) {
        self.state.word_sums.store(on, Ordering::SeqCst);
    }

    pub fn set_latency(&self, latency: Duration) {
        *self.state.latency.lock().unwrap() = latency;
    }

    /// The next `n` requests answer `status` (with `Retry-After: retry_after` seconds if given).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut f = self.state.failures.lock().unwrap();
        for _ in 0..n {
            f.push_back(Failure {
                status,
                retry_after,
            });
        }
    }

    /// Any request holding this text answers 400.
    pub fn poison(&self, text: &str) {
        self.state.poisoned.lock().unwrap().insert(text.to_string());
    }

    pub fn cure(&self) {
        self.state.poisoned.lock().unwrap().clear();
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with vectors (the others were refused).
    pub fn answered(&self) -> u64 {
        self.state.answered.load(Ordering::SeqCst)
    }

    /// Every text sent, in order, over all requests (failed ones included).
    pub fn texts(&self) -> Vec<String> {
        self.state.texts.lock().unwrap().clone()
    }

    pub fn reset_counts(&self) {
        self.state.requests.store(0, Ordering::SeqCst);
        self.state.answered.store(0, Ordering::SeqCst);
        self.state.base64_requests.store(0, Ordering::SeqCst);
        self.state.texts.lock().unwrap().clear();
    }

    /// Requests answered with base64 vectors.
    pub fn base64_requests(&self) -> u64 {
        self.state.base64_requests.load(Ordering::SeqCst)
    }

    /// Answers a request for base64 vectors with 400 naming `encoding_format`, as servers
    /// without base64 do.
    pub fn refuse_base64(&self, refuse: bool) {
        self.state.refuse_base64.store(refuse, Ordering::SeqCst);
    }
}

async fn embeddings(State(state): State<Arc<FakeState>>, Json(body): Json<Value>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "`input` must be a string or a list of strings",
                None,
            )
        }
    };
    state.texts.lock().unwrap().extend(inputs.iter().cloned());
    let latency = *state.latency.lock().unwrap();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(f) = state.failures.lock().unwrap().pop_front() {
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "injected failure", f.retry_after);
    }
    if inputs
        .iter()
        .any(|t| state.poisoned.lock().unwrap().contains(t))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "this input cannot be embedded",
            None,
        );
    }
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(1536) as usize;
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    if base64 {
        if state.refuse_base64.load(Ordering::SeqCst) {
            return error(
                StatusCode::BAD_REQUEST,
                "encoding_format 'base64' is not supported",
                None,
            );
        }
        state.base64_requests.fetch_add(1, Ordering::SeqCst);
    }
    let word_sums = state.word_sums.load(Ordering::SeqCst);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = if word_sums {
                word_sum_vector(t, dims)
            } else {
                fake_vector(t, dims)
            };
            let embedding = if base64 {
                use base64::Engine as _;
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    state.answered.fetch_add(1, Ordering::SeqCst);
    Json(json!({"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": 0, "total_tokens": 0}}))
        .into_response()
}

fn error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(s) = retry_after {
        headers.insert("retry-after", HeaderValue::from(s));
    }
    (
        status,
        headers,
        Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn word_sums_put_texts_sharing_words_close_together() {
        let d = 256;
        let a = word_sum_vector("Person number 7", d);
        let b = word_sum_vector("Person number 8", d);
        let c = word_sum_vector("Interest in topic 9", d);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-4);
        assert!(cosine(&a, &b) > 0.5, "{}", cosine(&a, &b));
        assert!(cosine(&a, &c).abs() < 0.3, "{}", cosine(&a, &c));
        assert_eq!(a, word_sum_vector("person  Number 7", d));
    }
}
