//! The OpenAI Responses API (`provider_type = "openai_responses"`).
//!
//! Conversation state can live on the server: a request may name the
//! `previous_response_id` and send only the items that are new since then.
//! `ResponseChains` remembers, for each answered conversation prefix, the
//! id of the response that ended it. A later context that starts with that
//! exact prefix (same model) is sent as a chained request; anything else —
//! an edited history, another model — falls back to the full history, and
//! so does a request whose id the server rejects. Every answer carries its
//! `ResponseRef`, stored with the message, so a restarted agent chains from
//! the restored history as well.

mod chain;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use types::{
    Context, FinishReason, FunctionDecl, JsonSchema, Message, MessageRole, ModelDescriptor,
    ProviderError, Response, ResponseRef, StreamItem, ToolCall, UsageUpdate,
};

use crate::accumulate::StreamCollector;
use crate::http::{EventParser, StreamStep};
use crate::sse::SseEvent;
use crate::wire::{WireApi, WireRequest, parse_json};

use chain::{PrefixHasher, ResponseChains, conversation};

/// The Responses API wire format, with its chain memory.
#[derive(Debug, Default)]
pub struct ResponsesWire {
    chains: ResponseChains,
}

impl ResponsesWire {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Remembers that `response_id` answered `context` with `reply`, and
    /// returns the reference the reply carries from now on.
    fn remember(
        &self,
        context: &Context,
        reply: &Message,
        response_id: String,
    ) -> Option<ResponseRef> {
        remember(&self.chains, PrefixHasher::new(context), reply, response_id)
    }
}

/// Records the chain `reply` ends and returns its reference.
fn remember(
    chains: &ResponseChains,
    mut hasher: PrefixHasher,
    reply: &Message,
    response_id: String,
) -> Option<ResponseRef> {
    hasher.push(reply);
    let len = hasher.hashes.len();
    let key = hasher.key(len)?;
    chains.record(key, response_id.clone());
    hasher.reference(len, response_id)
}

/// The body of a Responses API request.
#[derive(Debug, Serialize)]
pub struct ResponsesRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<String>,
    input: Vec<InputItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_response_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ResponsesTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    /// Required for `previous_response_id` to work on later turns.
    store: bool,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InputItem<'a> {
    Message {
        role: &'static str,
        content: &'a str,
    },
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: &'a str,
    },
}

#[derive(Debug, Serialize)]
struct ResponsesTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    description: &'a str,
    parameters: &'a JsonSchema,
    /// Strict mode would demand every property be required.
    strict: bool,
}

fn input_items<'a>(
    messages: impl Iterator<Item = &'a Message>,
) -> Result<Vec<InputItem<'a>>, ProviderError> {
    let mut items = Vec::new();
    for message in messages {
        let content = message.content.as_deref().unwrap_or_default();
        match message.role {
            // Lifted into `instructions`.
            MessageRole::System => {}
            MessageRole::User => items.push(InputItem::Message {
                role: "user",
                content,
            }),
            MessageRole::Assistant => {
                if !content.is_empty() {
                    items.push(InputItem::Message {
                        role: "assistant",
                        content,
                    });
                }
                items.extend(
                    message
                        .tool_calls
                        .iter()
                        .map(|call| InputItem::FunctionCall {
                            call_id: &call.id,
                            name: &call.name,
                            arguments: &call.arguments,
                        }),
                );
            }
            MessageRole::Tool => items.push(InputItem::FunctionCallOutput {
                call_id: message.tool_call_id.as_deref().ok_or_else(|| {
                    ProviderError::Unsupported("a tool result message has no tool_call_id".into())
                })?,
                output: content,
            }),
        }
    }
    Ok(items)
}

fn map_tool(decl: &FunctionDecl) -> ResponsesTool<'_> {
    ResponsesTool {
        kind: "function",
        name: &decl.name,
        description: &decl.description,
        parameters: &decl.parameters,
        strict: false,
    }
}

fn instructions(context: &Context) -> Option<String> {
    let parts: Vec<&str> = context
        .messages
        .iter()
        .filter(|m| m.role == MessageRole::System)
        .filter_map(|m| m.content.as_deref())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

impl WireApi for ResponsesWire {
    type Body<'a> = ResponsesRequest<'a>;
    type Parser = ResponsesStreamParser;

    fn request<'a>(
        &'a self,
        context: &'a Context,
        _model: &'a ModelDescriptor,
        stream: bool,
    ) -> Result<WireRequest<ResponsesRequest<'a>>, ProviderError> {
        let hasher = PrefixHasher::new(context);
        self.chains.adopt(context, &hasher);
        let chain = self.chains.longest(&hasher);
        let skip = chain.as_ref().map_or(0, |(len, _)| *len);
        let settings = context.settings.as_ref();
        let body = ResponsesRequest {
            model: context.model.as_str(),
            instructions: instructions(context),
            input: input_items(conversation(context).skip(skip))?,
            previous_response_id: chain.map(|(_, id)| id),
            tools: context.tools.iter().map(map_tool).collect(),
            tool_choice: (!context.tools.is_empty()).then_some("auto"),
            store: true,
            stream,
            temperature: settings.and_then(|s| s.temperature),
            top_p: settings.and_then(|s| s.top_p),
            max_output_tokens: settings.and_then(|s| s.max_output_tokens),
        };
        Ok(WireRequest {
            path: "/responses".to_owned(),
            body,
        })
    }

    fn parse_response(&self, context: &Context, body: &Bytes) -> Result<Response, ProviderError> {
        let object: ResponseObject = parse_json(body)?;
        let mut response = object.to_response()?;
        response.message.response_ref = self.remember(context, &response.message, object.id);
        Ok(response)
    }

    fn stream_parser(&self, context: &Context) -> ResponsesStreamParser {
        ResponsesStreamParser {
            chains: self.chains.clone(),
            prefix: PrefixHasher::new(context),
            collector: StreamCollector::new(),
            tool_ordinals: BTreeMap::new(),
        }
    }

    fn retry_without_state(&self, context: &Context, error: &ProviderError) -> bool {
        let rejected = matches!(
            error,
            ProviderError::HttpStatus {
                status: 400 | 404,
                ..
            }
        );
        let hasher = PrefixHasher::new(context);
        match self.chains.longest(&hasher) {
            Some((len, _)) if rejected => {
                if let Some(key) = hasher.key(len) {
                    self.chains.forget(key);
                }
                true
            }
            Some(_) | None => false,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ResponseObject {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    output: Vec<OutputItem>,
    usage: Option<ResponsesUsage>,
    incomplete_details: Option<IncompleteDetails>,
    error: Option<ResponseErrorBody>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItem {
    Message {
        #[serde(default)]
        content: Vec<OutputContent>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputContent {
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct IncompleteDetails {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    total_tokens: Option<u64>,
    input_tokens_details: Option<InputDetails>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Deserialize)]
struct InputDetails {
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct OutputDetails {
    reasoning_tokens: Option<u64>,
}

impl ResponsesUsage {
    fn to_usage(&self) -> UsageUpdate {
        UsageUpdate {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: self
                .total_tokens
                .unwrap_or(self.input_tokens + self.output_tokens),
            cached_input_tokens: self
                .input_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens),
            // Implicit caching: no writes to report.
            cache_write_input_tokens: None,
            reasoning_tokens: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens),
        }
    }
}

impl ResponseObject {
    fn failure(&self) -> Option<ProviderError> {
        let error = self.error.as_ref()?;
        let code = error.code.as_deref().unwrap_or("error");
        Some(ProviderError::ResponseParse(format!(
            "the response failed ({code}): {}",
            error.message
        )))
    }

    fn finish_reason(&self, has_calls: bool) -> FinishReason {
        let incomplete = self
            .incomplete_details
            .as_ref()
            .and_then(|d| d.reason.as_deref());
        match (self.status.as_deref(), incomplete) {
            (Some("incomplete"), Some("max_output_tokens")) => FinishReason::Length,
            (Some("incomplete"), Some("content_filter")) => FinishReason::ContentFilter,
            (Some("incomplete"), other) => {
                FinishReason::Other(other.unwrap_or("incomplete").to_owned())
            }
            _ if has_calls => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        }
    }

    fn to_response(&self) -> Result<Response, ProviderError> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        let mut text = String::new();
        let mut calls = Vec::new();
        for item in &self.output {
            match item {
                OutputItem::Message { content } => {
                    for part in content {
                        match part {
                            OutputContent::OutputText { text: t } => text.push_str(t),
                            OutputContent::Refusal { refusal } => text.push_str(refusal),
                            OutputContent::Other => {}
                        }
                    }
                }
                OutputItem::FunctionCall {
                    call_id,
                    name,
                    arguments,
                } => calls.push(ToolCall::new(call_id, name, arguments)),
                OutputItem::Other => {}
            }
        }
        let finish_reason = self.finish_reason(!calls.is_empty());
        Ok(Response {
            message: Message::assistant_tool_calls((!text.is_empty()).then_some(text), calls),
            finish_reason: Some(finish_reason),
            usage: self.usage.as_ref().map(ResponsesUsage::to_usage),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum StreamEvent {
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded { output_index: u32, item: AddedItem },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta { delta: String },
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta { delta: String },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta { output_index: u32, delta: String },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryDelta { delta: String },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseObject },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: ResponseObject },
    #[serde(rename = "response.failed")]
    Failed { response: ResponseObject },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: String,
    },
    /// `response.created`, `response.output_item.done`, `…text.done` and
    /// any event type added later carry nothing new.
    #[serde(other)]
    Ignored,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AddedItem {
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    #[serde(other)]
    Other,
}

/// Parses Responses API stream events until `response.completed`, and
/// remembers the response id for chaining.
#[derive(Debug)]
pub struct ResponsesStreamParser {
    chains: ResponseChains,
    prefix: PrefixHasher,
    /// The answer so far, to key the chain entry once it completes.
    collector: StreamCollector,
    /// Output index → tool-call ordinal.
    tool_ordinals: BTreeMap<u32, u32>,
}

impl ResponsesStreamParser {
    fn emit(&mut self, item: StreamItem, out: &mut Vec<StreamItem>) {
        self.collector.push(item.clone());
        out.push(item);
    }

    fn finish(&mut self, response: &ResponseObject, out: &mut Vec<StreamItem>) {
        let has_calls = !self.tool_ordinals.is_empty();
        if let Some(usage) = &response.usage {
            self.emit(StreamItem::UsageUpdate(usage.to_usage()), out);
        }
        self.emit(
            StreamItem::FinishReason(response.finish_reason(has_calls)),
            out,
        );
        let collector = std::mem::take(&mut self.collector);
        if let Ok(reply) = collector.finish()
            && let Some(reference) = remember(
                &self.chains,
                self.prefix.clone(),
                &reply.message,
                response.id.clone(),
            )
        {
            out.push(StreamItem::ResponseRef(reference));
        }
    }
}

impl EventParser for ResponsesStreamParser {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<StreamStep, ProviderError> {
        match parse_json::<StreamEvent>(event.data.as_bytes())? {
            StreamEvent::OutputItemAdded { output_index, item } => {
                if let AddedItem::FunctionCall {
                    call_id,
                    name,
                    arguments,
                } = item
                {
                    let ordinal = self.tool_ordinals.len() as u32;
                    self.tool_ordinals.insert(output_index, ordinal);
                    self.emit(
                        StreamItem::ToolCallDelta {
                            index: ordinal,
                            id: Some(call_id),
                            name: Some(name),
                            arguments_fragment: arguments,
                        },
                        out,
                    );
                }
            }
            StreamEvent::OutputTextDelta { delta } | StreamEvent::RefusalDelta { delta } => {
                if !delta.is_empty() {
                    self.emit(StreamItem::Text(delta), out);
                }
            }
            StreamEvent::FunctionCallArgumentsDelta {
                output_index,
                delta,
            } => {
                let index = *self.tool_ordinals.get(&output_index).ok_or_else(|| {
                    ProviderError::ResponseParse(format!(
                        "arguments for output item {output_index}, which is not a function call"
                    ))
                })?;
                self.emit(
                    StreamItem::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments_fragment: delta,
                    },
                    out,
                );
            }
            StreamEvent::ReasoningSummaryDelta { delta } => {
                out.push(StreamItem::ReasoningDelta(delta));
            }
            StreamEvent::Completed { response } | StreamEvent::Incomplete { response } => {
                self.finish(&response, out);
                return Ok(StreamStep::Done);
            }
            StreamEvent::Failed { response } => {
                return Err(response.failure().unwrap_or_else(|| {
                    ProviderError::ResponseParse("the response failed without details".into())
                }));
            }
            StreamEvent::Error { code, message } => {
                return Err(ProviderError::ResponseParse(format!(
                    "stream error ({}): {message}",
                    code.as_deref().unwrap_or("error")
                )));
            }
            StreamEvent::Ignored => {}
        }
        Ok(StreamStep::Continue)
    }
}
