//! `HttpProvider<W>`: the one `Provider` implementation. The flow —
//! catalog check before any network call, POST, error mapping, response
//! parsing or SSE pumping — is shared; each vendor's `WireApi` supplies only
//! its request mapping and response/stream parsing.

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;
use types::{
    Context, ModelCatalog, ModelDescriptor, ModelId, Provider, ProviderCaps, ProviderError,
    ProviderId, ProviderStream, ProviderType, Response,
};

use crate::http::{EventParser, HttpEndpoint, pump_sse, transport_error};

/// One HTTP request: a path below the base URL and a JSON body.
#[derive(Debug)]
pub struct WireRequest<B> {
    /// Appended to the entry's base URL (`/chat/completions`).
    pub path: String,
    pub body: B,
}

/// A vendor's wire format: how a `Context` becomes a request and how the
/// answer (whole or streamed) becomes neutral values.
pub trait WireApi: Send + Sync + 'static {
    type Body<'a>: Serialize + Send + Sync
    where
        Self: 'a;
    type Parser: EventParser;

    /// Maps `context` to a request (streamed or not).
    fn request<'a>(
        &'a self,
        context: &'a Context,
        model: &'a ModelDescriptor,
        stream: bool,
    ) -> Result<WireRequest<Self::Body<'a>>, ProviderError>;

    /// Normalises a complete response body.
    fn parse_response(&self, context: &Context, body: &Bytes) -> Result<Response, ProviderError>;

    /// A parser for one streamed response.
    fn stream_parser(&self, context: &Context) -> Self::Parser;

    /// Called when a request failed. Returning `true` sends it once more:
    /// the wire has dropped server-side state the server rejected (an
    /// expired `previous_response_id`) and will send the full history.
    fn retry_without_state(&self, _context: &Context, _error: &ProviderError) -> bool {
        false
    }
}

/// A provider speaking `W` over HTTP.
#[derive(Debug)]
pub struct HttpProvider<W> {
    id: ProviderId,
    provider_type: ProviderType,
    catalog: ModelCatalog,
    endpoint: HttpEndpoint,
    wire: W,
}

impl<W: WireApi> HttpProvider<W> {
    pub(crate) fn from_parts(
        id: ProviderId,
        provider_type: ProviderType,
        catalog: ModelCatalog,
        endpoint: HttpEndpoint,
        wire: W,
    ) -> Self {
        Self {
            id,
            provider_type,
            catalog,
            endpoint,
            wire,
        }
    }

    /// The model's descriptor, after checking the request is possible.
    fn check(&self, context: &Context, stream: bool) -> Result<&ModelDescriptor, ProviderError> {
        let model = self.catalog.require(self.provider_type, &context.model)?;
        if !context.tools.is_empty() && !model.supports_tools {
            return Err(ProviderError::Unsupported(format!(
                "model '{}' does not support tool calls",
                model.id
            )));
        }
        if stream && !model.supports_streaming {
            return Err(ProviderError::Unsupported(format!(
                "model '{}' does not support streaming; use complete()",
                model.id
            )));
        }
        Ok(model)
    }

    async fn send(
        &self,
        context: &Context,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let model = self.check(context, stream)?;
        match self.send_once(context, model, stream).await {
            Err(error) if self.wire.retry_without_state(context, &error) => {
                tracing::info!(provider = %self.id, %error, "retrying without server-side state");
                self.send_once(context, model, stream).await
            }
            result => result,
        }
    }

    async fn send_once(
        &self,
        context: &Context,
        model: &ModelDescriptor,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let request = self.wire.request(context, model, stream)?;
        tracing::debug!(
            provider = %self.id,
            model = %context.model,
            stream,
            messages = context.messages.len(),
            "provider request"
        );
        self.endpoint.post_json(&request.path, &request.body).await
    }
}

#[async_trait]
impl<W: WireApi> Provider for HttpProvider<W> {
    fn provider_id(&self) -> &ProviderId {
        &self.id
    }

    fn model_catalog(&self) -> &ModelCatalog {
        &self.catalog
    }

    fn capabilities(&self, model: &ModelId) -> Result<ProviderCaps, ProviderError> {
        self.catalog.caps(self.provider_type, model)
    }

    /// A whole answer arrives at once, so all of it must come within
    /// `first_token_timeout_secs`.
    async fn complete(&self, context: &Context) -> Result<Response, ProviderError> {
        let timeouts = self.endpoint.timeouts();
        let body = tokio::time::timeout(timeouts.first_token, async {
            let response = self.send(context, false).await?;
            response.bytes().await.map_err(transport_error)
        })
        .await
        .map_err(|_| timeouts.first_token_error())??;
        self.wire.parse_response(context, &body)
    }

    async fn stream(
        &self,
        context: &Context,
        buffer_size: usize,
    ) -> Result<ProviderStream, ProviderError> {
        let timeouts = self.endpoint.timeouts();
        let first_token_deadline = Instant::now() + timeouts.first_token;
        let response = tokio::time::timeout_at(first_token_deadline, self.send(context, true))
            .await
            .map_err(|_| timeouts.first_token_error())??;
        Ok(pump_sse(
            response,
            self.wire.stream_parser(context),
            buffer_size,
            timeouts.clone(),
            first_token_deadline,
        ))
    }
}

/// A tool call's arguments as a JSON object, for vendors that take objects
/// (Anthropic's `input`, Gemini's `args`) rather than OpenAI's raw string.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ObjectArguments<'a> {
    Object(serde_json::Map<String, serde_json::Value>),
    /// Arguments that are not a JSON object. Models sometimes produce
    /// malformed ones and they stay in the history; wrapping them keeps the
    /// request valid and shows the model what it wrote.
    Raw {
        #[serde(rename = "_raw_arguments")]
        raw_arguments: &'a str,
    },
}

impl<'a> ObjectArguments<'a> {
    pub(crate) fn parse(arguments: &'a str) -> Self {
        // Some servers send "" for a call without arguments.
        if arguments.trim().is_empty() {
            return Self::Object(serde_json::Map::new());
        }
        match serde_json::from_str(arguments) {
            Ok(object) => Self::Object(object),
            Err(_) => Self::Raw {
                raw_arguments: arguments,
            },
        }
    }
}

/// Parses a JSON value, mapping failures to `ResponseParse`.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| ProviderError::ResponseParse(e.to_string()))
}
