//! `AgentRuntime::run_session`: one user turn, exactly as spec 04 says.
//!
//! Persist the user message first; then, up to `max_turns` times: maybe
//! summarise, prepare the context, call the provider (streaming), account
//! the cost, persist the answer, and either finish (no tool calls) or run
//! the tools, persist their results and go round again. Cancellation is
//! checked at every await; what was produced is always kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sandbox::scrub::Scrubber;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tools::ToolRegistry;
use tracing::Instrument;
use types::error::BudgetKind;
use types::{
    Context, FunctionDecl, Memory, MemoryError, MemoryRetrieval, Message, ModelDescriptor,
    Provider, ProviderId, RuntimeError, SessionId, ToolContext, UsageUpdate,
};

use crate::call::{CallFailure, call_provider};
use crate::context::{
    StoredMessage, declarations_token_bound, declarations_tokens, history_token_bound,
    input_budget, message_token_bound, message_tokens, select_history,
};
use crate::dispatch::{Dispatched, Dispatcher, ToolOutcome};
use crate::events::{EventSink, RuntimeEvent, TurnState, emit};
use crate::limits::RuntimeLimits;
use crate::session::{CANCELLED_MARKER, SessionState, UsageTotals, payload};

/// Tool results written for calls a cancel or crash left unanswered.
const UNANSWERED_RESULT: &str =
    "Tool execution failed: the call was interrupted before it finished";

/// How a turn ended well.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The model's final answer.
    pub final_message: Message,
    /// Usage summed over the turn's provider calls.
    pub usage: UsageUpdate,
    /// Estimated cost of the turn (catalog list prices), USD.
    pub cost_usd: f64,
    /// Provider calls the turn made.
    pub provider_calls: u32,
}

/// The parts every runtime needs.
#[derive(Clone)]
pub struct RuntimeParts {
    /// Already wrapped in `ReliableProvider` by the caller.
    pub provider: Arc<dyn Provider>,
    pub provider_id: ProviderId,
    /// The selected model (limits and prices).
    pub model: ModelDescriptor,
    pub tools: Arc<ToolRegistry>,
    pub scrubber: Arc<Scrubber>,
    pub limits: RuntimeLimits,
    pub system_prompt: String,
}

impl std::fmt::Debug for RuntimeParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeParts")
            .field("provider", self.provider.provider_id())
            .field("model", &self.model.id)
            .field("tools", &self.tools)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Optional persistence and retrieval.
#[derive(Clone)]
pub struct MemoryParts {
    pub memory: Arc<dyn Memory>,
    pub retrieval: Option<Arc<dyn MemoryRetrieval>>,
    /// Snippets injected per provider call.
    pub max_results: usize,
}

impl std::fmt::Debug for MemoryParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryParts")
            .field("retrieval", &self.retrieval.is_some())
            .field("max_results", &self.max_results)
            .finish()
    }
}

type SharedSession = Arc<tokio::sync::Mutex<SessionState>>;

/// The agent turn loop for every session of one agent.
#[derive(Debug)]
pub struct AgentRuntime {
    pub(crate) parts: RuntimeParts,
    pub(crate) memory: Option<MemoryParts>,
    /// Tool declarations, computed once.
    pub(crate) declarations: Vec<FunctionDecl>,
    /// What the system prompt and the declarations take in every request.
    /// Counted on first need: counting loads the tokenizer tables (tens of
    /// MiB, tens of ms), which most conversations never need (see
    /// `context`).
    fixed_tokens: OnceLock<usize>,
    /// At least `fixed_tokens`, from their lengths.
    fixed_token_bound: OnceLock<usize>,
    sessions: Mutex<HashMap<SessionId, SharedSession>>,
}

impl AgentRuntime {
    pub fn new(parts: RuntimeParts) -> Self {
        let declarations = if parts.model.supports_tools {
            parts.tools.declarations()
        } else {
            Vec::new()
        };
        Self {
            fixed_tokens: OnceLock::new(),
            fixed_token_bound: OnceLock::new(),
            declarations,
            parts,
            memory: None,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Tokens every request spends before its history: the system prompt
    /// (as a message) and the tool declarations.
    pub(crate) fn fixed_tokens(&self) -> usize {
        *self.fixed_tokens.get_or_init(|| {
            message_tokens(&Message::system(self.parts.system_prompt.clone()))
                + declarations_tokens(&self.declarations)
        })
    }

    /// At least `fixed_tokens()`, without the tokenizer.
    pub(crate) fn fixed_token_bound(&self) -> usize {
        *self.fixed_token_bound.get_or_init(|| {
            message_token_bound(&Message::system(self.parts.system_prompt.clone()))
                + declarations_token_bound(&self.declarations)
        })
    }

    pub fn with_memory(mut self, memory: MemoryParts) -> Self {
        self.memory = Some(memory);
        self
    }

    /// The session's state, restored from memory on first use.
    async fn session(&self, session_id: &SessionId) -> Result<SharedSession, RuntimeError> {
        let existing = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session_id)
            .cloned();
        if let Some(session) = existing {
            return Ok(session);
        }
        let mut state = match &self.memory {
            Some(parts) => {
                SessionState::restore(parts.memory.as_ref(), session_id.as_str()).await?
            }
            None => SessionState {
                next_sequence: 1,
                ..SessionState::default()
            },
        };
        if let Some(retrieval) = self.memory.as_ref().and_then(|m| m.retrieval.as_ref()) {
            state.summary = retrieval.read_summary_state(session_id.as_str()).await?;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // Another turn may have restored it meanwhile; keep the first.
        Ok(sessions
            .entry(session_id.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(state)))
            .clone())
    }

    /// Rebuilds a session from its stored events (dropping any cached
    /// state) and returns how many messages it holds.
    pub async fn restore_session(&self, session_id: &SessionId) -> Result<usize, RuntimeError> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session_id);
        let session = self.session(session_id).await?;
        let state = session.lock().await;
        Ok(state.messages.len())
    }

    /// Drops the cached state of a session nobody is using (the gateway
    /// unloaded it), so memory stays bounded over thousands of sessions; the
    /// next turn restores it from storage. Without storage the cache is the
    /// only copy of the conversation and is kept: `false` then, when the
    /// session was not cached, or while a turn still uses it.
    pub fn release_session(&self, session_id: &SessionId) -> bool {
        if self.memory.is_none() {
            return false;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // Only a state nobody holds: a turn still running keeps its own
        // reference, and a second restored copy beside it would write the
        // same sequence numbers. Turns take their reference under this lock.
        let idle = sessions
            .get(session_id)
            .is_some_and(|state| Arc::strong_count(state) == 1);
        idle && sessions.remove(session_id).is_some()
    }

    /// How many sessions are cached.
    pub fn cached_sessions(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Everything the session's model calls used and cost so far (restored
    /// from storage after a restart).
    pub async fn session_totals(
        &self,
        session_id: &SessionId,
    ) -> Result<UsageTotals, RuntimeError> {
        let session = self.session(session_id).await?;
        let state = session.lock().await;
        Ok(state.totals)
    }

    /// Stores `message` (write-through), with the usage accounted since the
    /// previous stored message, and appends it to the session.
    async fn append(
        &self,
        state: &mut SessionState,
        session_id: &SessionId,
        message: Message,
        cancelled: bool,
    ) -> Result<(), MemoryError> {
        let sequence = state.next_sequence;
        if let Some(parts) = &self.memory {
            parts
                .memory
                .store(
                    session_id.as_str(),
                    sequence,
                    payload(&message, cancelled, &state.unrecorded)?,
                )
                .await?;
        }
        state.unrecorded = UsageTotals::default();
        state.next_sequence += 1;
        state.messages.push(StoredMessage::new(message, sequence));
        Ok(())
    }

    /// Keeps a partial answer (cut by a cancel, timeout or broken stream).
    async fn keep_partial(
        &self,
        state: &mut SessionState,
        session_id: &SessionId,
        partial: String,
        cancelled: bool,
    ) -> Result<(), MemoryError> {
        if partial.is_empty() {
            return Ok(());
        }
        let text = if cancelled {
            format!("{partial}\n{CANCELLED_MARKER}")
        } else {
            partial
        };
        self.append(state, session_id, Message::assistant(text), cancelled)
            .await
    }

    /// Answers tool calls left without results, so the history stays
    /// valid for every provider.
    async fn answer_unanswered(
        &self,
        state: &mut SessionState,
        session_id: &SessionId,
        cancelled: bool,
    ) -> Result<(), MemoryError> {
        for call_id in state.unanswered_calls() {
            self.append(
                state,
                session_id,
                Message::tool_result(call_id, UNANSWERED_RESULT),
                cancelled,
            )
            .await?;
        }
        Ok(())
    }

    /// Runs one user turn of `session_id`. Events stream to `events`; the
    /// answer, or why there is none, is returned.
    pub async fn run_session(
        &self,
        session_id: &SessionId,
        user_message: &str,
        cancel: &CancellationToken,
        events: &EventSink,
    ) -> Result<TurnOutcome, RuntimeError> {
        let span = tracing::info_span!("turn", session = %session_id);
        let result = self
            .turn(session_id, user_message, cancel, events)
            .instrument(span)
            .await;
        if let Err(error) = &result {
            tracing::info!(session = %session_id, %error, "turn ended without an answer");
        }
        result
    }

    async fn turn(
        &self,
        session_id: &SessionId,
        user_message: &str,
        cancel: &CancellationToken,
        events: &EventSink,
    ) -> Result<TurnOutcome, RuntimeError> {
        // The whole turn — model calls, tools, approvals — runs under one
        // wall-clock cap; streams and tools have their own, finer bounds.
        let deadline = Instant::now() + self.parts.limits.turn_timeout;
        let session = self.session(session_id).await?;
        let mut state = session.lock().await;
        self.answer_unanswered(&mut state, session_id, false)
            .await?;
        self.append(&mut state, session_id, Message::user(user_message), false)
            .await?;
        let mut turn = UsageTotals::default();
        let tool_context = ToolContext::new(session_id.clone());
        // Retrieved once per turn: every model call of the turn answers the
        // same prompt, and an unchanged context prefix keeps the vendor's
        // prompt cache warm.
        let mut snippets = None;
        for call_number in 1..=self.parts.limits.max_turns {
            if cancel.is_cancelled() {
                emit(events, RuntimeEvent::State(TurnState::Cancelled)).await;
                return Err(RuntimeError::Cancelled);
            }
            self.check_cost(&state)?;
            let summarised = self
                .maybe_summarize(&mut state, session_id, deadline, cancel)
                .await;
            if let Some(summary_usage) = summarised {
                self.account(&mut state, &mut turn, &summary_usage, events)
                    .await;
                self.check_cost(&state)?;
            }
            let context = self
                .prepare_context(&state, session_id, user_message, &mut snippets)
                .await;
            emit(events, RuntimeEvent::State(TurnState::Streaming)).await;
            let caps = self.parts.provider.capabilities(&context.model)?;
            let response = match call_provider(
                self.parts.provider.as_ref(),
                &context,
                caps.supports_streaming,
                self.parts.limits.stream_buffer_size,
                deadline,
                cancel,
                events,
            )
            .await
            {
                Ok(response) => response,
                Err(CallFailure::Cancelled { partial }) => {
                    self.keep_partial(&mut state, session_id, partial, true)
                        .await?;
                    emit(events, RuntimeEvent::State(TurnState::Cancelled)).await;
                    return Err(RuntimeError::Cancelled);
                }
                Err(CallFailure::TimedOut { partial }) => {
                    self.keep_partial(&mut state, session_id, partial, false)
                        .await?;
                    return Err(RuntimeError::BudgetExceeded {
                        kind: BudgetKind::Timeout,
                    });
                }
                Err(CallFailure::Provider { error, partial }) => {
                    self.keep_partial(&mut state, session_id, partial, false)
                        .await?;
                    return Err(error.into());
                }
            };
            if let Some(call_usage) = &response.usage {
                self.account(&mut state, &mut turn, call_usage, events)
                    .await;
            }
            let message = response.message;
            self.append(&mut state, session_id, message.clone(), false)
                .await?;
            if message.tool_calls.is_empty() {
                emit(events, RuntimeEvent::State(TurnState::Yielding)).await;
                return Ok(TurnOutcome {
                    final_message: message,
                    usage: turn.usage,
                    cost_usd: turn.cost_usd,
                    provider_calls: call_number,
                });
            }
            emit(events, RuntimeEvent::State(TurnState::ToolExecution)).await;
            let dispatcher = Dispatcher {
                registry: &self.parts.tools,
                scrubber: &self.parts.scrubber,
                context: &tool_context,
                deadline,
                cancel,
                events,
            };
            match dispatcher.run(&message.tool_calls).await {
                Dispatched::All(outcomes) => {
                    self.store_results(&mut state, session_id, outcomes).await?
                }
                Dispatched::Cancelled(done) => {
                    self.store_results(&mut state, session_id, done).await?;
                    self.answer_unanswered(&mut state, session_id, true).await?;
                    emit(events, RuntimeEvent::State(TurnState::Cancelled)).await;
                    return Err(RuntimeError::Cancelled);
                }
                Dispatched::TimedOut(done) => {
                    self.store_results(&mut state, session_id, done).await?;
                    self.answer_unanswered(&mut state, session_id, false)
                        .await?;
                    return Err(RuntimeError::BudgetExceeded {
                        kind: BudgetKind::Timeout,
                    });
                }
            }
            // A cost overrun is reported after what was bought is stored.
            self.check_cost(&state)?;
        }
        Err(RuntimeError::BudgetExceeded {
            kind: BudgetKind::Turns,
        })
    }

    /// Counts one model call's usage toward the turn and the session, and
    /// reports it.
    async fn account(
        &self,
        state: &mut SessionState,
        turn: &mut UsageTotals,
        usage: &UsageUpdate,
        events: &EventSink,
    ) {
        let cost = self.parts.model.cost_usd(usage);
        turn.add(usage, cost);
        state.account(usage, cost);
        emit(
            events,
            RuntimeEvent::Usage {
                usage: *usage,
                cost_usd: cost,
            },
        )
        .await;
    }

    fn check_cost(&self, state: &SessionState) -> Result<(), RuntimeError> {
        match self.parts.limits.max_cost {
            Some(max) if state.totals.cost_usd >= max => Err(RuntimeError::BudgetExceeded {
                kind: BudgetKind::Cost,
            }),
            Some(_) | None => Ok(()),
        }
    }

    async fn store_results(
        &self,
        state: &mut SessionState,
        session_id: &SessionId,
        outcomes: Vec<ToolOutcome>,
    ) -> Result<(), MemoryError> {
        for outcome in outcomes {
            self.append(
                state,
                session_id,
                Message::tool_result(outcome.call_id, outcome.content),
                false,
            )
            .await?;
        }
        Ok(())
    }

    /// The provider context for the next call: system prompt, rolling
    /// summary, retrieved snippets, tool declarations, then as much recent
    /// history as fits.
    async fn prepare_context(
        &self,
        state: &SessionState,
        session_id: &SessionId,
        prompt: &str,
        snippets: &mut Option<Option<String>>,
    ) -> Context {
        let mut messages = vec![Message::system(self.parts.system_prompt.clone())];
        if let Some(summary) = &state.summary {
            messages.push(Message::system(format!(
                "Rolling session summary: {}",
                summary.summary_text
            )));
        }
        let unsummarized = state.unsummarized();
        if snippets.is_none() {
            *snippets = Some(self.retrieve(session_id, prompt, unsummarized).await);
        }
        if let Some(Some(text)) = snippets {
            messages.push(Message::system(text.clone()));
        }
        // The system prompt (first) is counted once, with the declarations.
        let budget = input_budget(&self.parts.model, &self.parts.limits);
        let extra = &messages[1..];
        let fixed_bound =
            extra.iter().map(message_token_bound).sum::<usize>() + self.fixed_token_bound();
        let fixed = if fixed_bound + history_token_bound(unsummarized) <= budget {
            // Everything fits by the upper bounds: nothing is counted.
            fixed_bound
        } else {
            extra.iter().map(message_tokens).sum::<usize>() + self.fixed_tokens()
        };
        let available = budget.saturating_sub(fixed);
        messages.extend(
            select_history(unsummarized, available)
                .into_iter()
                .map(|stored| stored.message.clone()),
        );
        Context {
            provider: self.parts.provider_id.clone(),
            model: self.parts.model.id.clone(),
            messages,
            tools: self.declarations.clone(),
            settings: None,
        }
    }

    /// `Relevant context from memory:` and bullets, leaving out snippets of
    /// messages the context sends anyway.
    async fn retrieve(
        &self,
        session_id: &SessionId,
        prompt: &str,
        history: &[StoredMessage],
    ) -> Option<String> {
        let parts = self.memory.as_ref()?;
        let retrieval = parts.retrieval.as_ref()?;
        let first_sent = history.first().map_or(i64::MAX, |m| m.sequence);
        let results = match retrieval
            .hybrid_query_before(session_id.as_str(), prompt, parts.max_results, first_sent)
            .await
        {
            Ok(results) => results,
            Err(error) => {
                tracing::warn!(%error, "memory retrieval failed; continuing without it");
                return None;
            }
        };
        let bullets: Vec<String> = results
            .iter()
            .map(|r| format!("- {}", r.text.replace('\n', " ")))
            .collect();
        (!bullets.is_empty())
            .then(|| format!("Relevant context from memory:\n{}", bullets.join("\n")))
    }
}
