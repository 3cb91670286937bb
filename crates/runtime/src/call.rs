//! One provider call inside a turn: `stream()` when the model supports it,
//! text forwarded as it arrives, `complete()` as the fallback when the
//! stream fails before producing anything (not after a rate limit, which
//! `complete()` would meet as well); always raced against the
//! turn's cancellation token and the per-call deadline.

use provider::StreamCollector;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use types::{Context, Provider, ProviderError, Response, StreamItem};

use crate::events::{EventSink, RuntimeEvent, emit};

/// Why a call produced no complete response.
#[derive(Debug)]
pub enum CallFailure {
    /// Cancelled; the text already forwarded is returned so it can be kept.
    Cancelled { partial: String },
    /// The deadline passed; the text already forwarded is returned.
    TimedOut { partial: String },
    /// The provider failed; `partial` is the text forwarded before it did.
    Provider {
        error: ProviderError,
        partial: String,
    },
}

/// Runs one provider call for `context`.
pub async fn call_provider(
    provider: &dyn Provider,
    context: &Context,
    streaming: bool,
    buffer_size: usize,
    deadline: Instant,
    cancel: &CancellationToken,
    events: &EventSink,
) -> Result<Response, CallFailure> {
    if streaming {
        let opened = tokio::select! {
            _ = cancel.cancelled() => return Err(CallFailure::Cancelled { partial: String::new() }),
            _ = tokio::time::sleep_until(deadline) => return Err(CallFailure::TimedOut { partial: String::new() }),
            opened = provider.stream(context, buffer_size) => opened,
        };
        match opened {
            Ok(stream) => match consume(stream, deadline, cancel, events).await {
                Err(Consumed::BeforeContent(error)) => {
                    tracing::info!(%error, "stream failed before content; falling back to complete()");
                }
                Err(Consumed::Failed(failure)) => return Err(failure),
                Ok(response) => return Ok(response),
            },
            // A rate limit is the account's, not the stream's: complete()
            // would only ask again before the server's wait is over.
            Err(error @ ProviderError::RateLimited { .. }) => {
                return Err(CallFailure::Provider {
                    error,
                    partial: String::new(),
                });
            }
            Err(error) => {
                tracing::info!(%error, "stream could not start; falling back to complete()");
            }
        }
    }
    let response = tokio::select! {
        _ = cancel.cancelled() => return Err(CallFailure::Cancelled { partial: String::new() }),
        _ = tokio::time::sleep_until(deadline) => return Err(CallFailure::TimedOut { partial: String::new() }),
        response = provider.complete(context) => response,
    };
    let response = response.map_err(|error| CallFailure::Provider {
        error,
        partial: String::new(),
    })?;
    if let Some(text) = response
        .message
        .content
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        emit(events, RuntimeEvent::TextDelta(text.to_owned())).await;
    }
    Ok(response)
}

enum Consumed {
    /// Nothing was forwarded yet; a fallback is safe.
    BeforeContent(ProviderError),
    Failed(CallFailure),
}

async fn consume(
    mut stream: types::ProviderStream,
    deadline: Instant,
    cancel: &CancellationToken,
    events: &EventSink,
) -> Result<Response, Consumed> {
    let mut collector = StreamCollector::new();
    let mut forwarded = String::new();
    let mut content_seen = false;
    loop {
        let item = tokio::select! {
            _ = cancel.cancelled() => {
                return Err(Consumed::Failed(CallFailure::Cancelled { partial: forwarded }));
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Consumed::Failed(CallFailure::TimedOut { partial: forwarded }));
            }
            item = stream.recv() => item,
        };
        let Some(item) = item else {
            break;
        };
        match &item {
            StreamItem::Text(text) => {
                content_seen = true;
                forwarded.push_str(text);
                emit(events, RuntimeEvent::TextDelta(text.clone())).await;
            }
            StreamItem::ReasoningDelta(text) => {
                content_seen = true;
                emit(events, RuntimeEvent::ReasoningDelta(text.clone())).await;
            }
            StreamItem::ToolCallDelta { .. } => content_seen = true,
            StreamItem::ConnectionLost(reason) if !content_seen => {
                return Err(Consumed::BeforeContent(ProviderError::ConnectionLost(
                    reason.clone(),
                )));
            }
            // Signatures, redacted reasoning and response references are
            // kept by the collector for the next request; nothing to show.
            StreamItem::ConnectionLost(_)
            | StreamItem::ReasoningEnd { .. }
            | StreamItem::RedactedReasoning(_)
            | StreamItem::ToolCallSignature { .. }
            | StreamItem::ResponseRef(_)
            | StreamItem::UsageUpdate(_)
            | StreamItem::FinishReason(_) => {}
        }
        collector.push(item);
    }
    collector.finish().map_err(|error| {
        Consumed::Failed(CallFailure::Provider {
            error,
            partial: forwarded,
        })
    })
}
