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

/// One tool invocation requested by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The raw JSON text the model produced. It may be malformed; it is
    /// validated against the tool's schema only when the call is executed.
    pub arguments: String,
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
}

impl Message {
    fn text(role: MessageRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
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
        }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id.into()),
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

/// Token usage of one provider call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageUpdate {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
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
    UsageUpdate(UsageUpdate),
    FinishReason(FinishReason),
    /// The stream ended before its terminal event; the text explains how.
    ConnectionLost(String),
}

impl StreamItem {
    /// Whether this item is part of the answer itself (text, reasoning or a
    /// tool call), as opposed to bookkeeping about the stream.
    pub fn is_content(&self) -> bool {
        match self {
            Self::Text(_) | Self::ReasoningDelta(_) | Self::ToolCallDelta { .. } => true,
            Self::UsageUpdate(_) | Self::FinishReason(_) | Self::ConnectionLost(_) => false,
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
            vec![ToolCall {
                id: "call_1".into(),
                name: "file_read".into(),
                arguments: "{\"path\": \"/shared/a\"".into(),
            }],
        ));
        round_trip(&Message::tool_result("call_1", "contents"));
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
    }
}
