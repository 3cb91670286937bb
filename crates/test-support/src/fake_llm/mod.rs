//! A scriptable fake LLM server speaking one vendor wire format over real
//! HTTP and SSE on a local port.
//!
//! Every request is recorded before it is answered. Requests to the format's
//! generation endpoint consume the scripted replies in order; anything else
//! gets the format's error envelope. The server never panics on a request.
//!
//! ```no_run
//! use test_support::{FakeLlm, ScriptedReply, ScriptedToolCall, WireFormat};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let fake = FakeLlm::start(WireFormat::Anthropic).await?;
//! fake.push(ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
//!     "file_list",
//!     r#"{"path": "/shared"}"#,
//! )]));
//! fake.push(ScriptedReply::text("Done."));
//! // Point the provider under test at `fake.base_url()`, then inspect
//! // `fake.requests()`.
//! # Ok(())
//! # }
//! ```

mod anthropic;
mod gemini;
mod openai;
mod render;
mod responses;
mod script;
mod sse;

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::render::{Answer, Usage, Wire};
use self::sse::Delivery;

pub use self::script::{
    Chunking, Fault, ReplyBody, Script, ScriptedCache, ScriptedReasoning, ScriptedReply,
    ScriptedToolCall, WhenExhausted, WireFormat,
};

/// The message of the 500 answered once the script is used up.
const EXHAUSTED_MESSAGE: &str = "fake LLM script exhausted";

/// One HTTP request the fake server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// Path plus `?query` if any, e.g.
    /// `/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse`.
    pub path: String,
    /// Headers with lower-case names; repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The body as JSON; `Null` if empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut recorded_headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            recorded_headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        Self {
            method: method.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |path| path.as_str().to_owned()),
            headers: recorded_headers,
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }
}

/// A running fake LLM server. Dropping it shuts the server down, ending even
/// streams that were scripted never to end.
#[derive(Debug)]
pub struct FakeLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeLlm {
    /// Starts a server for `format` on 127.0.0.1 with an empty script that
    /// answers every request with the "script exhausted" error.
    pub async fn start(format: WireFormat) -> std::io::Result<FakeLlm> {
        Self::start_script(Script {
            format,
            when_exhausted: WhenExhausted::Error,
            replies: Vec::new(),
        })
        .await
    }

    /// Starts a server following `script` on 127.0.0.1, on a free port.
    pub async fn start_script(script: Script) -> std::io::Result<FakeLlm> {
        Self::bind(script, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a server following `script` on `addr`.
    pub async fn bind(script: Script, addr: SocketAddr) -> std::io::Result<FakeLlm> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            format: script.format,
            when_exhausted: script.when_exhausted,
            state: Mutex::new(Ledger {
                replies: script.replies.into(),
                requests: Vec::new(),
                generations: 0,
            }),
            shutdown: shutdown.clone(),
        });
        let router = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // Small SSE writes must not wait for Nagle's algorithm (it adds
            // ~40 ms per round trip against a client's delayed ACK).
            let listener = listener.tap_io(|tcp| {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::warn!(%error, "cannot set TCP_NODELAY on a fake LLM connection");
                }
            });
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "fake LLM server stopped with an error");
            }
        });
        Ok(FakeLlm {
            shared,
            addr,
            server,
        })
    }

    /// The base URL a provider for this format is configured with:
    /// `http://127.0.0.1:PORT/v1` for the OpenAI formats, `http://127.0.0.1:PORT`
    /// for Anthropic and Gemini.
    pub fn base_url(&self) -> String {
        let prefix = match self.shared.format {
            WireFormat::Openai | WireFormat::OpenaiResponses => "/v1",
            WireFormat::Anthropic | WireFormat::Gemini => "",
        };
        format!("http://{}{prefix}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends one reply to the script.
    pub fn push(&self, reply: ScriptedReply) {
        self.shared.lock().replies.push_back(reply);
    }

    /// Appends replies to the script, in order.
    pub fn push_all(&self, replies: impl IntoIterator<Item = ScriptedReply>) {
        self.shared.lock().replies.extend(replies);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many scripted replies have not been used yet.
    pub fn remaining(&self) -> usize {
        self.shared.lock().replies.len()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        // Cancelling ends every pending delay and hung body, so connections
        // drain; aborting stops accepting new ones right away.
        self.shared.shutdown.cancel();
        self.server.abort();
    }
}

/// State shared between the handle and the request handlers.
#[derive(Debug)]
struct Shared {
    format: WireFormat,
    when_exhausted: WhenExhausted,
    state: Mutex<Ledger>,
    shutdown: CancellationToken,
}

/// What the server has seen and has left to say.
#[derive(Debug)]
struct Ledger {
    replies: VecDeque<ScriptedReply>,
    requests: Vec<RecordedRequest>,
    /// Requests that reached the generation endpoint; numbers the ids.
    generations: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // The lock is never held across code that can panic mid-update, so a
        // poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wire(&self) -> &'static dyn Wire {
        match self.format {
            WireFormat::Openai => &openai::Openai,
            WireFormat::OpenaiResponses => &responses::Responses,
            WireFormat::Anthropic => &anthropic::Anthropic,
            WireFormat::Gemini => &gemini::Gemini,
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let wire = shared.wire();
    let recorded = RecordedRequest::new(&method, &uri, &headers, &body);
    let request = recorded.body.clone();
    let call = match wire.route(&method, uri.path(), uri.query(), &request) {
        Ok(call) => call,
        Err(error) => {
            shared.lock().requests.push(recorded);
            return error_response(
                &shared,
                error.status,
                &error.message,
                None,
                &Delivery::plain(),
            );
        }
    };
    let (seq, scripted) = {
        let mut ledger = shared.lock();
        ledger.requests.push(recorded);
        ledger.generations += 1;
        (ledger.generations, ledger.replies.pop_front())
    };
    let reply = match (scripted, shared.when_exhausted) {
        (Some(reply), _) => reply,
        (None, WhenExhausted::ToolThenEcho) if wire.transcript(&request).ends_with_user_text() => {
            ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
                "file_list",
                r#"{"path": "/shared"}"#,
            )])
        }
        (None, WhenExhausted::Echo | WhenExhausted::ToolThenEcho) => {
            let said = wire.transcript(&request).last_user_text();
            ScriptedReply::text(format!("You said: {said}"))
        }
        (None, WhenExhausted::Error) => {
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return error_response(&shared, status, EXHAUSTED_MESSAGE, None, &Delivery::plain());
        }
    };

    if reply.delay_ms > 0 {
        let delay = tokio::time::sleep(Duration::from_millis(reply.delay_ms));
        if shared.shutdown.run_until_cancelled(delay).await.is_none() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let delivery = Delivery::of(&reply);
    let (text, calls) = match &reply.body {
        ReplyBody::Text { text } => (Some(text.as_str()), &[][..]),
        ReplyBody::ToolCalls { text, calls } => (text.as_deref(), calls.as_slice()),
        ReplyBody::Error {
            status,
            message,
            retry_after_secs,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error_response(&shared, status, message, *retry_after_secs, &delivery);
        }
    };
    let answer = Answer {
        seq,
        model: &call.model,
        text,
        calls,
        reasoning: reply.reasoning.as_ref(),
        usage: Usage::of(&wire.transcript(&request), text, calls, reply.cache),
        request: &request,
    };
    let shutdown = shared.shutdown.clone();
    let mut headers = HeaderMap::new();
    let body = if call.stream {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        sse::event_body(wire.stream(&answer), wire.line_end(), &delivery, shutdown)
    } else {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        sse::json_body(&wire.complete(&answer), &delivery, shutdown)
    };
    (StatusCode::OK, headers, body).into_response()
}

fn error_response(
    shared: &Shared,
    status: StatusCode,
    message: &str,
    retry_after_secs: Option<u64>,
    delivery: &Delivery,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(secs) = retry_after_secs {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    let envelope = shared.wire().error(status, message);
    let body = sse::json_body(&envelope, delivery, shared.shutdown.clone());
    (status, headers, body).into_response()
}
