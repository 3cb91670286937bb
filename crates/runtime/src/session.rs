//! A session's conversation as the runtime holds it, and its write-through
//! persistence: every message is stored with the next sequence number the
//! moment it exists, so a crash loses nothing already produced.
//!
//! What the model calls used and cost travels with the stored messages:
//! the usage accounted since the previous stored message (a provider call,
//! a summarisation request) is recorded on the next one, in the same
//! write. A restored session sums it, so its totals — and the cost budget
//! they feed — survive a restart.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use types::{Memory, MemoryError, MemorySummaryState, Message, MessageRole, UsageUpdate};

use crate::context::StoredMessage;

/// Marks a message whose production was cut short by a cancel.
const CANCELLED_FIELD: &str = "cancelled";
/// Holds the usage recorded with a stored message.
const USAGE_FIELD: &str = "usage";

/// Tokens and estimated cost of one or more model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    #[serde(flatten)]
    pub usage: UsageUpdate,
    /// Catalog list prices × tokens, USD.
    pub cost_usd: f64,
}

impl UsageTotals {
    pub fn add(&mut self, usage: &UsageUpdate, cost_usd: f64) {
        self.usage.accumulate(usage);
        self.cost_usd += cost_usd;
    }

    fn merge(&mut self, other: &UsageTotals) {
        self.add(&other.usage, other.cost_usd);
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
/// Appended to a partial answer so the model knows it was interrupted.
pub const CANCELLED_MARKER: &str = "[cancelled by the user]";

/// One session's history and running totals.
#[derive(Debug, Default)]
pub struct SessionState {
    pub messages: Vec<StoredMessage>,
    /// The sequence number of the next stored message.
    pub next_sequence: i64,
    /// Every model call of this session, summarisation included.
    pub totals: UsageTotals,
    /// Accounted but not yet stored: recorded on the next stored message.
    pub unrecorded: UsageTotals,
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
            if let Some(usage) = record.payload.get(USAGE_FIELD) {
                match UsageTotals::deserialize(usage) {
                    Ok(usage) => state.totals.merge(&usage),
                    Err(error) => tracing::warn!(
                        session_id,
                        sequence = record.sequence,
                        %error,
                        "ignoring unreadable usage of a stored message"
                    ),
                }
            }
            state.next_sequence = record.sequence + 1;
            state
                .messages
                .push(StoredMessage::new(message, record.sequence));
        }
        Ok(state)
    }

    /// Accounts one model call (or summarisation request).
    pub fn account(&mut self, usage: &UsageUpdate, cost_usd: f64) {
        self.totals.add(usage, cost_usd);
        self.unrecorded.add(usage, cost_usd);
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
/// cancel cut it short and `"usage"` when model calls were accounted since
/// the previous stored message.
pub fn payload(
    message: &Message,
    cancelled: bool,
    usage: &UsageTotals,
) -> Result<Value, MemoryError> {
    let serialization = |e: serde_json::Error| MemoryError::Serialization(e.to_string());
    let mut value = serde_json::to_value(message).map_err(serialization)?;
    if let Value::Object(fields) = &mut value {
        if cancelled {
            fields.insert(CANCELLED_FIELD.to_owned(), Value::Bool(true));
        }
        if !usage.is_empty() {
            fields.insert(
                USAGE_FIELD.to_owned(),
                serde_json::to_value(usage).map_err(serialization)?,
            );
        }
    }
    Ok(value)
}
