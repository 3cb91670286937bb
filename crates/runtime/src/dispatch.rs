//! Tool dispatch. Calls are walked in the order the model produced them:
//! contiguous `ReadOnly` calls form a batch that runs concurrently; any
//! other call flushes the batch and runs alone. Results come back in the
//! model's order. Every failure becomes a `Tool execution failed: …`
//! result — the model reads it and can correct itself.
//!
//! Each call is bounded by its tool's own timeout (the registry enforces
//! it, after any wait for approval); the dispatch as a whole is raced
//! against the turn's cancellation and its wall-clock deadline.

use futures::future::join_all;
use sandbox::scrub::Scrubber;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tools::{ToolRegistry, failure_message};
use types::{SafetyTier, ToolCall, ToolContext};

use crate::events::{EventSink, RuntimeEvent, emit};

/// How much of the arguments a `ToolCallStarted` event shows.
const SUMMARY_CHARS: usize = 120;

/// One finished call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    pub call_id: String,
    /// The tool message content: the output, or the failure message.
    pub content: String,
    pub ok: bool,
}

/// What dispatching produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    All(Vec<ToolOutcome>),
    /// Cancelled; the calls that finished first, in order.
    Cancelled(Vec<ToolOutcome>),
    /// The turn's deadline passed; the calls that finished first.
    TimedOut(Vec<ToolOutcome>),
}

/// Why a dispatch stopped early.
enum Stopped {
    Cancelled,
    TimedOut,
}

/// Everything a dispatch needs.
#[derive(Debug, Clone, Copy)]
pub struct Dispatcher<'a> {
    pub registry: &'a ToolRegistry,
    pub scrubber: &'a Scrubber,
    /// The conversation the calls are made in.
    pub context: &'a ToolContext,
    /// The turn's wall-clock deadline (`turn_timeout_secs`).
    pub deadline: Instant,
    pub cancel: &'a CancellationToken,
    pub events: &'a EventSink,
}

impl Dispatcher<'_> {
    pub async fn run(&self, calls: &[ToolCall]) -> Dispatched {
        let mut done = Vec::with_capacity(calls.len());
        match self.run_all(calls, &mut done).await {
            Ok(()) => Dispatched::All(done),
            Err(Stopped::Cancelled) => Dispatched::Cancelled(done),
            Err(Stopped::TimedOut) => Dispatched::TimedOut(done),
        }
    }

    async fn run_all(
        &self,
        calls: &[ToolCall],
        done: &mut Vec<ToolOutcome>,
    ) -> Result<(), Stopped> {
        let mut batch: Vec<&ToolCall> = Vec::new();
        for call in calls {
            if self.registry.safety_tier(&call.name) == Some(SafetyTier::ReadOnly) {
                batch.push(call);
                continue;
            }
            self.flush(&mut batch, done).await?;
            batch.push(call);
            self.flush(&mut batch, done).await?;
        }
        self.flush(&mut batch, done).await
    }

    /// Runs `batch` concurrently and appends its outcomes in order.
    async fn flush(
        &self,
        batch: &mut Vec<&ToolCall>,
        done: &mut Vec<ToolOutcome>,
    ) -> Result<(), Stopped> {
        if self.cancel.is_cancelled() {
            return Err(Stopped::Cancelled);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let calls = std::mem::take(batch);
        let results = tokio::select! {
            _ = self.cancel.cancelled() => return Err(Stopped::Cancelled),
            _ = tokio::time::sleep_until(self.deadline) => return Err(Stopped::TimedOut),
            results = join_all(calls.iter().map(|call| self.one(call))) => results,
        };
        done.extend(results);
        Ok(())
    }

    async fn one(&self, call: &ToolCall) -> ToolOutcome {
        emit(
            self.events,
            RuntimeEvent::ToolCallStarted {
                call_id: call.id.clone(),
                name: call.name.clone(),
                summary: self.summary(&call.arguments),
            },
        )
        .await;
        let started = Instant::now();
        let result = self.registry.execute_with_policy(call, self.context).await;
        let ok = result.is_ok();
        tracing::info!(
            tool = %call.name,
            ok,
            duration_ms = started.elapsed().as_millis() as u64,
            "tool executed"
        );
        emit(
            self.events,
            RuntimeEvent::ToolCallFinished {
                call_id: call.id.clone(),
                name: call.name.clone(),
                ok,
            },
        )
        .await;
        ToolOutcome {
            call_id: call.id.clone(),
            content: result.unwrap_or_else(|error| failure_message(&error)),
            ok,
        }
    }

    fn summary(&self, arguments: &str) -> String {
        let scrubbed = self.scrubber.scrub(arguments);
        match scrubbed.char_indices().nth(SUMMARY_CHARS) {
            Some((cut, _)) => format!("{}…", &scrubbed[..cut]),
            None => scrubbed.into_owned(),
        }
    }
}
