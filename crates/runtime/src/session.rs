//! A session's conversation as the runtime holds it, and its write-through
//! persistence: every message is stored with the next sequence number the
//! moment it exists, so a crash loses nothing already produced.

use std::collections::HashSet;

use serde_json::Value;
use types::{Memory, MemoryError, MemorySummaryState, Message, MessageRole};

use crate::context::StoredMessage;

/// Marks a message whose production was cut short by a cancel.
const CANCELLED_FIELD: &str = "cancelled";
/// Appended to a partial answer so the model knows it was interrupted.
pub const CANCELLED_MARKER: &str = "[cancelled by the user]";

/// One session's history and running totals.
#[derive(Debug, Default)]
pub struct SessionState {
    pub messages: Vec<StoredMessage>,
    /// The sequence number of the next stored message.
    pub next_sequence: i64,
    /// Estimated cost of every provider call in this session (USD).
    pub cost_usd: f64,
    /// The rolling summary of the oldest messages, if any.
    pub summary: Option<MemorySummaryState>,
}

impl SessionState {
    /// Messages not yet covered by the rolling summary.
    pub fn unsummarized(&self) -> &[StoredMessage] {
        let upper = self.summary.as_ref().map_or(0, |s| s.upper_sequence);
        let start = self.messages.partition_point(|m| m.sequence <= upper);
        &self.messages[start..]
    }

    /// Rebuilds a session from its stored events, in sequence order.
    pub async fn restore(memory: &dyn Memory, session_id: &str) -> Result<Self, MemoryError> {
        let records = memory.recall(session_id, None).await?;
        let mut state = Self {
            next_sequence: 1,
            ..Self::default()
        };
        for record in records {
            let message: Message = serde_json::from_value(record.payload.clone()).map_err(|e| {
                MemoryError::Serialization(format!(
                    "event {} of session '{session_id}' is not a message: {e}",
                    record.sequence
                ))
            })?;
            state.next_sequence = record.sequence + 1;
            state
                .messages
                .push(StoredMessage::new(message, record.sequence));
        }
        Ok(state)
    }

    /// Tool calls of the last assistant message that have no result (the
    /// process stopped between the call and its result). Providers reject
    /// such a history, so results saying so must be added.
    pub fn unanswered_calls(&self) -> Vec<String> {
        let Some(position) = self
            .messages
            .iter()
            .rposition(|m| m.message.role == MessageRole::Assistant)
        else {
            return Vec::new();
        };
        let answered: HashSet<&str> = self.messages[position + 1..]
            .iter()
            .filter_map(|m| m.message.tool_call_id.as_deref())
            .collect();
        self.messages[position]
            .message
            .tool_calls
            .iter()
            .filter(|call| !answered.contains(call.id.as_str()))
            .map(|call| call.id.clone())
            .collect()
    }
}

/// The stored form of a message: its JSON, plus `"cancelled": true` when a
/// cancel cut it short.
pub fn payload(message: &Message, cancelled: bool) -> Result<Value, MemoryError> {
    let mut value =
        serde_json::to_value(message).map_err(|e| MemoryError::Serialization(e.to_string()))?;
    if cancelled && let Value::Object(fields) = &mut value {
        fields.insert(CANCELLED_FIELD.to_owned(), Value::Bool(true));
    }
    Ok(value)
}
