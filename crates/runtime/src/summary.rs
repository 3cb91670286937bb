//! Rolling summarisation. When enough messages are unsummarised
//! (`min_turns`) and the context would fill more than `trigger_ratio` of the
//! input budget, the oldest whole units are condensed until the projected
//! use is at most `target_ratio`. The model writes the condensation; if it
//! cannot, a deterministic bulleted list stands in. The new summary is
//! stored with a compare-and-swap on its epoch: a writer that lost the race
//! discards its result and takes the stored one.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use types::{Context, MemorySummaryState, Message, MessageRole, SessionId, SummaryWriteOutcome};

use crate::agent::AgentRuntime;
use crate::context::{StoredMessage, count_tokens, input_budget, units};
use crate::session::SessionState;

/// The instruction for a condensation request.
const CONDENSE_PROMPT: &str = "Condense the conversation excerpt below into a short bulleted summary. \
Keep facts, decisions, names, file paths, numbers and open tasks; drop pleasantries. \
Reply with the bullet lines only.";
/// How much of each message the fallback summary keeps.
const FALLBACK_CHARS: usize = 160;

impl AgentRuntime {
    /// Condenses the oldest history when the trigger conditions hold.
    /// Never fails the turn: problems are logged and the turn goes on.
    pub(crate) async fn maybe_summarize(
        &self,
        state: &mut SessionState,
        session_id: &SessionId,
        cancel: &CancellationToken,
    ) {
        let Some(cut) = self.condensation_cut(state) else {
            return;
        };
        let slice: Vec<StoredMessage> = state.unsummarized()[..cut].to_vec();
        let Some(upper_sequence) = slice.last().map(|m| m.sequence) else {
            return;
        };
        let condensed = self.condense(&slice, cancel).await;
        let expected_epoch = state.summary.as_ref().map_or(0, |s| s.epoch);
        let summary_text = match &state.summary {
            Some(previous) => format!("{}\n{condensed}", previous.summary_text),
            None => condensed,
        };
        let proposed = MemorySummaryState {
            summary_text,
            upper_sequence,
            epoch: expected_epoch + 1,
        };
        let retrieval = self.memory.as_ref().and_then(|m| m.retrieval.as_ref());
        let Some(retrieval) = retrieval else {
            state.summary = Some(proposed);
            return;
        };
        match retrieval
            .write_summary_state(session_id.as_str(), &proposed, expected_epoch)
            .await
        {
            Ok(SummaryWriteOutcome::Applied { new_epoch }) => {
                tracing::info!(upper_sequence, epoch = new_epoch, "rolling summary updated");
                state.summary = Some(MemorySummaryState {
                    epoch: new_epoch,
                    ..proposed
                });
            }
            Ok(SummaryWriteOutcome::Stale { current_epoch }) => {
                tracing::info!(
                    current_epoch,
                    "another writer updated the summary first; using theirs"
                );
                match retrieval.read_summary_state(session_id.as_str()).await {
                    Ok(stored) => state.summary = stored,
                    Err(error) => tracing::warn!(%error, "could not re-read the summary"),
                }
            }
            Err(error) => tracing::warn!(%error, "could not store the rolling summary"),
        }
    }

    /// How many of the oldest unsummarised messages to condense, if the
    /// trigger holds: whole units, never the newest one (the prompt).
    fn condensation_cut(&self, state: &SessionState) -> Option<usize> {
        let config = &self.parts.limits.summarization;
        let history = state.unsummarized();
        if history.len() < config.min_turns as usize {
            return None;
        }
        let budget = input_budget(&self.parts.model, &self.parts.limits).max(1) as f64;
        let fixed = count_tokens(&self.parts.system_prompt)
            + state
                .summary
                .as_ref()
                .map_or(0, |s| count_tokens(&s.summary_text))
            + self.declarations_tokens();
        let total: usize = fixed + history.iter().map(|m| m.tokens).sum::<usize>();
        if (total as f64) / budget <= config.trigger_ratio {
            return None;
        }
        let target = config.target_ratio * budget;
        let units = units(history);
        let mut remaining = total as f64;
        let mut cut = None;
        for unit in units.iter().take(units.len().saturating_sub(1)) {
            remaining -= history[unit.clone()]
                .iter()
                .map(|m| m.tokens as f64)
                .sum::<f64>();
            cut = Some(unit.end);
            if remaining <= target {
                break;
            }
        }
        cut
    }

    /// The model's condensation of `slice`, or the fallback list.
    async fn condense(&self, slice: &[StoredMessage], cancel: &CancellationToken) -> String {
        let transcript: String = slice
            .iter()
            .map(|m| {
                format!(
                    "{}: {}\n",
                    role_name(m.message.role),
                    describe(&m.message, usize::MAX)
                )
            })
            .collect();
        let context = Context {
            provider: self.parts.provider_id.clone(),
            model: self.parts.model.id.clone(),
            messages: vec![Message::system(CONDENSE_PROMPT), Message::user(transcript)],
            tools: Vec::new(),
            settings: None,
        };
        let deadline = Instant::now() + self.parts.limits.turn_timeout;
        let answer = tokio::select! {
            _ = cancel.cancelled() => None,
            _ = tokio::time::sleep_until(deadline) => None,
            answer = self.parts.provider.complete(&context) => match answer {
                Ok(response) => response.message.content.filter(|t| !t.trim().is_empty()),
                Err(error) => {
                    tracing::warn!(%error, "summarisation request failed; using the fallback summary");
                    None
                }
            },
        };
        answer.unwrap_or_else(|| fallback_summary(slice))
    }
}

fn role_name(role: MessageRole) -> &'static str {
    match role {
        MessageRole::System => "system",
        MessageRole::User => "user",
        MessageRole::Assistant => "assistant",
        MessageRole::Tool => "tool",
    }
}

/// A message as one line of text: its content, or the tools it called.
fn describe(message: &Message, max_chars: usize) -> String {
    let mut text = message.content.clone().unwrap_or_default();
    for call in &message.tool_calls {
        text.push_str(&format!(" [called {}({})]", call.name, call.arguments));
    }
    let text = text.trim().replace('\n', " ");
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// One bullet per condensed message, deterministic.
pub(crate) fn fallback_summary(slice: &[StoredMessage]) -> String {
    slice
        .iter()
        .map(|m| {
            format!(
                "- {}: {}",
                role_name(m.message.role),
                describe(&m.message, FALLBACK_CHARS)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::ToolCall;

    #[test]
    fn fallback_lists_each_message_briefly() {
        let slice = vec![
            StoredMessage::new(Message::user(format!("please {}", "x".repeat(300))), 1),
            StoredMessage::new(
                Message::assistant_tool_calls(
                    None,
                    vec![ToolCall {
                        id: "c".into(),
                        name: "file_read".into(),
                        arguments: "{\"path\":\"/shared/a\"}".into(),
                        signature: None,
                    }],
                ),
                2,
            ),
            StoredMessage::new(Message::tool_result("c", "alpha\nbeta"), 3),
        ];
        let summary = fallback_summary(&slice);
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("- user: please xxx") && lines[0].ends_with('…'));
        assert_eq!(
            lines[1],
            "- assistant: [called file_read({\"path\":\"/shared/a\"})]"
        );
        assert_eq!(lines[2], "- tool: alpha beta");
    }
}
