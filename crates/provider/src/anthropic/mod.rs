//! Anthropic messages (`provider_type = "anthropic"`).
//!
//! System messages are lifted into the top-level `system` field, tool calls
//! and results travel as `tool_use` / `tool_result` content blocks, and
//! consecutive messages that map to one role are merged, because Anthropic
//! requires user and assistant turns to alternate. Streams are Anthropic's
//! typed SSE events, from `message_start` to `message_stop`.
//!
//! Requests carry prompt-cache breakpoints (`cache_control`) on the last
//! tool, the system prompt and the history (see `mark_history`). Signed
//! thinking blocks are kept on the assistant message and sent back, first
//! in its content, to the model that signed them: with extended thinking,
//! Anthropic rejects tool results whose calls come without their thinking.

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use types::{
    Context, FinishReason, JsonSchema, Message, MessageRole, ModelDescriptor, ModelId,
    ProviderError, ReasoningBlock, Response, Signature, StreamItem, ToolCall, UsageUpdate,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Block<'a>>,
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
    content: Vec<Block<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    User,
    Assistant,
}

/// A content block, and whether a cache breakpoint follows it.
#[derive(Debug, Serialize)]
struct Block<'a> {
    #[serde(flatten)]
    body: RequestBlock<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
}

impl<'a> From<RequestBlock<'a>> for Block<'a> {
    fn from(body: RequestBlock<'a>) -> Self {
        Self {
            body,
            cache_control: None,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RequestBlock<'a> {
    Text {
        text: Cow<'a, str>,
    },
    /// A signed thinking block, sent back exactly as it arrived.
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
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

impl RequestBlock<'_> {
    /// Anthropic refuses `cache_control` on thinking blocks.
    fn can_cache(&self) -> bool {
        match self {
            Self::Text { .. } | Self::ToolUse { .. } | Self::ToolResult { .. } => true,
            Self::Thinking { .. } | Self::RedactedThinking { .. } => false,
        }
    }
}

/// A prompt-cache breakpoint: Anthropic caches the request up to and
/// including the block that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum CacheControl {
    /// The five-minute cache, refreshed at every hit.
    Ephemeral,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a JsonSchema,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
}

/// Puts a breakpoint on the last block of `blocks` that may carry one.
/// Returns whether it found one.
fn mark_last(blocks: &mut [Block<'_>]) -> bool {
    match blocks.iter_mut().rev().find(|b| b.body.can_cache()) {
        Some(block) => {
            block.cache_control = Some(CacheControl::Ephemeral);
            true
        }
        None => false,
    }
}

/// The system blocks. The first system message is the agent's configured
/// prompt, the same for the whole session; the ones after it (rolling
/// summary, memory snippets) change from turn to turn. So the first gets
/// a block (and breakpoint) of its own, and the rest follow in a second
/// block. Every message, the second block's first included, is preceded by
/// the blank line that separated them when `system` was one string, so the
/// model reads the same text.
fn system_blocks<'a>(system: &[&'a str]) -> Vec<Block<'a>> {
    let Some((first, rest)) = system.split_first() else {
        return Vec::new();
    };
    let mut blocks = vec![Block {
        body: RequestBlock::Text {
            text: Cow::Borrowed(*first),
        },
        cache_control: Some(CacheControl::Ephemeral),
    }];
    if !rest.is_empty() {
        let text = rest.iter().fold(String::new(), |mut text, part| {
            text.push_str("\n\n");
            text.push_str(part);
            text
        });
        blocks.push(
            RequestBlock::Text {
                text: Cow::Owned(text),
            }
            .into(),
        );
    }
    blocks
}

/// The reasoning blocks of an assistant message that `model` signed; the
/// rest (another model's, whose signature this one would reject) are left
/// out, which Anthropic allows for earlier turns.
fn reasoning_blocks<'a>(
    message: &'a Message,
    model: &'a ModelId,
) -> impl Iterator<Item = Block<'a>> + 'a {
    message.reasoning.iter().filter_map(move |block| {
        let body = match block {
            ReasoningBlock::Thinking { text, signature } => RequestBlock::Thinking {
                thinking: text,
                signature: signature.value_for(model)?,
            },
            ReasoningBlock::Redacted { data } => RequestBlock::RedactedThinking {
                data: data.value_for(model)?,
            },
        };
        Some(body.into())
    })
}

/// The system text and the alternating user/assistant messages.
fn map_messages<'a>(
    messages: &'a [Message],
    model: &'a ModelId,
) -> Result<(Vec<&'a str>, Vec<WireMessage<'a>>), ProviderError> {
    let mut system = Vec::new();
    let mut out: Vec<WireMessage<'_>> = Vec::new();
    for message in messages {
        // Anthropic rejects empty text blocks, so empty text is left out.
        let text = message.content.as_deref().filter(|t| !t.is_empty());
        let text_block = text.map(|text| {
            Block::from(RequestBlock::Text {
                text: Cow::Borrowed(text),
            })
        });
        let (role, blocks): (_, Vec<Block<'_>>) = match message.role {
            MessageRole::System => {
                system.extend(text);
                continue;
            }
            MessageRole::User => (WireRole::User, text_block.into_iter().collect()),
            MessageRole::Assistant => {
                let calls = message.tool_calls.iter().map(|call| {
                    Block::from(RequestBlock::ToolUse {
                        id: &call.id,
                        name: &call.name,
                        input: ObjectArguments::parse(&call.arguments),
                    })
                });
                // Thinking comes first, as it did in the answer.
                let blocks = reasoning_blocks(message, model)
                    .chain(text_block)
                    .chain(calls)
                    .collect();
                (WireRole::Assistant, blocks)
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
                (WireRole::User, vec![block.into()])
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
    mark_history(&mut out);
    Ok((system, out))
}

/// The two conversation breakpoints Anthropic documents for multi-turn
/// use: the last message, so the next request (the same history plus the
/// answer and what follows) reads everything up to it from the cache; and
/// the user message before it, so this request reads what the previous
/// one wrote even when the new part is longer than the cache's 20-block
/// lookback. With the tools and the system prompt that makes four, the
/// most a request may carry.
fn mark_history(messages: &mut [WireMessage<'_>]) {
    let Some((last, earlier)) = messages.split_last_mut() else {
        return;
    };
    mark_last(&mut last.content);
    if let Some(previous_user) = earlier.iter_mut().rev().find(|m| m.role == WireRole::User) {
        mark_last(&mut previous_user.content);
    }
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
        let (system, messages) = map_messages(&context.messages, &context.model)?;
        let mut tools: Vec<WireTool<'_>> = context
            .tools
            .iter()
            .map(|decl| WireTool {
                name: &decl.name,
                description: &decl.description,
                input_schema: &decl.parameters,
                cache_control: None,
            })
            .collect();
        // Tools come first in Anthropic's prompt: a breakpoint on the last
        // one caches all declarations, whatever changes after them.
        if let Some(last) = tools.last_mut() {
            last.cache_control = Some(CacheControl::Ephemeral);
        }
        let body = MessagesRequest {
            model: context.model.as_str(),
            max_tokens: settings
                .and_then(|s| s.max_output_tokens)
                .map_or(model.max_output_tokens, u64::from),
            system: system_blocks(&system),
            messages,
            tools,
            stream,
            temperature: settings.and_then(|s| s.temperature),
            top_p: settings.and_then(|s| s.top_p),
        };
        Ok(WireRequest {
            path: "/v1/messages".to_owned(),
            body,
        })
    }

    fn parse_response(&self, context: &Context, body: &Bytes) -> Result<Response, ProviderError> {
        let response: MessagesResponse = parse_json(body)?;
        let signed = |value: String| Signature {
            model: context.model.clone(),
            value,
        };
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let mut reasoning = Vec::new();
        for block in response.content {
            match block {
                ResponseBlock::Text { text: part } => text.push_str(&part),
                ResponseBlock::Thinking {
                    thinking,
                    signature,
                } => {
                    // An unsigned block could not be sent back anyway.
                    if !signature.is_empty() {
                        reasoning.push(ReasoningBlock::Thinking {
                            text: thinking,
                            signature: signed(signature),
                        });
                    }
                }
                ResponseBlock::RedactedThinking { data } => {
                    reasoning.push(ReasoningBlock::Redacted { data: signed(data) });
                }
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
            message: Message {
                reasoning,
                ..Message::assistant_tool_calls(content, tool_calls)
            },
            finish_reason: response.stop_reason.as_deref().map(finish_reason),
            usage: response.usage.map(WireUsage::into_usage),
        })
    }

    fn stream_parser(&self, context: &Context) -> MessagesStreamParser {
        MessagesStreamParser::new(context)
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
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        /// Arbitrary JSON: whatever the model put in the call.
        input: Value,
    },
    /// Server-side tool blocks and block types added later are not part of
    /// the answer message.
    #[serde(other)]
    Other,
}

/// Anthropic's usage counts. Every field may be absent or null depending
/// on the event that carries it. Unlike `UsageUpdate`, `input_tokens`
/// leaves out the tokens read from and written to the cache.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Normalised: the cached tokens are added to the input (see
    /// `UsageUpdate`).
    fn into_usage(self) -> UsageUpdate {
        let input = self.input_tokens.unwrap_or(0)
            + self.cache_creation_input_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0);
        UsageUpdate {
            cached_input_tokens: self.cache_read_input_tokens,
            cache_write_input_tokens: self.cache_creation_input_tokens,
            ..UsageUpdate::new(input, self.output_tokens.unwrap_or(0))
        }
    }
}

/// The usage a stream already reported. `message_start` and
/// `message_delta` carry running totals (`message_delta` repeats the input
/// counts in recent API versions), while stream usage items are increments
/// that consumers sum: each event reports only what grew.
#[derive(Debug, Default)]
struct ReportedUsage {
    input: u64,
    output: u64,
    read: u64,
    written: u64,
}

impl ReportedUsage {
    fn increment(&mut self, totals: WireUsage) -> UsageUpdate {
        fn grow(reported: &mut u64, total: Option<u64>) -> Option<u64> {
            let total = total?;
            let increment = total.saturating_sub(*reported);
            *reported = (*reported).max(total);
            Some(increment)
        }
        let input = grow(&mut self.input, totals.input_tokens).unwrap_or(0);
        let output = grow(&mut self.output, totals.output_tokens).unwrap_or(0);
        let read = grow(&mut self.read, totals.cache_read_input_tokens);
        let written = grow(&mut self.written, totals.cache_creation_input_tokens);
        WireUsage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_creation_input_tokens: written,
            cache_read_input_tokens: read,
        }
        .into_usage()
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
    /// Its text and signature arrive as deltas.
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    RedactedThinking {
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    /// Server-side tool blocks and types added later.
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
    /// Authenticates the thinking block it belongs to.
    SignatureDelta {
        signature: String,
    },
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
#[derive(Debug)]
pub struct MessagesStreamParser {
    /// The model asked, which signs the thinking blocks.
    model: ModelId,
    /// The message's `tool_use` blocks by content block index.
    tool_blocks: HashMap<u32, ToolBlock>,
    /// The signature received so far of each open thinking block.
    thinking_blocks: HashMap<u32, String>,
    /// How many `tool_use` blocks have started: the next block's ordinal.
    tools_started: u32,
    reported: ReportedUsage,
}

impl MessagesStreamParser {
    fn new(context: &Context) -> Self {
        Self {
            model: context.model.clone(),
            tool_blocks: HashMap::new(),
            thinking_blocks: HashMap::new(),
            tools_started: 0,
            reported: ReportedUsage::default(),
        }
    }

    fn signature(&self, value: String) -> Signature {
        Signature {
            model: self.model.clone(),
            value,
        }
    }
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
                let usage = self.reported.increment(message.usage);
                out.push(StreamItem::UsageUpdate(usage));
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
                StartBlock::Thinking { thinking } => {
                    self.thinking_blocks.insert(index, String::new());
                    out.extend(non_empty(thinking).map(StreamItem::ReasoningDelta));
                }
                StartBlock::RedactedThinking { data } => {
                    out.push(StreamItem::RedactedReasoning(self.signature(data)));
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
                BlockDelta::SignatureDelta { signature } => {
                    if let Some(received) = self.thinking_blocks.get_mut(&index) {
                        received.push_str(&signature);
                    }
                }
                BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    out.push(StreamItem::FinishReason(finish_reason(&reason)));
                }
                if let Some(totals) = usage {
                    let usage = self.reported.increment(totals);
                    out.push(StreamItem::UsageUpdate(usage));
                }
            }
            StreamEvent::MessageStop => return Ok(StreamStep::Done),
            StreamEvent::Error { error } => return Err(error.into_provider_error()),
            StreamEvent::ContentBlockStop { index } => {
                if let Some(signature) = self.thinking_blocks.remove(&index) {
                    let signature = non_empty(signature).map(|s| self.signature(s));
                    out.push(StreamItem::ReasoningEnd { signature });
                }
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
