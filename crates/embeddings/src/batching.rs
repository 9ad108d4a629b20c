//! Sending texts to a model: requests bounded by count and by tokens, several in flight,
//! transient failures retried with backoff (a server's `Retry-After` honoured), and a request
//! rejected as a whole split in halves until the bad text is isolated, so that one poisoned text
//! fails alone while the rest succeed.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};

use etl_core::retry::{retry, RetryPolicy};

use crate::provider::{EmbedError, Embedder};

#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Texts per request.
    pub max_texts: usize,
    /// Estimated tokens per request.
    pub max_tokens: usize,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    pub retry: RetryPolicy,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_texts: 256,
            max_tokens: 100_000,
            max_in_flight: 4,
            retry: RetryPolicy::default(),
        }
    }
}

/// What was sent, for run summaries and tests.
#[derive(Debug, Default)]
pub struct SendStats {
    pub requests: AtomicU64,
    pub texts: AtomicU64,
    /// Tokens sent, as the embedder estimates them (what a paid API bills, near enough).
    pub tokens: AtomicU64,
}

/// One text's outcome: its vector, or why the model refused it.
pub type TextResult = Result<Vec<f32>, String>;

/// The outcomes of one request: which texts it held, and each one's outcome.
type RequestOutcome = Result<(std::ops::Range<usize>, Vec<TextResult>), EmbedError>;

/// Splits `texts` into requests within the limits (a single text over the token bound goes alone).
pub fn plan_requests(
    embedder: &dyn Embedder,
    texts: &[String],
    limits: &BatchLimits,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, t) in texts.iter().enumerate() {
        let n = embedder.estimate_tokens(t);
        let full =
            i - start >= limits.max_texts.max(1) || (i > start && tokens + n > limits.max_tokens);
        if full {
            out.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += n;
    }
    if start < texts.len() {
        out.push(start..texts.len());
    }
    out
}

/// Embeds every text (callers pass each distinct text once). A fatal error, or a transient one
/// that outlasts the retries, fails the whole call; a rejected text fails alone.
pub async fn embed_all(
    embedder: &dyn Embedder,
    texts: &[String],
    limits: &BatchLimits,
    stats: &SendStats,
) -> Result<Vec<TextResult>, EmbedError> {
    let requests = plan_requests(embedder, texts, limits);
    let results: Vec<RequestOutcome> = stream::iter(requests)
        .map(|range| async move {
            let out = embed_range(embedder, &texts[range.clone()], limits, stats).await?;
            Ok((range, out))
        })
        .buffer_unordered(limits.max_in_flight.max(1))
        .collect()
        .await;
    let mut out: Vec<TextResult> = vec![Err(String::new()); texts.len()];
    for r in results {
        let (range, vectors) = r?;
        for (slot, v) in out[range].iter_mut().zip(vectors) {
            *slot = v;
        }
    }
    Ok(out)
}

fn embed_range<'a>(
    embedder: &'a dyn Embedder,
    texts: &'a [String],
    limits: &'a BatchLimits,
    stats: &'a SendStats,
) -> BoxFuture<'a, Result<Vec<TextResult>, EmbedError>> {
    Box::pin(async move {
        let attempt = retry(&limits.retry, "embedding request", || async {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            stats.texts.fetch_add(texts.len() as u64, Ordering::Relaxed);
            let tokens: usize = texts.iter().map(|t| embedder.estimate_tokens(t)).sum();
            stats.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
            embedder.embed(texts).await
        })
        .await;
        match attempt {
            Ok(vectors) => Ok(vectors.into_iter().map(Ok).collect()),
            Err(EmbedError::Rejected { message }) if texts.len() == 1 => Ok(vec![Err(message)]),
            Err(EmbedError::Rejected { .. }) => {
                let mid = texts.len() / 2;
                let mut left = embed_range(embedder, &texts[..mid], limits, stats).await?;
                left.extend(embed_range(embedder, &texts[mid..], limits, stats).await?);
                Ok(left)
            }
            Err(e) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ModelId;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Rejects any request holding "poison"; counts calls.
    struct Picky {
        id: ModelId,
        calls: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Embedder for Picky {
        fn id(&self) -> &ModelId {
            &self.id
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.calls.lock().unwrap().push(texts.len());
            if texts.iter().any(|t| t == "poison") {
                return Err(EmbedError::Rejected {
                    message: "bad input".into(),
                });
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
        fn estimate_tokens(&self, text: &str) -> usize {
            text.len()
        }
    }

    fn picky() -> Picky {
        Picky {
            id: ModelId {
                provider: "t".into(),
                model: "t".into(),
                dims: 1,
            },
            calls: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn requests_are_bounded_by_count_and_tokens() {
        let e = picky();
        let texts: Vec<String> = ["aaaa", "bb", "cccccc", "d", "e", "ffffffffffff"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let limits = BatchLimits {
            max_texts: 3,
            max_tokens: 8,
            ..BatchLimits::default()
        };
        assert_eq!(plan_requests(&e, &texts, &limits), vec![0..2, 2..5, 5..6]);
    }

    #[tokio::test]
    async fn a_poisoned_text_fails_alone() {
        let e = picky();
        let texts: Vec<String> = ["a", "b", "poison", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let stats = SendStats::default();
        let out = embed_all(&e, &texts, &BatchLimits::default(), &stats)
            .await
            .unwrap();
        assert_eq!(out[0], Ok(vec![1.0]));
        assert_eq!(out[2], Err("bad input".to_string()));
        assert_eq!(out[4], Ok(vec![1.0]));
        // 5 refused -> 2 ok, 3 refused -> 1 (the poisoned text, alone) refused, 2 ok.
        assert_eq!(*e.calls.lock().unwrap(), vec![5, 2, 3, 1, 2]);
    }
}
