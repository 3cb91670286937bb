//! The context window: token counting and history selection.
//!
//! Token counts use tiktoken's `cl100k_base` (an estimate for non-OpenAI
//! models, hence the safety margin). A cl100k token is at least one byte,
//! so a text's length in bytes bounds its token count from above: while
//! the bounds fit the budget, nothing is counted and the tokenizer's tables
//! (~27 MiB, ~50 ms to load) are never loaded — most conversations stay
//! far below a model's window. A message is counted at most once; its
//! count is cached.
//!
//! History is cut into units that are sent whole or not at all: an
//! assistant message that calls tools together with all its results, or a
//! single other message. Units are taken newest first until the budget is
//! used, so a tool result is never sent without its call and a call never
//! without its results.

use std::ops::Range;
use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;
use types::{FunctionDecl, Message, MessageRole, ModelDescriptor};

use crate::limits::RuntimeLimits;

/// Per-message overhead of the chat format (role, separators).
const MESSAGE_OVERHEAD_TOKENS: usize = 4;
/// The most of the window kept for the answer.
const MAX_OUTPUT_RESERVE_SHARE: f64 = 0.25;

fn bpe() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| match tiktoken_rs::cl100k_base() {
        Ok(bpe) => Some(bpe),
        Err(error) => {
            tracing::warn!(%error, "cl100k_base unavailable; estimating tokens from length");
            None
        }
    })
    .as_ref()
}

/// Tokens of `text`; falls back to ~4 characters per token.
pub fn count_tokens(text: &str) -> usize {
    match bpe() {
        Some(bpe) => bpe.encode_ordinary(text).len(),
        None => text.chars().count().div_ceil(4),
    }
}

/// At least `message_tokens(message)`, without the tokenizer: every
/// token is at least one byte.
pub fn message_token_bound(message: &Message) -> usize {
    let mut bound = MESSAGE_OVERHEAD_TOKENS + message.content.as_ref().map_or(0, String::len);
    for call in &message.tool_calls {
        bound += call.name.len() + call.arguments.len() + MESSAGE_OVERHEAD_TOKENS;
    }
    bound
}

/// Tokens of one message, tool calls included.
pub fn message_tokens(message: &Message) -> usize {
    let mut tokens = MESSAGE_OVERHEAD_TOKENS;
    if let Some(content) = &message.content {
        tokens += count_tokens(content);
    }
    for call in &message.tool_calls {
        tokens +=
            count_tokens(&call.name) + count_tokens(&call.arguments) + MESSAGE_OVERHEAD_TOKENS;
    }
    tokens
}

/// At least `declarations_tokens(decls)`: their JSON's length.
pub fn declarations_token_bound(decls: &[FunctionDecl]) -> usize {
    decls
        .iter()
        .map(|decl| serde_json::to_string(decl).map_or(0, |json| json.len()))
        .sum()
}

/// Tokens of the tool declarations sent with every request.
pub fn declarations_tokens(decls: &[FunctionDecl]) -> usize {
    decls
        .iter()
        .map(|decl| serde_json::to_string(decl).map_or(0, |json| count_tokens(&json)))
        .sum()
}

/// A message of the session with its sequence number and size.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub message: Message,
    pub sequence: i64,
    /// `message_token_bound`.
    token_bound: usize,
    /// Counted on first need.
    tokens: OnceLock<usize>,
}

impl StoredMessage {
    pub fn new(message: Message, sequence: i64) -> Self {
        Self {
            token_bound: message_token_bound(&message),
            message,
            sequence,
            tokens: OnceLock::new(),
        }
    }

    /// At least `tokens()`, known without the tokenizer.
    pub fn token_bound(&self) -> usize {
        self.token_bound
    }

    /// The message's tokens (counted once).
    pub fn tokens(&self) -> usize {
        *self.tokens.get_or_init(|| message_tokens(&self.message))
    }
}

/// The sum of `history`'s token bounds.
pub fn history_token_bound(history: &[StoredMessage]) -> usize {
    history.iter().map(StoredMessage::token_bound).sum()
}

/// How many input tokens a request may use: the window, minus the room
/// kept for the answer, minus the safety margin.
pub fn input_budget(model: &ModelDescriptor, limits: &RuntimeLimits) -> usize {
    let window = model.max_input_tokens as f64;
    let reserve = (model.max_output_tokens as f64).min(window * MAX_OUTPUT_RESERVE_SHARE);
    let budget = window * (1.0 - limits.context_safety_margin) - reserve;
    budget.max(0.0) as usize
}

/// The unit boundaries of `history`: each range is sent whole or not at
/// all. Tool results that follow no tool call (left behind by an older
/// cut) are dropped — providers reject orphan results.
pub fn units(history: &[StoredMessage]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut open_call_unit = false;
    for (i, stored) in history.iter().enumerate() {
        match stored.message.role {
            MessageRole::Tool if open_call_unit => {
                if let Some(last) = out.last_mut() {
                    last.end = i + 1;
                }
            }
            MessageRole::Tool => {}
            MessageRole::Assistant if !stored.message.tool_calls.is_empty() => {
                out.push(i..i + 1);
                open_call_unit = true;
            }
            MessageRole::System | MessageRole::User | MessageRole::Assistant => {
                out.push(i..i + 1);
                open_call_unit = false;
            }
        }
    }
    out
}

/// The newest whole units of `history` that fit in `available` tokens.
/// The newest unit is always included (it holds the current prompt).
pub fn select_history(history: &[StoredMessage], available: usize) -> Vec<&StoredMessage> {
    let units = units(history);
    // Everything fits even by the upper bounds: nothing to count.
    let counted = history_token_bound(history) > available;
    let mut used = 0;
    let mut chosen: Vec<&Range<usize>> = Vec::new();
    for unit in units.iter().rev() {
        let size: usize = match counted {
            true => history[unit.clone()]
                .iter()
                .map(StoredMessage::tokens)
                .sum(),
            false => 0,
        };
        if !chosen.is_empty() && used + size > available {
            break;
        }
        used += size;
        chosen.push(unit);
    }
    chosen
        .into_iter()
        .rev()
        .flat_map(|unit| history[unit.clone()].iter())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::ToolCall;

    fn stored(messages: Vec<Message>) -> Vec<StoredMessage> {
        messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| StoredMessage::new(m, i as i64 + 1))
            .collect()
    }

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "file_read".into(),
            arguments: "{}".into(),
            signature: None,
        }
    }

    fn roles(selected: &[&StoredMessage]) -> Vec<i64> {
        selected.iter().map(|m| m.sequence).collect()
    }

    #[test]
    fn counts_tokens_with_cl100k() {
        assert_eq!(count_tokens("hello world"), 2);
        assert!(message_tokens(&Message::user("hello world")) > 2);
    }

    #[test]
    fn the_byte_bound_is_never_below_the_count() {
        let messages = [
            Message::user("hello world"),
            Message::user("ünïcødé — 日本語のテキスト 🎉🎉"),
            Message::user("   \n\n\t  "),
            Message::user(""),
            Message::assistant_tool_calls(Some("calling".into()), vec![call("1"), call("2")]),
            Message::tool_result("1", "{\"entries\": [\"a.txt\", \"b.txt\"]}"),
        ];
        for message in &messages {
            assert!(
                message_token_bound(message) >= message_tokens(message),
                "{message:?}"
            );
        }
        let decls = [FunctionDecl {
            name: "file_read".into(),
            description: "Reads a file".into(),
            parameters: types::schema::JsonSchema::object(
                [("path".to_owned(), types::schema::JsonSchema::string())].into(),
                vec!["path".to_owned()],
            ),
        }];
        assert!(declarations_token_bound(&decls) >= declarations_tokens(&decls));
    }

    #[test]
    fn history_within_the_bound_is_selected_without_counting() {
        let history = stored(vec![
            Message::user("read a and b"),
            Message::assistant_tool_calls(None, vec![call("1")]),
            Message::tool_result("1", "a"),
            Message::assistant("done"),
        ]);
        let bound = history_token_bound(&history);
        assert_eq!(select_history(&history, bound).len(), 4);
        assert!(history.iter().all(|m| m.tokens.get().is_none()));
        // Tighter than the bound: the units are counted, once.
        assert_eq!(select_history(&history, bound - 1).len(), 4);
        assert!(history.iter().all(|m| m.tokens.get().is_some()));
    }

    #[test]
    fn units_keep_calls_with_their_results_and_drop_orphans() {
        let history = stored(vec![
            Message::tool_result("lost", "orphan from an older cut"),
            Message::user("read a and b"),
            Message::assistant_tool_calls(None, vec![call("1"), call("2")]),
            Message::tool_result("1", "a"),
            Message::tool_result("2", "b"),
            Message::assistant("done"),
        ]);
        assert_eq!(units(&history), vec![1..2, 2..5, 5..6]);
    }

    #[test]
    fn selection_takes_newest_whole_units() {
        let history = stored(vec![
            Message::user("old ".repeat(200)),
            Message::user("read a and b"),
            Message::assistant_tool_calls(None, vec![call("1"), call("2")]),
            Message::tool_result("1", "a ".repeat(50)),
            Message::tool_result("2", "b"),
            Message::user("thanks"),
        ]);
        let sizes: Vec<usize> = history.iter().map(StoredMessage::tokens).collect();
        let tail: usize = sizes[1..].iter().sum();
        // Everything but the big old message fits.
        assert_eq!(roles(&select_history(&history, tail)), [2, 3, 4, 5, 6]);
        // One token less: the older user message drops, the call unit stays whole.
        assert_eq!(roles(&select_history(&history, tail - 1)), [3, 4, 5, 6]);
        // Too little for the call unit: it cannot be split, so it goes whole.
        let call_unit_and_last: usize = sizes[2..].iter().sum();
        assert_eq!(
            roles(&select_history(&history, call_unit_and_last - 1)),
            [6]
        );
        // The newest unit is always sent, even over budget.
        assert_eq!(roles(&select_history(&history, 0)), [6]);
    }

    #[test]
    fn budget_keeps_room_for_the_answer_and_a_margin() {
        let model = types::ModelCatalog::pinned()
            .get(types::ProviderType::Anthropic, "claude-sonnet-4-5-20250929")
            .unwrap();
        let limits = RuntimeLimits::default();
        // 200k window − 10 % margin − 50k (25 % cap on the 64k output reserve).
        assert_eq!(input_budget(model, &limits), 130_000);
    }
}
