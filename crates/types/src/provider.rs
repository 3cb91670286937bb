//! The `Provider` trait: one LLM backend behind a vendor-neutral interface.

use async_trait::async_trait;

use crate::catalog::{ModelCatalog, ProviderCaps};
use crate::error::ProviderError;
use crate::ids::{ModelId, ProviderId};
use crate::message::{Context, ProviderStream, Response};

/// An LLM backend. Implementations turn a `Context` into their wire format
/// and normalise the answer, so the runtime never knows which vendor it
/// talks to.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The registry entry this provider was built from.
    fn provider_id(&self) -> &ProviderId;
    /// The catalog (pinned snapshot plus the entry's declared models).
    fn model_catalog(&self) -> &ModelCatalog;
    /// What `model` can do; `UnknownModel` before any network call.
    fn capabilities(&self, model: &ModelId) -> Result<ProviderCaps, ProviderError>;
    /// One complete answer.
    async fn complete(&self, context: &Context) -> Result<Response, ProviderError>;
    /// A streamed answer delivered through a channel of `buffer_size` items.
    async fn stream(
        &self,
        context: &Context,
        buffer_size: usize,
    ) -> Result<ProviderStream, ProviderError>;
}
