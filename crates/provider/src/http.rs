//! HTTP plumbing shared by every provider: one endpoint type that posts
//! JSON, maps error statuses and envelopes to `ProviderError`, and pumps an
//! SSE response body into a `ProviderStream` through a provider-specific
//! event parser.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use types::{ProviderError, ProviderStream, StreamItem};

use crate::sse::{SseDecoder, SseEvent};

/// How long establishing a connection may take. There is no overall
/// request timeout: an answer may stream for many minutes, so a stream is
/// judged by its progress (`StreamTimeouts`) and the runtime caps a whole
/// turn with `runtime.turn_timeout_secs`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this much of an unparseable error body is quoted in a message.
const MAX_QUOTED_BODY: usize = 500;

/// How long a request may go without progress, from the provider entry's
/// `stream_idle_timeout_secs` and `first_token_timeout_secs`. Either one
/// firing ends the attempt as a dropped connection (`ConnectionLost`, which
/// `ReliableProvider` retries while nothing reached the caller), with a
/// message naming the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// The registry entry's name, for the setting's full key.
    pub provider: String,
    /// The longest gap between two bytes of a streamed body.
    pub idle: Duration,
    /// The longest wait, from the request, for the first content (a
    /// streamed token or tool-call fragment, or a whole non-streamed body).
    pub first_token: Duration,
}

impl StreamTimeouts {
    /// The timeouts of provider entry `provider` as configured.
    pub fn from_entry(provider: &str, entry: &types::config::ProviderEntry) -> Self {
        Self {
            provider: provider.to_owned(),
            idle: Duration::from_secs(entry.stream_idle_timeout_secs),
            first_token: Duration::from_secs(entry.first_token_timeout_secs),
        }
    }

    fn idle_message(&self) -> String {
        format!(
            "no data from the provider for {}s (providers.{}.stream_idle_timeout_secs)",
            self.idle.as_secs_f64(),
            self.provider
        )
    }

    fn first_token_message(&self) -> String {
        format!(
            "no answer from the provider within {}s (providers.{}.first_token_timeout_secs)",
            self.first_token.as_secs_f64(),
            self.provider
        )
    }

    /// The error for a request that produced nothing in time.
    pub(crate) fn first_token_error(&self) -> ProviderError {
        ProviderError::ConnectionLost(self.first_token_message())
    }
}

/// A vendor API root with the headers every request carries.
#[derive(Debug, Clone)]
pub(crate) struct HttpEndpoint {
    client: reqwest::Client,
    base_url: String,
    headers: HeaderMap,
    timeouts: StreamTimeouts,
}

impl HttpEndpoint {
    /// `headers` are (name, value) pairs: the auth header and the entry's
    /// extra headers. Values are marked sensitive so they never appear in
    /// debug output; a bad header is reported by name only.
    pub(crate) fn new(
        base_url: &str,
        headers: impl IntoIterator<Item = (String, String)>,
        timeouts: StreamTimeouts,
    ) -> Result<Self, ProviderError> {
        let url = reqwest::Url::parse(base_url).map_err(|e| {
            ProviderError::Configuration(format!("invalid base_url '{base_url}': {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ProviderError::Configuration(format!(
                "base_url '{base_url}' must use http or https"
            )));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ProviderError::Configuration(format!("invalid header name '{name}'"))
            })?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                ProviderError::Configuration(format!("invalid value for header '{name}'"))
            })?;
            value.set_sensitive(true);
            map.insert(header, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ProviderError::Configuration(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            headers: map,
            timeouts,
        })
    }

    pub(crate) fn timeouts(&self) -> &StreamTimeouts {
        &self.timeouts
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// POSTs `body` as JSON; a non-success status becomes the matching
    /// `ProviderError`.
    pub(crate) async fn post_json<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = self
            .client
            .post(self.url(path))
            .headers(self.headers.clone())
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Err(error_from_status(status.as_u16(), &headers, &body))
    }
}

pub(crate) fn transport_error(error: reqwest::Error) -> ProviderError {
    // reqwest's message names the URL, which never carries a credential
    // (every provider sends keys in headers).
    ProviderError::Transport(error.to_string())
}

/// Maps an error status and body. All four vendors put the human text at
/// `error.message` (OpenAI, Responses and Gemini under `{"error": {..}}`,
/// Anthropic under `{"type": "error", "error": {..}}`).
pub(crate) fn error_from_status(status: u16, headers: &HeaderMap, body: &str) -> ProviderError {
    let message = envelope_message(body).unwrap_or_else(|| quote_body(body, status));
    match status {
        401 | 403 => ProviderError::Unauthorized(message),
        429 => ProviderError::RateLimited {
            retry_after: retry_after(headers),
            message,
        },
        _ => ProviderError::HttpStatus { status, message },
    }
}

fn envelope_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let error = value.get("error").unwrap_or(&value);
    let message = error.get("message")?.as_str()?;
    Some(message.to_owned())
}

fn quote_body(body: &str, status: u16) -> String {
    let body = body.trim();
    if body.is_empty() {
        return format!("empty response body (HTTP {status})");
    }
    match body.char_indices().nth(MAX_QUOTED_BODY) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP
/// date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether a stream has reached its terminal event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStep {
    Continue,
    Done,
}

/// Turns one vendor SSE event into stream items; one parser per stream.
pub trait EventParser: Send + 'static {
    /// Appends the items of `event` to `out`. An `Err` (unparseable event,
    /// or an error event from the vendor) ends the stream with
    /// `ConnectionLost` carrying its message.
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<StreamStep, ProviderError>;
}

/// Streams `response`'s SSE body through `parser` into a bounded channel.
///
/// The pump task is owned by the returned receiver: it stops as soon as the
/// receiver is dropped (even while waiting for bytes), at the terminal
/// event, or when the body ends. A body that ends (or breaks) before the
/// terminal event yields a final `ConnectionLost`.
///
/// `timeouts` bound the gaps: no byte for `idle`, or no content item by
/// `first_token_deadline`, ends the stream with a `ConnectionLost` naming
/// the setting.
pub(crate) fn pump_sse(
    response: reqwest::Response,
    mut parser: impl EventParser,
    buffer_size: usize,
    timeouts: StreamTimeouts,
    first_token_deadline: Instant,
) -> ProviderStream {
    let (tx, rx) = mpsc::channel(buffer_size.max(1));
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        let mut items = Vec::new();
        let mut content_seen = false;
        loop {
            let idle_deadline = Instant::now() + timeouts.idle;
            let waiting_for_first = !content_seen && first_token_deadline < idle_deadline;
            let deadline = if waiting_for_first {
                first_token_deadline
            } else {
                idle_deadline
            };
            let chunk = tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => {
                    // The message is written only now, never per chunk.
                    let why = if waiting_for_first {
                        timeouts.first_token_message()
                    } else {
                        timeouts.idle_message()
                    };
                    // The receiver may be gone already; nothing to do then.
                    let _ = tx.send(StreamItem::ConnectionLost(why)).await;
                    return;
                }
                chunk = body.next() => chunk,
            };
            let lost = match chunk {
                Some(Ok(bytes)) => {
                    decoder.push(&bytes, &mut events);
                    let mut step = StreamStep::Continue;
                    let mut failure = None;
                    for event in events.drain(..) {
                        match parser.on_event(event, &mut items) {
                            Ok(StreamStep::Continue) => {}
                            Ok(StreamStep::Done) => {
                                step = StreamStep::Done;
                                break;
                            }
                            Err(error) => {
                                failure = Some(error.to_string());
                                break;
                            }
                        }
                    }
                    for item in items.drain(..) {
                        content_seen |= item.is_content();
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                    if step == StreamStep::Done {
                        return;
                    }
                    failure
                }
                Some(Err(error)) => Some(format!("connection broke mid-stream: {error}")),
                None => Some("the stream ended before its terminal event".to_owned()),
            };
            if let Some(reason) = lost {
                // The receiver may be gone already; nothing else to do then.
                let _ = tx.send(StreamItem::ConnectionLost(reason)).await;
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn status_mapping() {
        let none = HeaderMap::new();
        let openai = r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}"#;
        assert_eq!(
            error_from_status(401, &none, openai),
            ProviderError::Unauthorized("Incorrect API key".into())
        );
        let anthropic =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            error_from_status(529, &none, anthropic),
            ProviderError::HttpStatus {
                status: 529,
                message: "Overloaded".into()
            }
        );
        let gemini = r#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#;
        let err = error_from_status(400, &none, gemini);
        assert_eq!(
            err.to_string(),
            "provider returned HTTP 400: Invalid JSON payload"
        );
        assert!(!err.is_retriable());
        assert_eq!(
            error_from_status(429, &headers(&[("retry-after", "7")]), "{}"),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
                message: "{}".into()
            }
        );
    }

    #[test]
    fn unparseable_bodies_are_quoted_briefly() {
        let long = "x".repeat(2000);
        let err = error_from_status(502, &HeaderMap::new(), &long);
        assert!(err.to_string().len() < 600, "{err}");
        assert!(
            error_from_status(500, &HeaderMap::new(), "")
                .to_string()
                .contains("empty response body")
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2.5")])),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "150"), ("retry-after", "9")])),
            Some(Duration::from_millis(150))
        );
        let future = SystemTime::now() + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(future);
        let parsed = retry_after(&headers(&[("retry-after", &date)])).unwrap();
        assert!(
            parsed <= Duration::from_secs(30) && parsed >= Duration::from_secs(28),
            "{parsed:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)])),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
    }

    fn timeouts() -> StreamTimeouts {
        StreamTimeouts::from_entry(
            "test",
            &types::config::ProviderEntry::new(types::ProviderType::Openai),
        )
    }

    #[test]
    fn endpoint_rejects_bad_configuration_without_echoing_values() {
        let err = HttpEndpoint::new("ftp://x", [], timeouts()).unwrap_err();
        assert!(err.to_string().contains("must use http or https"), "{err}");
        let err = HttpEndpoint::new("not a url", [], timeouts()).unwrap_err();
        assert!(err.to_string().contains("invalid base_url"), "{err}");
        let err = HttpEndpoint::new(
            "http://127.0.0.1:1",
            [("x-key".into(), "sk-secret\n".into())],
            timeouts(),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("sk-secret"), "{err}");
        let endpoint = HttpEndpoint::new("http://127.0.0.1:1/v1/", [], timeouts()).unwrap();
        assert_eq!(
            endpoint.url("/chat/completions"),
            "http://127.0.0.1:1/v1/chat/completions"
        );
    }
}
