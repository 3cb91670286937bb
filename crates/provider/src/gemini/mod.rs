//! Gemini generateContent (`provider_type = "gemini"`).
//!
//! System messages become `systemInstruction`, tool calls and results travel
//! as `functionCall` / `functionResponse` parts, and consecutive messages of
//! one role are merged into one content. Gemini has no call ids: ids are
//! generated from the context, and a tool result finds its function name by
//! looking its id up among the calls earlier in the history. Tool schemas are
//! converted to Gemini's OpenAPI-style `Schema` subset. A function call's
//! `thoughtSignature` is kept on its `ToolCall` and sent back on the same
//! part.

mod schema;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use types::{
    Context, FinishReason, FunctionDecl, GenerationSettings, Message, MessageRole, ModelDescriptor,
    ModelId, ProviderError, Response, Signature, StreamItem, UsageUpdate,
};

use crate::accumulate::StreamCollector;
use crate::http::{EventParser, StreamStep, error_from_status};
use crate::sse::SseEvent;
use crate::wire::{ObjectArguments, WireApi, WireRequest, parse_json};

use schema::GeminiSchema;

/// Gemini's API root. The factory adds the `x-goog-api-key` header.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The generateContent wire format.
#[derive(Debug)]
pub struct GeminiWire;

impl GeminiWire {
    pub(crate) fn new() -> Self {
        Self
    }
}

/// The body of a `generateContent` / `streamGenerateContent` request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Debug, Serialize)]
struct SystemInstruction<'a> {
    parts: Vec<Part<'a>>,
}

#[derive(Debug, Serialize)]
struct Content<'a> {
    role: Role,
    parts: Vec<Part<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Model,
}

/// A part: exactly one kind of data, and the signature Gemini attached to
/// it when the model produced it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(flatten)]
    data: PartData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

impl<'a> From<PartData<'a>> for Part<'a> {
    fn from(data: PartData<'a>) -> Self {
        Self {
            data,
            thought_signature: None,
        }
    }
}

/// The data of a part: an object with exactly one of these keys.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum PartData<'a> {
    Text(Cow<'a, str>),
    FunctionCall(FunctionCall<'a>),
    FunctionResponse(FunctionResponse<'a>),
}

#[derive(Debug, Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: ObjectArguments<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionResponse<'a> {
    name: &'a str,
    response: ToolOutput<'a>,
}

#[derive(Debug, Serialize)]
struct ToolOutput<'a> {
    content: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Tool<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Debug, Serialize)]
struct FunctionDeclaration<'a> {
    name: &'a str,
    description: &'a str,
    /// Absent for a function without parameters: Gemini rejects an `OBJECT`
    /// whose `properties` are empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<GeminiSchema<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
}

fn map_tool(decl: &FunctionDecl) -> FunctionDeclaration<'_> {
    FunctionDeclaration {
        name: &decl.name,
        description: &decl.description,
        parameters: GeminiSchema::parameters(&decl.parameters),
    }
}

/// The joined system text and the role-merged contents. A function call
/// goes back with its `thoughtSignature` when `model` issued it (Gemini 3
/// rejects the calls of the current turn without theirs); another model's
/// signature would not verify, so it is left out.
fn map_messages<'a>(
    messages: &'a [Message],
    model: &'a ModelId,
) -> Result<(Option<SystemInstruction<'a>>, Vec<Content<'a>>), ProviderError> {
    let mut system = Vec::new();
    // Call id → function name of every call made so far. Walking in order
    // means a reused id maps to its most recent call.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut contents: Vec<Content<'_>> = Vec::new();
    for message in messages {
        // Gemini rejects empty text parts, so empty text is left out.
        let text = message.content.as_deref().filter(|t| !t.is_empty());
        let text_part = text.map(|text| Part::from(PartData::Text(Cow::Borrowed(text))));
        let (role, parts) = match message.role {
            MessageRole::System => {
                system.extend(text);
                continue;
            }
            MessageRole::User => (Role::User, text_part.into_iter().collect()),
            MessageRole::Assistant => {
                let calls = &message.tool_calls;
                names.extend(calls.iter().map(|c| (c.id.as_str(), c.name.as_str())));
                let calls = calls.iter().map(|call| Part {
                    data: PartData::FunctionCall(FunctionCall {
                        name: &call.name,
                        args: ObjectArguments::parse(&call.arguments),
                    }),
                    thought_signature: call.signature.as_ref().and_then(|s| s.value_for(model)),
                });
                (Role::Model, text_part.into_iter().chain(calls).collect())
            }
            MessageRole::Tool => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    ProviderError::Unsupported(
                        "a tool result message has no tool_call_id; Gemini needs it to find \
                         the function name"
                            .into(),
                    )
                })?;
                let name = names.get(id).ok_or_else(|| {
                    ProviderError::Unsupported(format!(
                        "the tool result for call '{id}' does not answer any earlier assistant \
                         tool call; Gemini needs the function name, which only that call has"
                    ))
                })?;
                let response = ToolOutput {
                    content: message.content.as_deref().unwrap_or_default(),
                };
                (
                    Role::User,
                    vec![PartData::FunctionResponse(FunctionResponse { name, response }).into()],
                )
            }
        };
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            // A content without parts is rejected.
            _ if parts.is_empty() => {}
            _ => contents.push(Content { role, parts }),
        }
    }
    let system = (!system.is_empty()).then(|| SystemInstruction {
        parts: vec![PartData::Text(Cow::Owned(system.join("\n\n"))).into()],
    });
    Ok((system, contents))
}

impl WireApi for GeminiWire {
    type Body<'a> = GenerateContentRequest<'a>;
    type Parser = GeminiStreamParser;

    fn request<'a>(
        &'a self,
        context: &'a Context,
        _model: &'a ModelDescriptor,
        stream: bool,
    ) -> Result<WireRequest<GenerateContentRequest<'a>>, ProviderError> {
        let model = context.model.as_str();
        // The id is part of the URL path; these would change which URL it is.
        if model.contains(['/', '?', '#']) {
            return Err(ProviderError::Unsupported(format!(
                "Gemini model id '{model}' contains '/', '?' or '#', which cannot appear in \
                 the request path"
            )));
        }
        let (system_instruction, contents) = map_messages(&context.messages, &context.model)?;
        let generation_config = context
            .settings
            .as_ref()
            .filter(|s| **s != GenerationSettings::default())
            .map(|s| GenerationConfig {
                temperature: s.temperature,
                top_p: s.top_p,
                max_output_tokens: s.max_output_tokens,
            });
        let tools = (!context.tools.is_empty())
            .then(|| Tool {
                function_declarations: context.tools.iter().map(map_tool).collect(),
            })
            .into_iter()
            .collect();
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        Ok(WireRequest {
            path: format!("/v1beta/models/{model}:{method}"),
            body: GenerateContentRequest {
                system_instruction,
                contents,
                tools,
                generation_config,
            },
        })
    }

    fn parse_response(&self, context: &Context, body: &Bytes) -> Result<Response, ProviderError> {
        let response: GenerateContentResponse = parse_json(body)?;
        let mut items = Vec::new();
        let outcome = GeminiStreamParser::new(context).read(response, &mut items)?;
        if items.is_empty() && outcome.finish_reason.is_none() {
            return Err(ProviderError::ResponseParse(
                "the Gemini response has no candidate content, finish reason or block reason"
                    .into(),
            ));
        }
        // A whole body is one chunk holding the entire answer, so it folds
        // exactly as a stream does (and gets the same call ids).
        let mut collector = StreamCollector::new();
        items
            .into_iter()
            .chain(outcome.usage.map(StreamItem::UsageUpdate))
            .chain(outcome.finish_reason.map(StreamItem::FinishReason))
            .for_each(|item| collector.push(item));
        collector.finish()
    }

    fn stream_parser(&self, context: &Context) -> GeminiStreamParser {
        GeminiStreamParser::new(context)
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        other => FinishReason::Other(other.to_owned()),
    }
}

/// A whole response, or one streamed chunk (the same shape), or an error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<ResponsePart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePart {
    text: Option<String>,
    /// Marks a reasoning summary, which is not answer text.
    #[serde(default)]
    thought: bool,
    function_call: Option<ResponseFunctionCall>,
    /// Gemini's signature of the model's thinking up to this part. Only a
    /// function call's must go back (on that call); one on a text part is
    /// optional context and not kept.
    thought_signature: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseFunctionCall {
    name: String,
    /// Arbitrary JSON: whatever the model put in the call.
    #[serde(default)]
    args: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    total_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Output includes thinking tokens, as OpenAI's and Anthropic's counts
    /// do: Google bills them at the output price, so cost stays right.
    fn into_usage(self) -> UsageUpdate {
        let input = self.prompt_token_count;
        let output = self.candidates_token_count + self.thoughts_token_count.unwrap_or(0);
        UsageUpdate {
            input_tokens: input,
            output_tokens: output,
            total_tokens: self.total_token_count.unwrap_or(input + output),
            // `promptTokenCount` includes the cached tokens, as
            // `UsageUpdate` wants; cache storage is billed by the hour,
            // not per request, so there are no writes to report.
            cached_input_tokens: self.cached_content_token_count,
            cache_write_input_tokens: None,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

/// Google's error envelope, as an error body or as a chunk mid-stream.
#[derive(Debug, Deserialize)]
struct ApiError {
    code: Option<u16>,
    #[serde(default)]
    message: String,
    status: Option<String>,
}

impl ApiError {
    /// Classified by its HTTP code, so `is_retriable` treats an error that
    /// arrives after the 200 like the same error before it.
    fn into_provider_error(self) -> ProviderError {
        let status = self.status.as_deref().unwrap_or("error");
        let text = format!("gemini {status}: {}", self.message);
        match self.code {
            // `text` is not a JSON envelope, so it becomes the message verbatim.
            Some(code) if code >= 400 => error_from_status(code, &HeaderMap::new(), &text),
            _ => ProviderError::ResponseParse(text),
        }
    }
}

/// How a response or chunk ends the answer, if it does.
#[derive(Debug)]
struct ChunkOutcome {
    finish_reason: Option<FinishReason>,
    usage: Option<UsageUpdate>,
}

/// Parses `streamGenerateContent?alt=sse` chunks until the one carrying a
/// finish reason (or a block reason).
#[derive(Debug)]
pub struct GeminiStreamParser {
    /// The model asked, which signs the function calls.
    model: ModelId,
    /// `context.messages.len()`, the first half of every generated call id.
    turn: usize,
    /// Function calls seen so far: the ordinal of the next one.
    calls: u32,
}

impl GeminiStreamParser {
    fn new(context: &Context) -> Self {
        Self {
            model: context.model.clone(),
            turn: context.messages.len(),
            calls: 0,
        }
    }

    /// Call ids are stable (the same context gives the same ids, so a
    /// retried request does not invent new ones) and unique within a
    /// session, because the history grows with every answer.
    fn call_id(&self, ordinal: u32) -> String {
        format!("gemini_call_{}_{ordinal}", self.turn)
    }

    /// Appends the text, reasoning and tool calls of the first candidate to
    /// `out`; an error envelope becomes the matching error.
    fn read(
        &mut self,
        chunk: GenerateContentResponse,
        out: &mut Vec<StreamItem>,
    ) -> Result<ChunkOutcome, ProviderError> {
        if let Some(error) = chunk.error {
            return Err(error.into_provider_error());
        }
        let mut finish = None;
        if let Some(candidate) = chunk.candidates.into_iter().next() {
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(call) = part.function_call {
                    let index = self.calls;
                    self.calls += 1;
                    let arguments = serde_json::to_string(&call.args.unwrap_or_default())
                        .map_err(|e| ProviderError::ResponseParse(e.to_string()))?;
                    out.push(StreamItem::ToolCallDelta {
                        index,
                        id: Some(self.call_id(index)),
                        name: Some(call.name),
                        arguments_fragment: arguments,
                    });
                    // Of parallel calls only the first carries one.
                    if let Some(value) = part.thought_signature.filter(|s| !s.is_empty()) {
                        let signature = Signature {
                            model: self.model.clone(),
                            value,
                        };
                        out.push(StreamItem::ToolCallSignature { index, signature });
                    }
                } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                    out.push(if part.thought {
                        StreamItem::ReasoningDelta(text)
                    } else {
                        StreamItem::Text(text)
                    });
                }
            }
            // Gemini says STOP after function calls too.
            finish = candidate.finish_reason.map(|r| match finish_reason(&r) {
                FinishReason::Stop if self.calls > 0 => FinishReason::ToolCalls,
                reason => reason,
            });
        }
        let blocked = chunk.prompt_feedback.and_then(|f| f.block_reason).is_some();
        Ok(ChunkOutcome {
            finish_reason: finish.or(blocked.then_some(FinishReason::ContentFilter)),
            usage: chunk.usage_metadata.map(UsageMetadata::into_usage),
        })
    }
}

impl EventParser for GeminiStreamParser {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<StreamStep, ProviderError> {
        let chunk: GenerateContentResponse = parse_json(event.data.as_bytes())?;
        let outcome = self.read(chunk, out)?;
        let Some(reason) = outcome.finish_reason else {
            return Ok(StreamStep::Continue);
        };
        // Every chunk repeats the cumulative usage while consumers sum usage
        // items, so only the final chunk's count is reported.
        out.extend(outcome.usage.map(StreamItem::UsageUpdate));
        out.push(StreamItem::FinishReason(reason));
        Ok(StreamStep::Done)
    }
}
