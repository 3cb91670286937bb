//! OpenAI chat completions (`provider_type = "openai"`), also spoken by
//! OpenAI-compatible servers (OpenRouter, Ollama, llama.cpp, vLLM).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use types::{
    Context, FinishReason, FunctionDecl, JsonSchema, Message, MessageRole, ModelDescriptor,
    ProviderError, Response, StreamItem, ToolCall, UsageUpdate,
};

use crate::http::{EventParser, StreamStep};
use crate::sse::SseEvent;
use crate::wire::{WireApi, WireRequest, parse_json};

/// OpenAI's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The chat completions wire format.
#[derive(Debug)]
pub struct ChatWire {
    /// OpenAI itself wants `max_completion_tokens` (reasoning models reject
    /// `max_tokens`); compatible servers only know `max_tokens`.
    native_openai: bool,
}

impl ChatWire {
    pub(crate) fn new(base_url: &str) -> Self {
        Self {
            native_openai: base_url.trim_end_matches('/') == DEFAULT_BASE_URL,
        }
    }
}

/// The body of a chat completions request.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ChatTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum ChatMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ChatToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

#[derive(Debug, Serialize)]
struct ChatToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: ChatFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
struct ChatFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct ChatTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: ChatFunction<'a>,
}

#[derive(Debug, Serialize)]
struct ChatFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a JsonSchema,
}

fn map_message(message: &Message) -> Result<ChatMessage<'_>, ProviderError> {
    let content = message.content.as_deref();
    Ok(match message.role {
        MessageRole::System => ChatMessage::System {
            content: content.unwrap_or_default(),
        },
        MessageRole::User => ChatMessage::User {
            content: content.unwrap_or_default(),
        },
        MessageRole::Assistant => ChatMessage::Assistant {
            content,
            tool_calls: message
                .tool_calls
                .iter()
                .map(|call| ChatToolCall {
                    id: &call.id,
                    kind: "function",
                    function: ChatFunctionCall {
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                })
                .collect(),
        },
        MessageRole::Tool => ChatMessage::Tool {
            tool_call_id: message.tool_call_id.as_deref().ok_or_else(|| {
                ProviderError::Unsupported("a tool result message has no tool_call_id".into())
            })?,
            content: content.unwrap_or_default(),
        },
    })
}

fn map_tool(decl: &FunctionDecl) -> ChatTool<'_> {
    ChatTool {
        kind: "function",
        function: ChatFunction {
            name: &decl.name,
            description: &decl.description,
            parameters: &decl.parameters,
        },
    }
}

impl WireApi for ChatWire {
    type Body<'a> = ChatRequest<'a>;
    type Parser = ChatStreamParser;

    fn request<'a>(
        &'a self,
        context: &'a Context,
        _model: &'a ModelDescriptor,
        stream: bool,
    ) -> Result<WireRequest<ChatRequest<'a>>, ProviderError> {
        let settings = context.settings.as_ref();
        let max_output = settings.and_then(|s| s.max_output_tokens);
        let body = ChatRequest {
            model: context.model.as_str(),
            messages: context
                .messages
                .iter()
                .map(map_message)
                .collect::<Result<_, _>>()?,
            tools: context.tools.iter().map(map_tool).collect(),
            tool_choice: (!context.tools.is_empty()).then_some("auto"),
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: settings.and_then(|s| s.temperature),
            top_p: settings.and_then(|s| s.top_p),
            max_tokens: max_output.filter(|_| !self.native_openai),
            max_completion_tokens: max_output.filter(|_| self.native_openai),
        };
        Ok(WireRequest {
            path: "/chat/completions".to_owned(),
            body,
        })
    }

    fn parse_response(&self, _context: &Context, body: &Bytes) -> Result<Response, ProviderError> {
        let response: ChatResponse = parse_json(body)?;
        let choice =
            response.choices.into_iter().next().ok_or_else(|| {
                ProviderError::ResponseParse("chat completion has no choices".into())
            })?;
        let tool_calls = choice
            .message
            .tool_calls
            .into_iter()
            .map(|call| ToolCall::new(call.id, call.function.name, call.function.arguments))
            .collect();
        let content = choice.message.content.filter(|text| !text.is_empty());
        Ok(Response {
            message: Message::assistant_tool_calls(content, tool_calls),
            finish_reason: choice.finish_reason.as_deref().map(finish_reason),
            usage: response.usage.map(ChatUsage::into_usage),
        })
    }

    fn stream_parser(&self, _context: &Context) -> ChatStreamParser {
        ChatStreamParser
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<ChatChoice>,
    usage: Option<ChatUsage>,
}

#[derive(Debug, Deserialize)]
struct ChatChoice {
    message: ChatResponseMessage,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatResponseMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ChatResponseToolCall>,
}

#[derive(Debug, Deserialize)]
struct ChatResponseToolCall {
    id: String,
    function: ChatResponseFunction,
}

#[derive(Debug, Deserialize)]
struct ChatResponseFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Debug, Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl ChatUsage {
    fn into_usage(self) -> UsageUpdate {
        UsageUpdate {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            total_tokens: self
                .total_tokens
                .unwrap_or(self.prompt_tokens + self.completion_tokens),
            // `prompt_tokens` includes the cached tokens, as `UsageUpdate`
            // wants; OpenAI caches implicitly and reports no writes.
            cached_input_tokens: self.prompt_tokens_details.and_then(|d| d.cached_tokens),
            cache_write_input_tokens: None,
            reasoning_tokens: self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<ChatUsage>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkDelta {
    content: Option<String>,
    /// Reasoning text of compatible servers (DeepSeek, vLLM, llama.cpp).
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ChunkToolCall>,
}

#[derive(Debug, Deserialize)]
struct ChunkToolCall {
    index: u32,
    id: Option<String>,
    function: Option<ChunkFunction>,
}

#[derive(Debug, Deserialize)]
struct ChunkFunction {
    name: Option<String>,
    arguments: Option<String>,
}

/// Parses `chat.completion.chunk` events until `data: [DONE]`.
#[derive(Debug)]
pub struct ChatStreamParser;

impl EventParser for ChatStreamParser {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamItem>,
    ) -> Result<StreamStep, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(StreamStep::Done);
        }
        let chunk: ChatChunk = parse_json(data.as_bytes())?;
        for choice in chunk.choices {
            let delta = choice.delta;
            if let Some(text) = delta.reasoning_content.filter(|t| !t.is_empty()) {
                out.push(StreamItem::ReasoningDelta(text));
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push(StreamItem::Text(text));
            }
            for call in delta.tool_calls {
                let (name, arguments) = call
                    .function
                    .map(|f| (f.name, f.arguments.unwrap_or_default()))
                    .unwrap_or_default();
                out.push(StreamItem::ToolCallDelta {
                    index: call.index,
                    id: call.id,
                    name,
                    arguments_fragment: arguments,
                });
            }
            if let Some(reason) = choice.finish_reason {
                out.push(StreamItem::FinishReason(finish_reason(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamItem::UsageUpdate(usage.into_usage()));
        }
        Ok(StreamStep::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulate::StreamCollector;
    use crate::stream_test::{assert_every_split_matches, run_stream};
    use std::collections::BTreeMap;
    use types::{GenerationSettings, ModelCatalog, ProviderType};

    fn model() -> &'static ModelDescriptor {
        ModelCatalog::pinned()
            .get(ProviderType::Openai, "gpt-4.1")
            .unwrap()
    }

    fn context() -> Context {
        Context {
            provider: "openai".into(),
            model: "gpt-4.1".into(),
            messages: vec![
                Message::system("You are terse."),
                Message::user("Read a and list /tmp"),
                Message::assistant_tool_calls(
                    Some("On it.".into()),
                    vec![
                        ToolCall::new("call_1", "file_read", "{\"path\":\"/shared/a\"}"),
                        ToolCall::new("call_2", "file_list", "{\"path\":\"/tmp\""),
                    ],
                ),
                Message::tool_result("call_1", "alpha"),
                Message::tool_result("call_2", "Tool execution failed: invalid JSON"),
                Message::user("Thanks"),
            ],
            tools: vec![FunctionDecl {
                name: "file_read".into(),
                description: "Read a file".into(),
                parameters: JsonSchema::object(
                    BTreeMap::from([("path".into(), JsonSchema::string())]),
                    vec!["path".into()],
                ),
            }],
            settings: Some(GenerationSettings {
                temperature: Some(0.3),
                top_p: Some(0.9),
                max_output_tokens: Some(256),
            }),
        }
    }

    fn body(wire: &ChatWire, context: &Context, stream: bool) -> serde_json::Value {
        let request = wire.request(context, model(), stream).unwrap();
        assert_eq!(request.path, "/chat/completions");
        serde_json::to_value(request.body).unwrap()
    }

    #[test]
    fn request_with_tools_system_text_and_tool_results() {
        insta::assert_json_snapshot!(body(&ChatWire::new(DEFAULT_BASE_URL), &context(), true));
    }

    #[test]
    fn compatible_servers_get_max_tokens_and_no_tool_choice_without_tools() {
        let mut context = context();
        context.tools.clear();
        let body = body(&ChatWire::new("http://127.0.0.1:11434/v1"), &context, false);
        assert_eq!(body["max_tokens"], 256);
        assert!(body.get("max_completion_tokens").is_none());
        assert!(body.get("tool_choice").is_none() && body.get("tools").is_none());
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["stream"], false);
    }

    #[test]
    fn tool_result_without_call_id_is_refused() {
        let mut context = context();
        context.messages.push(Message {
            tool_call_id: None,
            ..Message::tool_result("x", "orphan")
        });
        let err = ChatWire::new(DEFAULT_BASE_URL)
            .request(&context, model(), false)
            .unwrap_err();
        assert!(err.to_string().contains("no tool_call_id"), "{err}");
    }

    #[test]
    fn normalises_a_recorded_response() {
        let body = Bytes::from_static(
            br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4.1",
            "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
              {"id":"call_9","type":"function","function":{"name":"file_read","arguments":"{\"path\":\"/shared/x\"}"}}]},
              "finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":20,"completion_tokens":7,"total_tokens":27,
              "prompt_tokens_details":{"cached_tokens":16},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        );
        let response = ChatWire::new(DEFAULT_BASE_URL)
            .parse_response(&context(), &body)
            .unwrap();
        assert_eq!(response.message.content, None);
        assert_eq!(response.message.tool_calls[0].id, "call_9");
        assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
        let usage = response.usage.unwrap();
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.total_tokens),
            (20, 7, 27)
        );
        assert_eq!(usage.cached_input_tokens, Some(16));

        let err = ChatWire::new(DEFAULT_BASE_URL)
            .parse_response(&context(), &Bytes::from_static(b"{\"choices\":[]}"))
            .unwrap_err();
        assert!(err.to_string().contains("no choices"), "{err}");
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("stop"), FinishReason::Stop);
        assert_eq!(finish_reason("function_call"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("length"), FinishReason::Length);
        assert_eq!(finish_reason("content_filter"), FinishReason::ContentFilter);
        assert_eq!(finish_reason("eos"), FinishReason::Other("eos".into()));
    }

    /// Two tool calls whose argument fragments interleave, text with
    /// multi-byte characters, usage in the final chunk, then `[DONE]`.
    const STREAM: &str = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"héllo \"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"👋 世界\"},\"finish_reason\":null}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"file_read\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"file_list\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"path\\\":\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"path\\\":\\\"/tmp\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"/shared/a\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(pieces: &[&[u8]]) -> (Vec<StreamItem>, bool) {
        run_stream(ChatStreamParser, pieces)
    }

    #[test]
    fn stream_reassembles_interleaved_tool_calls() {
        let (items, done) = run(&[STREAM.as_bytes()]);
        assert!(done);
        let mut collector = StreamCollector::new();
        items.into_iter().for_each(|item| collector.push(item));
        let response = collector.finish().unwrap();
        assert_eq!(response.message.content.as_deref(), Some("héllo 👋 世界"));
        let calls = &response.message.tool_calls;
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str()),
            ("call_a", "file_read")
        );
        assert_eq!(calls[0].arguments, "{\"path\":\"/shared/a\"}");
        assert_eq!(calls[1].arguments, "{\"path\":\"/tmp\"}");
        assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(response.usage.unwrap().total_tokens, 13);
    }

    #[test]
    fn stream_items_are_identical_at_every_split_point() {
        assert_every_split_matches(STREAM, run);
    }

    #[test]
    fn unparseable_chunk_is_an_error() {
        let err = ChatStreamParser
            .on_event(
                SseEvent {
                    data: "{\"choices\": [".into(),
                    ..SseEvent::default()
                },
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(matches!(err, ProviderError::ResponseParse(_)), "{err}");
    }
}
