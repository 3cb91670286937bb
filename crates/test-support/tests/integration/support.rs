//! Helpers shared by the integration tests: a proxy-free client, one valid
//! generation request per wire format, and an SSE splitter.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use test_support::{FakeLlm, WireFormat};

pub const ALL_FORMATS: [WireFormat; 4] = [
    WireFormat::Openai,
    WireFormat::OpenaiResponses,
    WireFormat::Anthropic,
    WireFormat::Gemini,
];

/// Long enough for a local answer, short enough to keep a pending-body test
/// fast.
pub const PENDING: Duration = Duration::from_millis(300);

/// A client that never goes through a proxy: every test talks to 127.0.0.1.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds")
}

/// Whether the request asks for a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Complete,
    Stream,
}

/// The URL and body a real client of `format` sends for one user message.
pub fn generation_request(
    fake: &FakeLlm,
    format: WireFormat,
    mode: Mode,
    user: &str,
) -> (String, Value) {
    let stream = mode == Mode::Stream;
    let base = fake.base_url();
    match format {
        WireFormat::Openai => (
            format!("{base}/chat/completions"),
            json!({
                "model": "gpt-test",
                "stream": stream,
                "stream_options": {"include_usage": true},
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": user},
                ],
            }),
        ),
        WireFormat::OpenaiResponses => (
            format!("{base}/responses"),
            json!({
                "model": "gpt-test",
                "stream": stream,
                "instructions": "Be brief.",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": user}]}],
            }),
        ),
        WireFormat::Anthropic => (
            format!("{base}/v1/messages"),
            json!({
                "model": "claude-test",
                "max_tokens": 1024,
                "stream": stream,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": user}],
            }),
        ),
        WireFormat::Gemini => {
            let action = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            (
                format!("{base}/v1beta/models/gemini-test:{action}"),
                json!({
                    "systemInstruction": {"parts": [{"text": "Be brief."}]},
                    "contents": [{"role": "user", "parts": [{"text": user}]}],
                }),
            )
        }
    }
}

/// Sends the generation request of `format` with the vendor's usual headers.
pub async fn send(fake: &FakeLlm, format: WireFormat, mode: Mode, user: &str) -> reqwest::Response {
    let (url, body) = generation_request(fake, format, mode, user);
    let request = client().post(url).json(&body);
    let request = match format {
        WireFormat::Openai | WireFormat::OpenaiResponses => request.bearer_auth("sk-test"),
        WireFormat::Anthropic => request
            .header("x-api-key", "sk-ant-test")
            .header("anthropic-version", "2023-06-01"),
        WireFormat::Gemini => request.header("x-goog-api-key", "gm-test"),
    };
    request.send().await.expect("the fake server answers")
}

/// The whole body of a generation request's answer, as text.
pub async fn body_text(fake: &FakeLlm, format: WireFormat, mode: Mode, user: &str) -> String {
    let response = send(fake, format, mode, user).await;
    assert_eq!(response.status(), 200, "{format:?}");
    response.text().await.expect("the body completes")
}

/// How long a body read may stay silent before a test that expects the body
/// to end calls it stuck; generous, because such bodies end at once.
pub const STUCK: Duration = Duration::from_secs(10);

/// Reads body frames until the body ends, fails, or stays silent for `quiet`.
pub async fn read_until_stuck(response: reqwest::Response, quiet: Duration) -> (Vec<u8>, BodyEnd) {
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(quiet, stream.next()).await {
            Err(_elapsed) => return (received, BodyEnd::Pending(Box::pin(stream))),
            Ok(None) => return (received, BodyEnd::Complete),
            Ok(Some(Err(_error))) => return (received, BodyEnd::Failed),
            Ok(Some(Ok(frame))) => received.extend_from_slice(&frame),
        }
    }
}

/// How a body read ended.
pub enum BodyEnd {
    Complete,
    Failed,
    /// Still open; the rest of the body stream, to observe what comes next.
    Pending(std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Bytes>> + Send>>),
}

impl std::fmt::Debug for BodyEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyEnd::Complete => f.write_str("Complete"),
            BodyEnd::Failed => f.write_str("Failed"),
            BodyEnd::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|error| panic!("{error}: {}", self.data))
    }
}

/// Splits an SSE body into events (accepts `\n` and `\r\n`).
pub fn events(body: &str) -> Vec<Event> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = Event {
                name: None,
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.name = Some(name.to_owned());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data.push_str(data);
                } else {
                    panic!("unexpected SSE line {line:?} in {block:?}");
                }
            }
            event
        })
        .collect()
}

/// The event names of a named-event stream, in order.
pub fn names(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event.name.as_deref().expect("every event is named"))
        .collect()
}

/// Asserts `wanted` occur in `names` in this order (other names may be
/// between them).
pub fn assert_in_order(names: &[&str], wanted: &[&str]) {
    let mut rest = names.iter();
    for want in wanted {
        assert!(
            rest.any(|name| name == want),
            "{want} missing or out of order in {names:?}"
        );
    }
}
