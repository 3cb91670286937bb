//! Embedders: text to unit-length vectors for similarity search. Every
//! embedder produces `DIMENSIONS`-long vectors (the width of the native
//! vector column) and names its model; vectors are stored with that name so
//! different models never meet in one comparison.

pub mod catalog;
mod endpoint;
mod lexical;
#[cfg(feature = "semantic")]
mod semantic;

use std::sync::Arc;

use async_trait::async_trait;
use types::config::EmbeddingConfig;
use types::{MemoryError, SecretString};

pub use endpoint::OpenAiEmbedder;
pub use lexical::LexicalEmbedder;
#[cfg(feature = "semantic")]
pub use semantic::SemanticEmbedder;

/// The width of every stored vector (the `F32_BLOB(384)` column).
pub const DIMENSIONS: usize = 384;

/// Turns texts into vectors.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The name stored with each vector, e.g. `oxydra-lexical-v1`.
    fn model_name(&self) -> &str;
    /// One L2-normalised `DIMENSIONS`-long vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError>;
}

/// Scales `vector` to unit length (a zero vector stays zero).
pub fn l2_normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in vector.iter_mut() {
            *x /= norm;
        }
    }
}

/// What the OpenAI-compatible embedder needs from its provider entry,
/// resolved by the caller (base URL and credential precedence belong to the
/// provider registry, not to memory).
#[derive(Debug, Clone)]
pub struct EndpointAccess {
    /// Up to and including the API version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<SecretString>,
}

/// Builds the configured embedder. `endpoint` is required for
/// `openai_compatible`; the semantic model needs the `semantic` feature and
/// is loaded lazily, on the first text it embeds. `auto` is resolved by the
/// runner (which knows where installed models live); one that arrives here
/// unresolved found no model, so it is the lexical embedder.
pub fn build_embedder(
    config: &EmbeddingConfig,
    endpoint: Option<EndpointAccess>,
) -> Result<Arc<dyn Embedder>, MemoryError> {
    match config {
        EmbeddingConfig::Auto {} | EmbeddingConfig::Lexical {} => {
            Ok(Arc::new(LexicalEmbedder::new()))
        }
        EmbeddingConfig::Semantic {
            model_dir,
            model_name,
        } => semantic_embedder(model_dir, model_name.as_deref()),
        EmbeddingConfig::OpenaiCompatible { provider, model } => {
            let access = endpoint.ok_or_else(|| {
                MemoryError::Embedding(format!(
                    "memory.embedding uses provider '{provider}', but no base URL was resolved for it"
                ))
            })?;
            Ok(Arc::new(OpenAiEmbedder::new(
                &access.base_url,
                access.api_key,
                model,
            )?))
        }
    }
}

#[cfg(feature = "semantic")]
fn semantic_embedder(
    model_dir: &std::path::Path,
    model_name: Option<&str>,
) -> Result<Arc<dyn Embedder>, MemoryError> {
    Ok(Arc::new(SemanticEmbedder::new(model_dir, model_name)?))
}

#[cfg(not(feature = "semantic"))]
fn semantic_embedder(
    model_dir: &std::path::Path,
    _model_name: Option<&str>,
) -> Result<Arc<dyn Embedder>, MemoryError> {
    Err(MemoryError::Embedding(format!(
        "memory.embedding.backend = \"semantic\" (model_dir {}) needs a build with the memory crate's `semantic` feature; use backend = \"lexical\" or rebuild",
        model_dir.display()
    )))
}
