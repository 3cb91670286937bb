//! The script a fake LLM server follows: which wire format it speaks and the
//! replies it gives, in order. These types are also the JSON schema of the
//! `oxydra-fake-llm` binary's script file.

use serde::{Deserialize, Serialize};

/// The vendor wire format a [`FakeLlm`](super::FakeLlm) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// OpenAI chat completions: `POST /v1/chat/completions`.
    Openai,
    /// OpenAI Responses API: `POST /v1/responses`.
    OpenaiResponses,
    /// Anthropic messages: `POST /v1/messages`.
    Anthropic,
    /// Gemini: `POST /v1beta/models/{model}:generateContent` and
    /// `:streamGenerateContent?alt=sse`.
    Gemini,
}

/// One scripted answer, consumed in order by the next request (any endpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptedReply {
    /// What the answer says.
    #[serde(flatten)]
    pub body: ReplyBody,
    /// Reasoning the model shows before the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ScriptedReasoning>,
    /// Prompt tokens the vendor reports as read from or written to its
    /// prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ScriptedCache>,
    /// How a streamed (or plain) body is split into writes.
    #[serde(default)]
    pub chunking: Chunking,
    /// Milliseconds to wait before sending the response headers.
    #[serde(default)]
    pub delay_ms: u64,
    /// Milliseconds to wait between written body chunks.
    #[serde(default)]
    pub chunk_delay_ms: u64,
    /// A transport-level misbehaviour to inject.
    #[serde(default)]
    pub fault: Option<Fault>,
}

impl ScriptedReply {
    /// A plain text answer, delivered one event per write, without fault.
    pub fn text(text: impl Into<String>) -> Self {
        Self::from_body(ReplyBody::Text { text: text.into() })
    }

    /// An answer made only of tool calls, without text.
    pub fn tool_calls(calls: Vec<ScriptedToolCall>) -> Self {
        Self::from_body(ReplyBody::ToolCalls { text: None, calls })
    }

    /// An HTTP error with the format's error envelope carrying `message`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::from_body(ReplyBody::Error {
            status,
            message: message.into(),
            retry_after_secs: None,
        })
    }

    /// Adds a `retry-after: <secs>` header. Only error bodies carry it; on a
    /// text or tool-call reply this does nothing.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        match &mut self.body {
            ReplyBody::Error {
                retry_after_secs, ..
            } => *retry_after_secs = Some(secs),
            ReplyBody::Text { .. } | ReplyBody::ToolCalls { .. } => {}
        }
        self
    }

    /// Splits the body into writes this way.
    pub fn with_chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// Injects `fault` into the delivery.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Shows `text` as unsigned reasoning before the answer.
    pub fn with_reasoning(mut self, text: impl Into<String>) -> Self {
        self.reasoning = Some(ScriptedReasoning {
            text: text.into(),
            signature: None,
        });
        self
    }

    /// Shows `text` as reasoning signed with `signature` (Anthropic's
    /// thinking block signature).
    pub fn with_signed_reasoning(
        mut self,
        text: impl Into<String>,
        signature: impl Into<String>,
    ) -> Self {
        self.reasoning = Some(ScriptedReasoning {
            text: text.into(),
            signature: Some(signature.into()),
        });
        self
    }

    /// Reports `read` prompt tokens read from the cache and `write` written
    /// to it, on top of the prompt's own words.
    pub fn with_cache(mut self, read: u64, write: u64) -> Self {
        self.cache = Some(ScriptedCache { read, write });
        self
    }

    /// Waits `ms` milliseconds before sending the response headers.
    pub fn with_delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }

    /// Waits `ms` milliseconds between body writes.
    pub fn with_chunk_delay_ms(mut self, ms: u64) -> Self {
        self.chunk_delay_ms = ms;
        self
    }

    fn from_body(body: ReplyBody) -> Self {
        Self {
            body,
            reasoning: None,
            cache: None,
            chunking: Chunking::PerEvent,
            delay_ms: 0,
            chunk_delay_ms: 0,
            fault: None,
        }
    }
}

/// What a scripted answer says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyBody {
    /// The assistant answers with text and stops.
    Text {
        /// The whole answer text.
        text: String,
    },
    /// The assistant asks for tool calls, optionally with text before them.
    ToolCalls {
        /// Text sent before the tool calls, if any.
        #[serde(default)]
        text: Option<String>,
        /// The calls, in order.
        calls: Vec<ScriptedToolCall>,
    },
    /// The server refuses the request with an HTTP error.
    Error {
        /// HTTP status code; an invalid code is sent as 500.
        status: u16,
        /// The message inside the format's error envelope.
        message: String,
        /// Value of the `retry-after` header, when set.
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
}

/// One tool call the fake model asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptedToolCall {
    /// The tool's name.
    pub name: String,
    /// Raw JSON text, may be deliberately malformed.
    pub arguments: String,
    /// Gemini's `thoughtSignature` on this call's part; the other formats
    /// have no per-call signature and ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl ScriptedToolCall {
    /// A call of tool `name` with the raw JSON text `arguments`.
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            arguments: arguments.into(),
            signature: None,
        }
    }

    /// Signs the call (Gemini's `thoughtSignature`).
    pub fn with_signature(mut self, signature: impl Into<String>) -> Self {
        self.signature = Some(signature.into());
        self
    }
}

/// Reasoning shown before the answer: an Anthropic `thinking` block (with
/// a `signature_delta` when signed), Gemini `thought` parts, or OpenAI-
/// compatible `reasoning_content` deltas. The Responses format ignores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptedReasoning {
    /// The whole reasoning text.
    pub text: String,
    /// Anthropic's signature of the thinking block; the other formats
    /// ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Prompt-cache counts the fake reports, in each vendor's convention:
/// Anthropic's `input_tokens` leaves them out and names both; OpenAI and
/// Gemini count reads inside the prompt and report no writes. The
/// Responses format ignores them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedCache {
    /// Prompt tokens read from the cache.
    #[serde(default)]
    pub read: u64,
    /// Prompt tokens written to the cache.
    #[serde(default)]
    pub write: u64,
}

/// How a streamed body is split into writes (each write is flushed separately).
///
/// A non-streamed JSON body is one event, so `PerEvent` sends it in one write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "mode", content = "value", rename_all = "snake_case")]
pub enum Chunking {
    /// One write per SSE event.
    #[default]
    PerEvent,
    /// Fixed-size byte pieces (may split UTF-8 and lines); 0 is taken as 1.
    Bytes(usize),
    /// Cut the whole body at these byte offsets (any order; offsets outside
    /// the body are ignored).
    SplitAt(Vec<usize>),
}

/// A transport-level misbehaviour of the fake server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "fault", content = "value", rename_all = "snake_case")]
pub enum Fault {
    /// Abort the connection after this many body bytes (no terminal event,
    /// body not completed cleanly). Terminal events are withheld even when
    /// the count reaches past the content.
    CutAfterBytes(usize),
    /// Send the content events but never the terminal event and never close
    /// (a hung stream). Dropping the server still ends it.
    NeverEnd,
    /// Insert one `data:` event whose payload is invalid JSON after the first
    /// content event. A non-streamed body is sent without its final byte.
    InvalidJsonChunk,
}

/// What the server answers once every scripted reply has been used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenExhausted {
    /// HTTP 500 with the format's error envelope: "fake LLM script exhausted".
    #[default]
    Error,
    /// Answer with text `"You said: <last user text>"`.
    Echo,
    /// A request whose last message is the user's text gets a `file_list`
    /// call of `/shared`; any other (after a tool result) gets the `Echo`
    /// answer. Every turn then makes one tool call whatever other requests
    /// run at the same time (load tests with many concurrent sessions).
    ToolThenEcho,
}

/// The JSON script file of the binary:
/// `{"format": "openai", "when_exhausted": "echo", "replies": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Script {
    /// The wire format the server speaks.
    pub format: WireFormat,
    /// What happens after the last reply.
    #[serde(default)]
    pub when_exhausted: WhenExhausted,
    /// The replies, consumed in order.
    #[serde(default)]
    pub replies: Vec<ScriptedReply>,
}
