//! Anthropic messages (`provider_type = "anthropic"`).
//!
//! System messages are lifted into the top-level `system` field, tool calls
//! and results travel as `tool_use` / `tool_result` content blocks, and
//! consecutive messages that map to one role are merged, because Anthropic
//! requires user and assistant turns to alternate. Streams are Anthropic's
//! typed SSE events, from `message_start` to `message_stop`.

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use types::{
    Context, FinishReason, JsonSchema, Message, MessageRole, ModelDescriptor, ProviderError,
    Response, StreamItem, ToolCall, UsageUpdate,
};

use crate::http::{EventParser, StreamStep, error_from_status};
use crate::sse::SseEvent;
use crate::wire::{ObjectArguments, WireApi, WireRequest, parse_json};

/// Anthropic's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header value this wire format is written against.
pub const API_VERSION: &str = "2023-06-01";

/// The messages wire format.
#[derive(Debug)]
pub struct MessagesWire;

impl MessagesWire {
    pub(crate) fn new() -> Self {
        Self
    }
}

/// The body of a messages request.
#[derive(Debug, Serialize)]
pub struct MessagesRequest<'a> {
    model: &'a str,
    /// Required by Anthropic: the context's setting, else the catalog's limit.
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: WireRole,
    content: Vec<RequestBlock<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RequestBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: ObjectArguments<'a>,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
    },
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a JsonSchema,
}

/// The joined system text and the alternating user/assistant messages.
fn map_messages(
    messages: &[Message],
) -> Result<(Option<String>, Vec<WireMessage<'_>>), ProviderError> {
    let mut system = Vec::new();
    let mut out: Vec<WireMessage<'_>> = Vec::new();
    for message in messages {
        // Anthropic rejects empty text blocks, so empty text is left out.
        let text = message.content.as_deref().filter(|t| !t.is_empty());
        let text_block = text.map(|text| RequestBlock::Text { text });
        let (role, blocks) = match message.role {
            MessageRole::System => {
                system.extend(text);
                continue;
            }
            MessageRole::User => (WireRole::User, text_block.into_iter().collect()),
            MessageRole::Assistant => {
                let calls = message.tool_calls.iter().map(|call| RequestBlock::ToolUse {
                    id: &call.id,
                    name: &call.name,
                    input: ObjectArguments::parse(&call.arguments),
                });
                (
                    WireRole::Assistant,
                    text_block.into_iter().chain(calls).collect(),
                )
            }
            MessageRole::Tool => {
                let tool_use_id = message.tool_call_id.as_deref().ok_or_else(|| {
                    ProviderError::Unsupported(
                        "a tool result message has no tool_call_id; Anthropic needs it to \
                         match the result to its tool_use block"
                            .into(),
                    )
                })?;
                let content = message.content.as_deref().unwrap_or_default();
                let block = RequestBlock::ToolResult {
                    tool_use_id,
                    content,
                };
                (WireRole::User, vec![block])
            }
        };
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            // A message with nothing to say would be rejected as empty.
            _ if blocks.is_empty() => {}
            _ => out.push(WireMessage {
                role,
                content: blocks,
            }),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, out))
}

impl WireApi for MessagesWire {
    type Body<'a> = MessagesRequest<'a>;
    type Parser = MessagesStreamParser;

    fn request<'a>(
        &'a self,
        context: &'a Context,
        model: &'a ModelDescriptor,
        stream: bool,
    ) -> Result<WireRequest<MessagesRequest<'a>>, ProviderError> {
        let settings = context.settings.as_ref();
        let (system, messages) = map_messages(&context.messages)?;
        let body = MessagesRequest {
            model: context.model.as_str(),
            max_tokens: settings
                .and_then(|s| s.max_output_tokens)
                .map_or(model.max_output_tokens, u64::from),
            system,
            messages,
            tools: context
                .tools
                .iter()
                .map(|decl| WireTool {
                    name: &decl.name,
                    description: &decl.description,
                    input_schema: &decl.parameters,
                })
                .collect(),
            stream,
            temperature: settings.and_then(|s| s.temperature),
            top_p: settings.and_then(|s| s.top_p),
        };
        Ok(WireRequest {
            path: "/v1/messages".to_owned(),
            body,
        })
    }

    fn parse_response(&self, _context: &Context, body: &Bytes) -> Result<Response, ProviderError> {
        let response: MessagesResponse = parse_json(body)?;
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in response.content {
            match block {
                ResponseBlock::Text { text: part } => text.push_str(&part),
                ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall::new(
                    id,
                    name,
                    serde_json::to_string(&input)
                        .map_err(|e| ProviderError::ResponseParse(e.to_string()))?,
                )),
                ResponseBlock::Other => {}
            }
        }
        let content = (!text.is_empty()).then_some(text);
        Ok(Response {
            message: Message::assistant_tool_calls(content, tool_calls),
            finish_reason: response.stop_reason.as_deref().map(finish_reason),
            usage: response.usage.map(WireUsage::into_usage),
        })
    }

    fn stream_parser(&self, _context: &Context) -> MessagesStreamParser {
        MessagesStreamParser::default()
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" => FinishReason::Length,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    content: Vec<ResponseBlock>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        /// Arbitrary JSON: whatever the model put in the call.
        input: Value,
    },
    /// `thinking`, `redacted_thinking` and block types added later are not
    /// part of the answer message.
    #[serde(other)]
    Other,
}

/// Anthropic's usage counts. Every field may be absent or null depending
/// on the event that carries it.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    fn into_usage(self) -> UsageUpdate {
        UsageUpdate {
            cached_input_tokens: self.cache_read_input_tokens,
            ..UsageUpdate::new(
                self.input_tokens.unwrap_or(0),
                self.output_tokens.unwrap_or(0),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ApiError,
    },
    /// Anthropic adds event types over time and asks clients to skip the
    /// ones they do not know.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    /// `thinking` (its text arrives as deltas), `redacted_thinking`,
    /// server-side tool blocks and types added later.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    /// `signature_delta` (it only authenticates a thinking block),
    /// `citations_delta` and types added later.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

/// The body of an `error` event (and of an error response).
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

impl ApiError {
    /// Errors that happen after the 200 status arrive as an `error` event
    /// with the same types as error responses. Each is classified by the
    /// status Anthropic documents for its type, so `is_retriable` treats it
    /// as it would the same error before the stream began.
    fn into_provider_error(self) -> ProviderError {
        let status = match self.kind.as_str() {
            "invalid_request_error" => 400,
            "authentication_error" => 401,
            "billing_error" => 402,
            "permission_error" => 403,
            "not_found_error" => 404,
            "request_too_large" => 413,
            "rate_limit_error" => 429,
            "timeout_error" => 504,
            "overloaded_error" => 529,
            // `api_error` and types added later: a failure on Anthropic's side.
            _ => 500,
        };
        let text = format!("anthropic stream error {}: {}", self.kind, self.message);
        // `text` is not a JSON envelope, so it becomes the message verbatim.
        error_from_status(status, &HeaderMap::new(), &text)
    }
}

/// Parses Anthropic's stream events until `message_stop`.
#[derive(Debug, Default)]
pub struct MessagesStreamParser {
    /// The message's `tool_use` blocks by content block index.
    tool_blocks: HashMap<u32, ToolBlock>,
    /// How many `tool_use` blocks have started: the next block's ordinal.
    tools_started: u32,
    /// Output tokens already reported. `message_delta` carries a running
    /// total, while stream usage items are increments that consumers sum.
    output_reported: u64,
}

#[derive(Debug)]
struct ToolBlock {
    /// 0 for the first `tool_use` block, 1 for the second…: the `index` of
    /// that call's `ToolCallDelta`s.
    ordinal: u32,
    /// Whether any argument JSON has arrived.
    has_input: bool,
}

impl EventParser for MessagesStreamParser {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<StreamStep, ProviderError> {
        // The `event:` name repeats the JSON `type`; the JSON is the contract.
        match parse_json::<StreamEvent>(event.data.as_bytes())? {
            StreamEvent::MessageStart { message } => {
                // Only the input side: output is counted from `message_delta`.
                let usage = WireUsage {
                    output_tokens: None,
                    ..message.usage
                };
                out.push(StreamItem::UsageUpdate(usage.into_usage()));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StartBlock::Text { text } => out.extend(non_empty(text).map(StreamItem::Text)),
                StartBlock::ToolUse { id, name } => {
                    let ordinal = self.tools_started;
                    self.tools_started += 1;
                    let block = ToolBlock {
                        ordinal,
                        has_input: false,
                    };
                    self.tool_blocks.insert(index, block);
                    out.push(StreamItem::ToolCallDelta {
                        index: ordinal,
                        id: Some(id),
                        name: Some(name),
                        arguments_fragment: String::new(),
                    });
                }
                StartBlock::Other => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => out.extend(non_empty(text).map(StreamItem::Text)),
                BlockDelta::InputJsonDelta { partial_json } => {
                    // Only our `tool_use` blocks are registered; server-side
                    // tool blocks stream input too, but are not ours to call.
                    if let Some(block) = self.tool_blocks.get_mut(&index)
                        && !partial_json.is_empty()
                    {
                        block.has_input = true;
                        out.push(StreamItem::ToolCallDelta {
                            index: block.ordinal,
                            id: None,
                            name: None,
                            arguments_fragment: partial_json,
                        });
                    }
                }
                BlockDelta::ThinkingDelta { thinking } => {
                    out.extend(non_empty(thinking).map(StreamItem::ReasoningDelta));
                }
                BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    out.push(StreamItem::FinishReason(finish_reason(&reason)));
                }
                if let Some(total) = usage.and_then(|u| u.output_tokens) {
                    let increment = total.saturating_sub(self.output_reported);
                    self.output_reported = self.output_reported.max(total);
                    out.push(StreamItem::UsageUpdate(UsageUpdate::new(0, increment)));
                }
            }
            StreamEvent::MessageStop => return Ok(StreamStep::Done),
            StreamEvent::Error { error } => return Err(error.into_provider_error()),
            StreamEvent::ContentBlockStop { index } => {
                // A call without arguments streams no JSON at all; `{}` makes
                // it the same as that call in a complete response.
                if let Some(block) = self.tool_blocks.get(&index)
                    && !block.has_input
                {
                    out.push(StreamItem::ToolCallDelta {
                        index: block.ordinal,
                        id: None,
                        name: None,
                        arguments_fragment: "{}".to_owned(),
                    });
                }
            }
            StreamEvent::Ping | StreamEvent::Unknown => {}
        }
        Ok(StreamStep::Continue)
    }
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}
