//! An OpenAI-compatible embeddings endpoint (`POST {base_url}/embeddings`:
//! OpenAI, Ollama, vLLM, llama.cpp). The request asks for `DIMENSIONS`
//! dimensions (honoured by models that can shorten their output); an
//! answer of any other width is refused with a message naming the model,
//! because the vector column holds exactly `DIMENSIONS` values.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use types::{MemoryError, SecretString};

use super::{DIMENSIONS, Embedder, l2_normalize};

/// Time allowed for one embeddings request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Texts sent in one request.
const BATCH: usize = 64;

#[derive(Debug, Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
    dimensions: usize,
    encoding_format: &'static str,
}

#[derive(Debug, Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: String,
}

/// Embeddings from an OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    model: String,
    /// `openai:<model>`, the stored name.
    stored_name: String,
}

impl OpenAiEmbedder {
    /// `base_url` up to the API version (`http://127.0.0.1:11434/v1`).
    pub fn new(
        base_url: &str,
        api_key: Option<SecretString>,
        model: &str,
    ) -> Result<Self, MemoryError> {
        if model.trim().is_empty() {
            return Err(MemoryError::Embedding(
                "memory.embedding.model is empty; name the embedding model".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| MemoryError::Embedding(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            api_key: api_key.filter(|key| !key.is_empty()),
            model: model.to_owned(),
            stored_name: format!("openai:{model}"),
        })
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let mut request = self.client.post(&self.url).json(&EmbeddingsRequest {
            model: &self.model,
            input: texts,
            dimensions: DIMENSIONS,
            encoding_format: "float",
        });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| {
            MemoryError::Embedding(format!(
                "embeddings request to {} failed: {}",
                self.url,
                e.without_url()
            ))
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            MemoryError::Embedding(format!(
                "reading the embeddings answer from {} failed: {}",
                self.url,
                e.without_url()
            ))
        })?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorEnvelope>(&body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(MemoryError::Embedding(format!(
                "embeddings endpoint {} answered {status}: {detail}",
                self.url
            )));
        }
        let parsed: EmbeddingsResponse = serde_json::from_slice(&body).map_err(|e| {
            MemoryError::Embedding(format!(
                "embeddings endpoint {} sent an unreadable answer: {e}",
                self.url
            ))
        })?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in parsed.data {
            if item.embedding.len() != DIMENSIONS {
                return Err(MemoryError::Embedding(format!(
                    "model '{}' returned {} dimensions; memory stores {DIMENSIONS}-dimension vectors, so use a model that honours `dimensions` or produces {DIMENSIONS}",
                    self.model,
                    item.embedding.len()
                )));
            }
            let slot = vectors.get_mut(item.index).ok_or_else(|| {
                MemoryError::Embedding(format!(
                    "embeddings endpoint {} answered index {} for {} inputs",
                    self.url,
                    item.index,
                    texts.len()
                ))
            })?;
            let mut vector = item.embedding;
            l2_normalize(&mut vector);
            *slot = Some(vector);
        }
        vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    MemoryError::Embedding(format!(
                        "embeddings endpoint {} returned no vector for input {i}",
                        self.url
                    ))
                })
            })
            .collect()
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_name(&self) -> &str {
        &self.stored_name
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            vectors.extend(self.embed_batch(batch).await?);
        }
        Ok(vectors)
    }
}
