//! The provider-neutral message model: what the runtime sends to a provider
//! (`Context`) and what comes back (`Response`, or a `ProviderStream` of
//! `StreamItem`s).

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ids::{ModelId, ProviderId};
use crate::schema::FunctionDecl;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    System,
    User,
    Assistant,
    Tool,
}

/// An opaque value a model attached to part of its answer and requires
/// back, unchanged and on the same part, in later requests: Gemini's
/// `thoughtSignature`, Anthropic's thinking `signature` and
/// `redacted_thinking` data. Only the model that issued it can verify it,
/// so it records that model, and a wire sends it back to that model only
/// (another model would reject the request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The model that issued the value.
    pub model: ModelId,
    /// The value exactly as the vendor sent it.
    pub value: String,
}

impl Signature {
    /// The value, if `model` issued it.
    pub fn value_for(&self, model: &ModelId) -> Option<&str> {
        (self.model == *model).then_some(self.value.as_str())
    }
}

/// One tool invocation requested by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The raw JSON text the model produced. It may be malformed; it is
    /// validated against the tool's schema only when the call is executed.
    pub arguments: String,
    /// The vendor's signature for this call (Gemini's `thoughtSignature`,
    /// which Gemini 3 requires back with the call); stored with the
    /// message so it survives restarts. Other vendors never set or send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

impl ToolCall {
    /// A call without a vendor signature.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
            signature: None,
        }
    }
}

/// Reasoning kept on an assistant message because its vendor requires it
/// back verbatim (Anthropic's signed thinking blocks, which must accompany
/// the tool calls they led to while extended thinking is on). Reasoning
/// without a signature is shown while it streams and never kept, so it is
/// never sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningBlock {
    /// Readable reasoning and the signature over exactly this text.
    Thinking { text: String, signature: Signature },
    /// Reasoning the vendor encrypted: nothing to show, only to send back.
    /// `data` is as opaque and as bound to its model as a signature.
    Redacted { data: Signature },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: MessageRole,
    /// Text content; `None` for an assistant message that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls requested by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `Tool` messages: the id of the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For assistant messages: the signed reasoning that came before the
    /// text and tool calls, in order (see `ReasoningBlock`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<ReasoningBlock>,
    /// For assistant messages a server keeps state for (OpenAI Responses):
    /// which stored response this answer is, so a later request — after a
    /// restart too — can name it instead of sending the history again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_ref: Option<ResponseRef>,
}

/// A server-side response that ends a known conversation (the OpenAI
/// Responses API's `previous_response_id`). Stored with the message, so
/// the chain survives restarts; only the provider reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRef {
    /// The server's response id.
    pub id: String,
    /// A hash of the model and the conversation up to and including this
    /// answer (response references themselves left out): the id is used
    /// only for a context that repeats exactly that conversation.
    pub conversation_hash: String,
}

impl Message {
    fn text(role: MessageRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning: Vec::new(),
            response_ref: None,
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::text(MessageRole::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::text(MessageRole::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::text(MessageRole::Assistant, content)
    }

    /// An assistant message that calls tools, with optional accompanying text.
    pub fn assistant_tool_calls(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            role: MessageRole::Assistant,
            content,
            tool_calls,
            tool_call_id: None,
            reasoning: Vec::new(),
            response_ref: None,
        }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id.into()),
            reasoning: Vec::new(),
            response_ref: None,
        }
    }
}

/// Optional sampling settings; `None` fields use the provider's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

/// Everything a provider needs for one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub provider: ProviderId,
    pub model: ModelId,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<FunctionDecl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<GenerationSettings>,
}

/// Why the model stopped producing output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end of the answer.
    Stop,
    /// The model wants tools to be called.
    ToolCalls,
    /// The output token limit was reached.
    Length,
    /// The provider filtered the output.
    ContentFilter,
    /// A vendor reason without a neutral equivalent, kept verbatim.
    Other(String),
}

/// Token usage of one provider call, normalised the same way for every
/// vendor:
///
/// - `input_tokens` counts the whole prompt, cached or not. OpenAI
///   (`prompt_tokens`) and Gemini (`promptTokenCount`) report it so;
///   Anthropic's `input_tokens` leaves out the tokens read from and written
///   to its cache, so its wire adds them back.
/// - `cached_input_tokens` and `cache_write_input_tokens` say how many of
///   those `input_tokens` were read from the vendor's prompt cache and
///   written to it; the rest were processed at the plain input price.
///   `None` means the vendor did not say.
/// - `output_tokens` includes reasoning tokens; `reasoning_tokens` says how
///   many of them were reasoning.
///
/// `ModelDescriptor::cost_usd` relies on these inclusions to price each
/// token exactly once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageUpdate {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// Of `input_tokens`, those read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    /// Of `input_tokens`, those written to the prompt cache (Anthropic's
    /// `cache_creation_input_tokens`; vendors that cache implicitly never
    /// report writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
    /// Of `output_tokens`, those spent on reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

impl UsageUpdate {
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            cached_input_tokens: None,
            cache_write_input_tokens: None,
            reasoning_tokens: None,
        }
    }

    /// Adds another call's usage to this one (optional counts stay `None`
    /// only if both sides are `None`).
    pub fn accumulate(&mut self, other: &UsageUpdate) {
        fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            }
        }
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_input_tokens = add(self.cached_input_tokens, other.cached_input_tokens);
        self.cache_write_input_tokens = add(
            self.cache_write_input_tokens,
            other.cache_write_input_tokens,
        );
        self.reasoning_tokens = add(self.reasoning_tokens, other.reasoning_tokens);
    }
}

/// A complete (non-streamed) provider answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub message: Message,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageUpdate>,
}

/// One item of a streamed provider answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum StreamItem {
    /// A fragment of the answer's text.
    Text(String),
    /// A fragment of the model's reasoning trace (never shown as answer text).
    ReasoningDelta(String),
    /// Closes the reasoning streamed since the previous end (or the start)
    /// as one block. A signed block (Anthropic's `signature_delta`) is kept
    /// on the message and goes back verbatim; an unsigned one was only for
    /// display. Vendors without blocks never send it.
    ReasoningEnd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<Signature>,
    },
    /// A reasoning block the vendor encrypted (Anthropic's
    /// `redacted_thinking`): kept to send back, never shown.
    RedactedReasoning(Signature),
    /// A fragment of tool call number `index`; `id` and `name` arrive with
    /// the first fragment of a call, the arguments across many.
    ToolCallDelta {
        index: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        arguments_fragment: String,
    },
    /// The signature of tool call number `index` (Gemini's
    /// `thoughtSignature`), to be sent back with that call.
    ToolCallSignature {
        index: u32,
        signature: Signature,
    },
    /// The server-side response this answer is (OpenAI Responses), for
    /// later requests to chain from.
    ResponseRef(ResponseRef),
    UsageUpdate(UsageUpdate),
    FinishReason(FinishReason),
    /// The stream ended before its terminal event; the text explains how.
    ConnectionLost(String),
}

impl StreamItem {
    /// Whether the caller may already have shown this item: a piece of the
    /// answer's text, reasoning or a tool call. Signatures and redacted
    /// reasoning are never shown; like usage, they are bookkeeping held
    /// back with the answer.
    pub fn is_content(&self) -> bool {
        match self {
            Self::Text(_) | Self::ReasoningDelta(_) | Self::ToolCallDelta { .. } => true,
            Self::ReasoningEnd { .. }
            | Self::RedactedReasoning(_)
            | Self::ToolCallSignature { .. }
            | Self::ResponseRef(_)
            | Self::UsageUpdate(_)
            | Self::FinishReason(_)
            | Self::ConnectionLost(_) => false,
        }
    }
}

/// A streamed provider answer: a bounded channel whose capacity comes from
/// `runtime.stream_buffer_size`.
pub type ProviderStream = mpsc::Receiver<StreamItem>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn messages_round_trip() {
        round_trip(&Message::system("be brief"));
        round_trip(&Message::user("héllo 👋"));
        round_trip(&Message::assistant_tool_calls(
            None,
            vec![ToolCall::new(
                "call_1",
                "file_read",
                "{\"path\": \"/shared/a\"",
            )],
        ));
        round_trip(&Message::tool_result("call_1", "contents"));
    }

    fn signature(value: &str) -> Signature {
        Signature {
            model: "gemini-3-pro-preview".into(),
            value: value.into(),
        }
    }

    /// Signatures and signed reasoning are stored as the message's JSON, so
    /// they must survive a restart unchanged.
    #[test]
    fn signed_calls_and_reasoning_round_trip_through_storage() {
        let message = Message {
            reasoning: vec![
                ReasoningBlock::Thinking {
                    text: "Two files.".into(),
                    signature: signature("EqQBCgIYAhIM"),
                },
                ReasoningBlock::Redacted {
                    data: signature("EmwKAhgBEgy3va"),
                },
            ],
            ..Message::assistant_tool_calls(
                Some("Reading.".into()),
                vec![ToolCall {
                    signature: Some(signature("CiQB0e2Kb8Tz")),
                    ..ToolCall::new("gemini_call_2_0", "file_read", "{}")
                }],
            )
        };
        round_trip(&message);
        let value = serde_json::to_value(&message).unwrap();
        assert_eq!(
            value["tool_calls"][0]["signature"],
            json!({"model": "gemini-3-pro-preview", "value": "CiQB0e2Kb8Tz"})
        );
        assert_eq!(value["reasoning"][1]["type"], "redacted");
        // Messages stored before signatures existed still load.
        let old: Message = serde_json::from_str(
            r#"{"role":"assistant","tool_calls":[{"id":"c","name":"n","arguments":"{}"}]}"#,
        )
        .unwrap();
        assert_eq!(old.tool_calls[0].signature, None);
        assert!(old.reasoning.is_empty());
    }

    #[test]
    fn a_signature_is_only_for_the_model_that_issued_it() {
        let issued = signature("s");
        assert_eq!(issued.value_for(&"gemini-3-pro-preview".into()), Some("s"));
        assert_eq!(issued.value_for(&"gemini-2.5-flash".into()), None);
    }

    #[test]
    fn message_wire_shape_is_compact() {
        let value = serde_json::to_value(Message::tool_result("c1", "ok")).unwrap();
        assert_eq!(
            value,
            json!({"role": "tool", "content": "ok", "tool_call_id": "c1"})
        );
    }

    #[test]
    fn context_and_response_round_trip() {
        round_trip(&Context {
            provider: "openai".into(),
            model: "gpt-4.1".into(),
            messages: vec![Message::user("hi")],
            tools: vec![],
            settings: Some(GenerationSettings {
                temperature: Some(0.5),
                top_p: None,
                max_output_tokens: Some(100),
            }),
        });
        round_trip(&Response {
            message: Message::assistant("hello"),
            finish_reason: Some(FinishReason::Other("pause_turn".into())),
            usage: Some(UsageUpdate::new(3, 4)),
        });
    }

    #[test]
    fn every_stream_item_round_trips() {
        let items = [
            StreamItem::Text("a".into()),
            StreamItem::ReasoningDelta("b".into()),
            StreamItem::ToolCallDelta {
                index: 1,
                id: Some("c".into()),
                name: None,
                arguments_fragment: "{\"".into(),
            },
            StreamItem::ToolCallSignature {
                index: 1,
                signature: signature("sig"),
            },
            StreamItem::ReasoningEnd {
                signature: Some(signature("thought")),
            },
            StreamItem::ReasoningEnd { signature: None },
            StreamItem::RedactedReasoning(signature("sealed")),
            StreamItem::UsageUpdate(UsageUpdate::new(1, 2)),
            StreamItem::FinishReason(FinishReason::ToolCalls),
            StreamItem::FinishReason(FinishReason::Other("pause".into())),
            StreamItem::ConnectionLost("reset".into()),
        ];
        for item in &items {
            round_trip(item);
        }
    }

    #[test]
    fn unknown_role_is_a_clear_error() {
        let err = serde_json::from_str::<Message>(r#"{"role":"robot","content":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `robot`"), "{err}");
    }

    #[test]
    fn usage_accumulates() {
        let mut total = UsageUpdate::new(10, 5);
        total.accumulate(&UsageUpdate {
            reasoning_tokens: Some(7),
            ..UsageUpdate::new(1, 1)
        });
        assert_eq!(total.input_tokens, 11);
        assert_eq!(total.total_tokens, 17);
        assert_eq!(total.reasoning_tokens, Some(7));
        assert_eq!(total.cached_input_tokens, None);
        total.accumulate(&UsageUpdate {
            cached_input_tokens: Some(4),
            cache_write_input_tokens: Some(2),
            ..UsageUpdate::new(8, 0)
        });
        assert_eq!(total.cached_input_tokens, Some(4));
        assert_eq!(total.cache_write_input_tokens, Some(2));
    }
}
