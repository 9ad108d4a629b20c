//! `embeddings`: turning texts into vectors, as rarely and as fast as possible.
//!
//! * [`provider`]: the [`Embedder`] trait and its errors; [`openai`]: any OpenAI-compatible
//!   `/v1/embeddings` endpoint; [`local`]: a sentence-transformers model on the CPU (feature
//!   `local`).
//! * [`batching`]: texts into requests bounded by count and tokens, several in flight, retried
//!   on 429/5xx/timeouts (honouring `Retry-After`), a rejected request split until the bad text
//!   is found.
//! * [`steps`]: the embedding steps (`kg.embed_nodes`, `kg.embed_edges`).
//! * [`cache`]: a content-addressed cache in Postgres, keyed by (provider, model, dimensions,
//!   hash of the text), so that no text is ever paid for twice.

pub mod batching;
pub mod cache;
#[cfg(feature = "local")]
pub mod local;
pub mod openai;
pub mod provider;
pub mod steps;

pub use batching::{embed_all, BatchLimits};
pub use cache::EmbeddingCache;
pub use provider::{EmbedError, Embedder, ModelId};
