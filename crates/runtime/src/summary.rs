//! Rolling summarisation. When enough messages are unsummarised
//! (`min_turns`) and the context would fill more than `trigger_ratio` of the
//! input budget, the oldest whole units are condensed until the projected
//! use is at most `target_ratio`. The model writes the condensation; if it
//! cannot, a deterministic bulleted list stands in. The new summary is
//! stored with a compare-and-swap on its epoch: a writer that lost the race
//! discards its result and takes the stored one.
//!
//! The summary itself is bounded: past `max_summary_ratio` of the input
//! budget it is condensed again (by the model, else by keeping its newest
//! lines), so it never crowds out the live history. Every summarisation
//! request's usage is returned to the turn, which counts it like any other
//! model call.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use types::{
    Context, MemorySummaryState, Message, MessageRole, SessionId, SummaryWriteOutcome, UsageUpdate,
};

use crate::agent::AgentRuntime;
use crate::context::{StoredMessage, count_tokens, history_token_bound, input_budget, units};
use crate::session::SessionState;

/// The instruction for a condensation request.
const CONDENSE_PROMPT: &str = "Condense the conversation excerpt below into a short bulleted summary. \
Keep facts, decisions, names, file paths, numbers and open tasks; drop pleasantries. \
Reply with the bullet lines only.";
/// The instruction for condensing a summary that outgrew its budget.
const RECONDENSE_PROMPT: &str = "The rolling conversation summary below has grown too long. \
Rewrite it as a shorter bulleted summary: merge related points, keep facts, decisions, names, \
file paths, numbers and open tasks, and drop what later points superseded. Reply with the bullet lines only.";
/// How much of each message the fallback summary keeps.
const FALLBACK_CHARS: usize = 160;

impl AgentRuntime {
    /// Condenses the oldest history when the trigger conditions hold, and
    /// the summary itself when it outgrows its budget. Returns the usage of
    /// the summarisation requests, which counts toward the turn like any
    /// other model call. Never fails the turn: problems are logged and the
    /// turn goes on.
    pub(crate) async fn maybe_summarize(
        &self,
        state: &mut SessionState,
        session_id: &SessionId,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Option<UsageUpdate> {
        let cut = self.condensation_cut(state)?;
        let slice: Vec<StoredMessage> = state.unsummarized()[..cut].to_vec();
        let upper_sequence = slice.last()?.sequence;
        let mut used = None;
        let condensed = self
            .ask_model(
                CONDENSE_PROMPT,
                transcript(&slice),
                deadline,
                cancel,
                &mut used,
            )
            .await
            .unwrap_or_else(|| fallback_summary(&slice));
        let expected_epoch = state.summary.as_ref().map_or(0, |s| s.epoch);
        let mut summary_text = match &state.summary {
            Some(previous) => format!("{}\n{condensed}", previous.summary_text),
            None => condensed,
        };
        let budget = self.summary_budget();
        if count_tokens(&summary_text) > budget {
            summary_text = self
                .recondense(summary_text, budget, deadline, cancel, &mut used)
                .await;
        }
        let proposed = MemorySummaryState {
            summary_text,
            upper_sequence,
            epoch: expected_epoch + 1,
        };
        self.store_summary(state, session_id, proposed, expected_epoch)
            .await;
        used
    }

    /// Stores the new summary with a compare-and-swap on its epoch.
    async fn store_summary(
        &self,
        state: &mut SessionState,
        session_id: &SessionId,
        proposed: MemorySummaryState,
        expected_epoch: u64,
    ) {
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
                tracing::info!(
                    upper_sequence = proposed.upper_sequence,
                    epoch = new_epoch,
                    "rolling summary updated"
                );
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

    /// The most tokens the rolling summary may take:
    /// `max_summary_ratio` of the input budget.
    pub(crate) fn summary_budget(&self) -> usize {
        let ratio = self
            .parts
            .limits
            .summarization
            .max_summary_ratio
            .clamp(0.01, 0.5);
        let budget = input_budget(&self.parts.model, &self.parts.limits) as f64;
        ((budget * ratio) as usize).max(1)
    }

    /// A summary that outgrew `budget` tokens, condensed again by the
    /// model; if its answer does not fit either, the newest lines that do.
    async fn recondense(
        &self,
        summary: String,
        budget: usize,
        deadline: Instant,
        cancel: &CancellationToken,
        used: &mut Option<UsageUpdate>,
    ) -> String {
        let instruction = format!(
            "{RECONDENSE_PROMPT} Stay under {} words.",
            // About three words per four tokens, with room to spare.
            budget / 2
        );
        match self
            .ask_model(&instruction, summary.clone(), deadline, cancel, used)
            .await
        {
            Some(shorter) if count_tokens(&shorter) <= budget => shorter,
            Some(_) | None => {
                tracing::info!(
                    budget,
                    "the condensed summary is still too long; keeping its newest lines"
                );
                newest_lines_within(&summary, budget)
            }
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
        let summary = state.summary.as_ref().map(|s| s.summary_text.as_str());
        // Below the trigger even by the upper bounds: nothing is counted.
        let bound =
            self.fixed_token_bound() + summary.map_or(0, str::len) + history_token_bound(history);
        if (bound as f64) / budget <= config.trigger_ratio {
            return None;
        }
        let fixed = self.fixed_tokens() + summary.map_or(0, count_tokens);
        let total: usize = fixed + history.iter().map(StoredMessage::tokens).sum::<usize>();
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
                .map(|m| m.tokens() as f64)
                .sum::<f64>();
            cut = Some(unit.end);
            if remaining <= target {
                break;
            }
        }
        cut
    }

    /// One summarisation request: `instruction` as the system message,
    /// `text` as the user's. `None` when the model could not answer in
    /// time (the callers fall back to deterministic text); its usage is
    /// added to `used` either way.
    async fn ask_model(
        &self,
        instruction: &str,
        text: String,
        deadline: Instant,
        cancel: &CancellationToken,
        used: &mut Option<UsageUpdate>,
    ) -> Option<String> {
        let context = Context {
            provider: self.parts.provider_id.clone(),
            model: self.parts.model.id.clone(),
            messages: vec![Message::system(instruction), Message::user(text)],
            tools: Vec::new(),
            settings: None,
        };
        let response = tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep_until(deadline) => return None,
            answer = self.parts.provider.complete(&context) => match answer {
                Ok(response) => response,
                Err(error) => {
                    tracing::warn!(%error, "summarisation request failed; using the fallback summary");
                    return None;
                }
            },
        };
        if let Some(usage) = &response.usage {
            used.get_or_insert_with(UsageUpdate::default)
                .accumulate(usage);
        }
        response.message.content.filter(|t| !t.trim().is_empty())
    }
}

/// The messages of `slice` as one line each, for a condensation request.
fn transcript(slice: &[StoredMessage]) -> String {
    slice
        .iter()
        .map(|m| {
            format!(
                "{}: {}\n",
                role_name(m.message.role),
                describe(&m.message, usize::MAX)
            )
        })
        .collect()
}

/// The newest lines of `text` that fit in `budget` tokens (the newest line
/// cut to fit when even it does not), so a summary's size is bounded
/// whatever the model answers.
pub(crate) fn newest_lines_within(text: &str, budget: usize) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in text.lines().rev() {
        // +1 for the line break between kept lines.
        let tokens = count_tokens(line) + 1;
        if used + tokens > budget {
            break;
        }
        used += tokens;
        kept.push(line);
    }
    if kept.is_empty() {
        let newest = text.lines().last().unwrap_or_default();
        let mut chars = budget;
        loop {
            let cut: String = newest.chars().take(chars).collect();
            if chars == 0 || count_tokens(&cut) <= budget {
                return cut;
            }
            chars /= 2;
        }
    }
    kept.reverse();
    kept.join("\n")
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
    fn a_summary_cut_to_its_budget_keeps_its_newest_lines() {
        let text: String = (1..=100)
            .map(|n| format!("- point number {n} about the project"))
            .collect::<Vec<_>>()
            .join("\n");
        let cut = newest_lines_within(&text, 50);
        assert!(count_tokens(&cut) <= 50, "{cut}");
        assert!(cut.ends_with("- point number 100 about the project"));
        assert!(!cut.contains("point number 1 about"));
        // One line longer than the budget is cut, still within it.
        let line = "word ".repeat(500);
        let cut = newest_lines_within(&line, 20);
        assert!(!cut.is_empty() && count_tokens(&cut) <= 20, "{cut}");
    }

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
