//! `uses = "kg.embed_nodes"` and `"kg.embed_edges"`: a vector for every embeddable attribute of
//! every node (edge), into `rag_anchor_embeddings` (`rag_edge_embeddings`).
//!
//! * Which texts: for each node (edge), each attribute that `dm_anchor_attributes`
//!   (`dm_link_attributes`) marks `embeddable` for its type (label), when the value is a non-empty
//!   string that is not a UUID. One output row per (key, attribute), the text in
//!   `attribute_value`.
//! * Never twice: a batch's distinct texts are looked up in the content-addressed cache first; only
//!   the misses go to the model, and what it answers is cached at once.
//! * Precise: the step's keys are nodes (edges), with the attribute list as a side input joined on
//!   the type. Editing a non-embeddable attribute reprocesses the node, but every text is a cache
//!   hit and no row changes. Marking an attribute embeddable reprocesses the nodes of that type,
//!   and only the new texts are sent. A changed provider, model or dimension changes the step's
//!   fingerprint: everything is re-embedded.
//! * The table's `vector(N)` must match the model's dimension: checked before any call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::batching::SendStats;
use crate::cache::text_hash;
use crate::openai::{OpenAiConfig, OpenAiEmbedder};
use crate::{embed_all, BatchLimits, EmbedError, Embedder, EmbeddingCache};
use etl_core::config::Settings;

use super::bulk_index;
pub use super::target::Target;
use super::texts::{embeddable_by_type, texts_of};
use etl_core::step::roles::ATTRIBUTES;
use etl_core::step::{InputRole, RunStart};
use etl_core::{
    BatchOutput, ErrorClass, InputBatch, Key, Row, StepContext, StepError, Transform, Value,
};

/// Which model, read from the settings.
#[derive(Debug, Clone)]
enum ProviderConfig {
    OpenAi(OpenAiConfig),
    Local(PathBuf),
}

pub struct EmbedStep {
    target: Target,
    /// The table the vectors go to (the step's configured output).
    output: String,
    provider: ProviderConfig,
    limits: BatchLimits,
    database_url: Option<String>,
    /// Keys from which a run is a bulk load (see [`bulk_index`]).
    bulk_load_from_keys: u64,
    /// Cache entries unused for this many days are forgotten after a run that embedded
    /// (0: kept forever).
    cache_max_age_days: u64,
    /// `maintenance_work_mem` for making the vector indexes again.
    index_build_memory: String,
    index_build_workers: u64,
    pool: OnceCell<sqlx::PgPool>,
    ready: OnceCell<Ready>,
    /// Held by a batch from its cache lookup until what the model answered is cached: batches
    /// running side by side take turns at the model, so a text two of them hold is sent once,
    /// while their writes to the vector table (the engine's, after `process`) overlap.
    model_turn: tokio::sync::Mutex<()>,
    /// Whether this run may still turn out a bulk load (decided by its batches, in turn).
    bulk: bulk_index::Candidate,
}

/// The embedding steps' memo: no vector index of the table is set aside.
const INDEXES_IN_PLACE: &str = "vector indexes in place";

/// What the first batch sets up: the model, the cache, and the checked dimension.
struct Ready {
    embedder: Arc<dyn Embedder>,
    cache: EmbeddingCache,
}

impl EmbedStep {
    pub fn from_settings(
        target: Target,
        output: String,
        settings: &mut Settings,
        database_url: Option<String>,
    ) -> EmbedStep {
        let provider = settings.string_or("provider", "openai");
        let limits = BatchLimits {
            max_texts: settings.runtime_u64_or("max_texts_per_request", 256).max(1) as usize,
            max_tokens: settings
                .runtime_u64_or("max_tokens_per_request", 100_000)
                .max(1) as usize,
            max_in_flight: settings.runtime_u64_or("max_requests_in_flight", 4).max(1) as usize,
            ..BatchLimits::default()
        };
        let timeout = Duration::from_secs(settings.runtime_u64_or("timeout_secs", 60).max(1));
        let bulk_load_from_keys = settings.runtime_u64_or("bulk_load_from_keys", 2000);
        let cache_max_age_days = settings.runtime_u64_or("cache_max_age_days", 0);
        let index_build_memory = settings.runtime_string_or("index_build_memory", "512MB");
        let index_build_workers = settings.runtime_u64_or("index_build_workers", 1);
        // Every key is read whatever the provider, so that none is reported as unknown.
        let base_url = settings.runtime_string_or("base_url", "https://api.openai.com/v1");
        let api_key = settings.secret("api_key");
        // What decides the vectors is the step's identity: for the local provider its model
        // folder, for an OpenAI-compatible server the model and dimension. The other provider's
        // settings are read, so none is reported as unknown, but never change the fingerprint.
        let local = provider == "local";
        let (model, dims, model_dir) = if local {
            (
                settings.runtime_string_or("model", "text-embedding-3-large"),
                settings.runtime_u64_or("dims", 1024) as u32,
                settings.string_or("model_dir", ""),
            )
        } else {
            (
                settings.string_or("model", "text-embedding-3-large"),
                settings.u64_or("dims", 1024) as u32,
                settings.runtime_string_or("model_dir", ""),
            )
        };
        let provider = match provider.as_str() {
            "local" => {
                if model_dir.is_empty() {
                    settings.error(
                        "model_dir",
                        "the local provider needs the model folder: set EMBEDDINGS_MODEL_DIR",
                    );
                }
                ProviderConfig::Local(PathBuf::from(model_dir))
            }
            other => {
                if other != "openai" {
                    settings.error(
                        "provider",
                        format!("unknown provider `{other}` (known: openai, local)"),
                    );
                }
                ProviderConfig::OpenAi(OpenAiConfig {
                    base_url,
                    api_key,
                    model,
                    dims,
                    timeout,
                })
            }
        };
        EmbedStep {
            target,
            output,
            provider,
            limits,
            database_url,
            bulk_load_from_keys,
            cache_max_age_days,
            index_build_memory,
            index_build_workers,
            pool: OnceCell::new(),
            ready: OnceCell::new(),
            model_turn: tokio::sync::Mutex::new(()),
            bulk: bulk_index::Candidate::default(),
        }
    }

    /// The step's own connections (the cache, the vector indexes).
    async fn pool(&self) -> Result<&sqlx::PgPool, StepError> {
        self.pool
            .get_or_try_init(|| {
                super::step_database::connect(self.database_url.as_deref(), "the embedding cache")
            })
            .await
    }

    /// Loads the model and checks its dimension against the table, once.
    async fn ready(&self) -> Result<&Ready, StepError> {
        self.ready
            .get_or_try_init(|| async {
                let embedder: Arc<dyn Embedder> = match &self.provider {
                    ProviderConfig::OpenAi(c) => Arc::new(OpenAiEmbedder::new(c.clone()).map_err(embed_error)?),
                    ProviderConfig::Local(dir) => load_local(dir)?,
                };
                let pool = self.pool().await?.clone();
                let table = self.output.as_str();
                let column: Option<String> = sqlx::query_scalar(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                      WHERE attrelid = to_regclass($1) AND attname = 'embedding'",
                )
                .bind(table)
                .fetch_optional(&pool)
                .await
                .map_err(|e| StepError::transient(format!("reading the type of {table}.embedding: {e}")))?;
                let column = column.unwrap_or_default();
                let dims = embedder.id().dims;
                if column != format!("vector({dims})") {
                    return Err(StepError::fatal(format!(
                        "the model {} gives {dims} dimensions but {table}.embedding is {column}: set EMBEDDINGS_DIM to the \
                         table's dimension (and a model that gives it), or move the table to the model's: \
                         `etl migrate --embeddings-dim {dims}` (it drops the old vectors; the next run embeds again)",
                        embedder.id().model
                    )));
                }
                Ok(Ready {
                    embedder,
                    cache: EmbeddingCache::new(pool),
                })
            })
            .await
    }
}

#[cfg(feature = "local")]
fn load_local(dir: &std::path::Path) -> Result<Arc<dyn Embedder>, StepError> {
    Ok(Arc::new(
        crate::local::LocalEmbedder::load(dir).map_err(embed_error)?,
    ))
}

#[cfg(not(feature = "local"))]
fn load_local(_dir: &std::path::Path) -> Result<Arc<dyn Embedder>, StepError> {
    Err(StepError::fatal(
        "this etl was built without the local embedding provider (feature local-embeddings of etl, local of embeddings)",
    ))
}

impl EmbedStep {
    /// Embeds a search query with the step's model (`etl search`); the vector is not cached.
    pub async fn embed_query(&self, text: &str) -> Result<Vec<f32>, StepError> {
        let ready = self.ready().await?;
        let mut v = ready
            .embedder
            .embed(&[text.to_string()])
            .await
            .map_err(embed_error)?;
        v.pop()
            .ok_or_else(|| StepError::fatal("the model returned no vector"))
    }
}

fn embed_error(e: EmbedError) -> StepError {
    match e {
        // The batcher retried the request already: retries happen in one layer.
        EmbedError::Transient {
            message,
            retry_after,
        } => StepError::transient(message)
            .with_retry_after(retry_after)
            .already_retried(),
        EmbedError::Rejected { message } => StepError::data(message),
        EmbedError::Fatal { message } => StepError::fatal(message),
    }
}

#[async_trait]
impl Transform for EmbedStep {
    fn key_columns(&self) -> Vec<String> {
        self.target.key()
    }

    fn inputs(&self) -> Vec<InputRole> {
        self.target.roles()
    }

    fn outputs(&self) -> Vec<etl_core::step::OutputRole> {
        vec![self.target.output_role()]
    }

    async fn check(&self) -> Result<(), StepError> {
        self.ready().await.map(|_| ())
    }

    async fn estimate(
        &self,
        _ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BTreeMap<String, u64>, StepError> {
        let ready = self.ready().await?;
        let wanted = texts_of(self.target, &batch);
        let mut distinct: Vec<&str> = wanted.iter().map(|w| w.3.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let hashes: Vec<_> = distinct.iter().map(|t| text_hash(t)).collect();
        let cached = ready
            .cache
            .get_many(ready.embedder.id(), &hashes)
            .await
            .map_err(|e| StepError::transient(e.to_string()))?;
        let (mut texts, mut tokens) = (0u64, 0u64);
        for (text, hash) in distinct.iter().zip(&hashes) {
            if !cached.contains_key(hash) {
                texts += 1;
                tokens += ready.embedder.estimate_tokens(text) as u64;
            }
        }
        Ok(BTreeMap::from([
            ("texts_to_embed".to_string(), texts),
            ("texts_in_cache".to_string(), cached.len() as u64),
            ("tokens_to_embed".to_string(), tokens),
        ]))
    }

    /// Nothing to embed when the attribute list marks no attribute embeddable: the keys are
    /// settled unread (at M, 200,000 edges of which no label embeds anything: 100 batches).
    async fn produces_nothing(&self, ctx: &StepContext) -> Result<bool, StepError> {
        let reads = ctx.reads()?;
        let Some(list) = reads
            .step()
            .inputs
            .iter()
            .find(|i| i.role.as_deref() == Some(ATTRIBUTES))
        else {
            return Ok(false);
        };
        let attributes = reads.whole_input(&list.table).await?;
        Ok(embeddable_by_type(self.target, &attributes).is_empty())
    }

    async fn starting(&self, _ctx: &StepContext, run: RunStart) -> Result<(), StepError> {
        let candidate = run.pending_keys >= self.bulk_load_from_keys;
        if candidate && run.queued {
            // The batches are processed by other instances of the step, which never hear of
            // this run: decide now, by the count alone.
            self.bulk.start(None);
            return bulk_index::defer(self.pool().await?, &self.output, run.pending_keys).await;
        }
        self.bulk.start(candidate.then_some(run.pending_keys));
        Ok(())
    }

    async fn finished(&self, ctx: &StepContext, keys_processed: u64) -> Result<(), StepError> {
        // The memo says the indexes are in place; a run that wrote (or died writing) forgot it.
        if keys_processed > 0 || ctx.memo.as_deref() != Some(INDEXES_IN_PLACE) {
            let build = bulk_index::Build {
                memory: &self.index_build_memory,
                workers: self.index_build_workers,
            };
            bulk_index::restore(self.pool().await?, &self.output, build).await?;
        }
        ctx.remember(INDEXES_IN_PLACE);
        if keys_processed > 0 && self.cache_max_age_days > 0 {
            let cache = EmbeddingCache::new(self.pool().await?.clone());
            let gone = cache
                .forget_unused(self.cache_max_age_days)
                .await
                .map_err(|e| StepError::transient(e.to_string()))?;
            ctx.counters.add("embedding_cache_forgotten", gone);
        }
        Ok(())
    }

    async fn process(
        &self,
        ctx: &StepContext,
        batch: InputBatch,
    ) -> Result<BatchOutput, StepError> {
        let ready = self.ready().await?;
        let target = self.target;

        let wanted = texts_of(target, &batch);
        let turn = self.model_turn.lock().await;

        // Distinct texts: cache first, the model for the rest.
        let mut distinct: Vec<&str> = wanted.iter().map(|w| w.3.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let hashes: Vec<_> = distinct.iter().map(|t| text_hash(t)).collect();
        let id = ready.embedder.id().clone();
        let mut vectors = ready
            .cache
            .get_many(&id, &hashes)
            .await
            .map_err(|e| StepError::transient(e.to_string()))?;
        ctx.counters
            .add("embedding_cache_hits", vectors.len() as u64);
        let misses: Vec<String> = distinct
            .iter()
            .zip(&hashes)
            .filter(|(_, h)| !vectors.contains_key(*h))
            .map(|(t, _)| t.to_string())
            .collect();
        // Under `model_turn`: the first batch to tell the run a bulk load sets the indexes
        // aside; the rows of the batches before it went into them as they are.
        if let Some(pending) = self.bulk.take(misses.len(), distinct.len()) {
            bulk_index::defer(self.pool().await?, &self.output, pending).await?;
        }
        let mut refused: HashMap<String, String> = HashMap::new();
        if !misses.is_empty() {
            let stats = SendStats::default();
            let results = embed_all(ready.embedder.as_ref(), &misses, &self.limits, &stats).await;
            ctx.counters
                .add("embedding_requests", stats.requests.load(Ordering::Relaxed));
            ctx.counters
                .add("texts_embedded", stats.texts.load(Ordering::Relaxed));
            ctx.counters
                .add("tokens_embedded", stats.tokens.load(Ordering::Relaxed));
            let results = results.map_err(embed_error)?;
            let mut fresh = Vec::new();
            for (text, r) in misses.iter().zip(results) {
                match r {
                    Ok(v) => fresh.push((text_hash(text), v)),
                    Err(why) => {
                        refused.insert(text.clone(), why);
                    }
                }
            }
            // Paid for: keep it, whatever happens to the rest of the batch.
            ready
                .cache
                .put_many(&id, &fresh)
                .await
                .map_err(|e| StepError::transient(e.to_string()))?;
            vectors.extend(fresh);
        }
        drop(turn);

        let mut out = BatchOutput::default();
        let mut failed: HashSet<Key> = HashSet::new();
        for (key, row, name, text) in &wanted {
            if let Some(why) = refused.get(text) {
                if failed.insert(key.clone()) {
                    out.failed.push((
                        key.clone(),
                        StepError::new(
                            ErrorClass::Data,
                            format!("the model refused the text of attribute `{name}`: {why}"),
                        ),
                    ));
                }
                continue;
            }
            let Some(vector) = vectors.get(&text_hash(text)) else {
                continue;
            };
            let mut r = Row::new();
            for c in target.carried() {
                r.set(*c, row.get(c).cloned().unwrap_or(Value::Null));
            }
            r.set("attribute_name", name.as_str());
            r.set("attribute_value", text.as_str());
            r.set("embedding", Value::Vector(vector.clone()));
            out.push(&self.output, key, r);
        }
        out.rows.retain(|r| !failed.contains(&r.producer));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_with(env: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        let table: toml::Table = toml::from_str(
            r#"
            provider = "${EMBEDDINGS_PROVIDER:-openai}"
            model = "${EMBEDDINGS_MODEL:-text-embedding-3-large}"
            dims = "${EMBEDDINGS_DIM:-1024}"
            model_dir = "${EMBEDDINGS_MODEL_DIR:-}"
            "#,
        )
        .unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup: etl_core::config::EnvLookup = Arc::new(move |k| env.get(k).cloned());
        let mut settings = Settings::new("steps.embed_nodes.settings", table, lookup);
        let _ = EmbedStep::from_settings(Target::Nodes, String::new(), &mut settings, None);
        settings.finish().identity
    }

    #[test]
    fn model_dir_set_with_the_openai_provider_reembedded_everything() {
        // The services script exports EMBEDDINGS_MODEL_DIR for the local model; a pipeline on
        // the OpenAI provider must not see its fingerprint change (and every key re-embedded).
        assert_eq!(
            identity_with(&[]),
            identity_with(&[("EMBEDDINGS_MODEL_DIR", "/models/minilm")])
        );
        // The local provider's vectors come from that folder: it is its identity.
        assert_ne!(
            identity_with(&[
                ("EMBEDDINGS_PROVIDER", "local"),
                ("EMBEDDINGS_MODEL_DIR", "/a")
            ]),
            identity_with(&[
                ("EMBEDDINGS_PROVIDER", "local"),
                ("EMBEDDINGS_MODEL_DIR", "/b")
            ])
        );
        // A changed model re-embeds.
        assert_ne!(
            identity_with(&[]),
            identity_with(&[("EMBEDDINGS_MODEL", "text-embedding-3-small")])
        );
    }
}
