//! A BERT-class sentence-embedding model (all-MiniLM-L6-v2, BGE-small, …)
//! run in-process with candle on the CPU: tokenise, encode, mean-pool over
//! the attention mask, L2-normalise. The files (`config.json`,
//! `tokenizer.json`, `model.safetensors`) are read from a directory on the
//! first text embedded, so start-up stays fast; nothing is downloaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::OnceCell;
use types::MemoryError;

use super::catalog::{MODEL_FILES, semantic_model_name};
use super::{DIMENSIONS, Embedder, l2_normalize};

/// Tokens per text; longer texts are truncated (chunks are ~640 chars).
const MAX_TOKENS: usize = 256;
/// Texts encoded in one forward pass.
const BATCH: usize = 32;

/// A local sentence-embedding model, loaded on first use.
pub struct SemanticEmbedder {
    dir: PathBuf,
    name: String,
    loaded: OnceCell<Arc<Loaded>>,
}

impl std::fmt::Debug for SemanticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticEmbedder")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("loaded", &self.loaded.initialized())
            .finish()
    }
}

struct Loaded {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl SemanticEmbedder {
    /// Checks that the files exist; loading waits for the first text.
    /// The stored model name is `model_name`, or the directory's name.
    pub fn new(dir: &Path, model_name: Option<&str>) -> Result<Self, MemoryError> {
        for file in MODEL_FILES {
            if !dir.join(file).is_file() {
                return Err(MemoryError::Embedding(format!(
                    "model directory {} has no {file}; it needs {} (see docs/configuration.md)",
                    dir.display(),
                    MODEL_FILES.join(", ")
                )));
            }
        }
        let name = model_name.map(str::to_owned).unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "local-model".to_owned())
        });
        Ok(Self {
            dir: dir.to_owned(),
            name: semantic_model_name(&name),
            loaded: OnceCell::new(),
        })
    }

    /// Whether the model has been loaded yet.
    pub fn is_loaded(&self) -> bool {
        self.loaded.initialized()
    }

    async fn loaded(&self) -> Result<Arc<Loaded>, MemoryError> {
        self.loaded
            .get_or_try_init(|| async {
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || Loaded::load(&dir).map(Arc::new))
                    .await
                    .map_err(|e| MemoryError::Embedding(format!("model loading stopped: {e}")))?
            })
            .await
            .cloned()
    }
}

fn model_error(dir: &Path, what: &str) -> impl Fn(candle_core::Error) -> MemoryError {
    let prefix = format!("{what} ({})", dir.display());
    move |e| MemoryError::Embedding(format!("{prefix}: {e}"))
}

impl Loaded {
    fn load(dir: &Path) -> Result<Self, MemoryError> {
        let read = |file: &str| {
            std::fs::read(dir.join(file)).map_err(|e| {
                MemoryError::Embedding(format!("cannot read {}: {e}", dir.join(file).display()))
            })
        };
        let config: Config = serde_json::from_slice(&read("config.json")?).map_err(|e| {
            MemoryError::Embedding(format!(
                "{} is not a BERT config: {e}",
                dir.join("config.json").display()
            ))
        })?;
        let device = Device::Cpu;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(model_error(dir, "cannot read the model weights"))?;
        let model =
            BertModel::load(vb, &config).map_err(model_error(dir, "cannot build the model"))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
            MemoryError::Embedding(format!(
                "cannot read {}: {e}",
                dir.join("tokenizer.json").display()
            ))
        })?;
        tokenizer
            .with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                ..PaddingParams::default()
            }))
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| MemoryError::Embedding(format!("cannot configure the tokenizer: {e}")))?;
        let loaded = Self {
            model,
            tokenizer,
            device,
        };
        // A model of the wrong width is refused now, not at the first insert.
        let probe = loaded.embed(&["probe".to_owned()])?;
        let width = probe.first().map_or(0, Vec::len);
        if width != DIMENSIONS {
            return Err(MemoryError::Embedding(format!(
                "the model in {} produces {width}-dimension vectors; memory stores {DIMENSIONS} (use a MiniLM / BGE-small class model)",
                dir.display()
            )));
        }
        Ok(loaded)
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let failed =
            |e: candle_core::Error| MemoryError::Embedding(format!("model inference: {e}"));
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let encodings = self
                .tokenizer
                .encode_batch(batch.to_vec(), true)
                .map_err(|e| MemoryError::Embedding(format!("tokenizing failed: {e}")))?;
            let rows = encodings.len();
            let width = encodings.first().map_or(0, |e| e.get_ids().len());
            let flat = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
                encodings.iter().flat_map(|e| pick(e).to_vec()).collect()
            };
            let ids = Tensor::from_vec(flat(|e| e.get_ids()), (rows, width), &self.device)
                .map_err(failed)?;
            let types = Tensor::from_vec(flat(|e| e.get_type_ids()), (rows, width), &self.device)
                .map_err(failed)?;
            let mask = Tensor::from_vec(
                flat(|e| e.get_attention_mask()),
                (rows, width),
                &self.device,
            )
            .map_err(failed)?;
            let hidden = self
                .model
                .forward(&ids, &types, Some(&mask))
                .map_err(failed)?;
            // Mean over the real (unpadded) tokens.
            let mask = mask.to_dtype(DType::F32).map_err(failed)?;
            let summed = hidden
                .broadcast_mul(&mask.unsqueeze(2).map_err(failed)?)
                .and_then(|t| t.sum(1))
                .map_err(failed)?;
            let counts = mask.sum_keepdim(1).map_err(failed)?;
            let pooled = summed.broadcast_div(&counts).map_err(failed)?;
            for mut vector in pooled.to_vec2::<f32>().map_err(failed)? {
                l2_normalize(&mut vector);
                out.push(vector);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for SemanticEmbedder {
    fn model_name(&self) -> &str {
        &self.name
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let loaded = self.loaded().await?;
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || loaded.embed(&texts))
            .await
            .map_err(|e| MemoryError::Embedding(format!("model inference stopped: {e}")))?
    }
}
