//! The provider trait: a model that embeds a batch of texts.

use std::time::Duration;

use async_trait::async_trait;

/// What identifies embeddings as interchangeable: the same provider, model and dimension give the
/// same vector for the same text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelId {
    pub provider: String,
    pub model: String,
    pub dims: u32,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    /// Worth retrying: 429, 5xx, a timeout, a dropped connection.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request was refused for its content (HTTP 400): some text in it is bad.
    #[error("{message}")]
    Rejected { message: String },
    /// Nothing will work until a person fixes something: a wrong key, an unknown model.
    #[error("{message}")]
    Fatal { message: String },
}

impl etl_core::retry::Retryable for EmbedError {
    fn is_transient(&self) -> bool {
        matches!(self, EmbedError::Transient { .. })
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            EmbedError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[async_trait]
pub trait Embedder: Send + Sync {
    fn id(&self) -> &ModelId;

    /// Embeds texts, one vector per text, in order. Vectors have `id().dims` dimensions.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// A cheap upper estimate of a text's tokens, for bounding requests.
    fn estimate_tokens(&self, text: &str) -> usize {
        // About 4 bytes a token for English; never 0.
        text.len() / 3 + 1
    }
}
