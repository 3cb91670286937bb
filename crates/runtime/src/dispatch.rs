//! Tool dispatch. Calls are walked in the order the model produced them:
//! contiguous `ReadOnly` calls form a batch that runs concurrently; any
//! other call flushes the batch and runs alone. Results come back in the
//! model's order. Every failure becomes a `Tool execution failed: …`
//! result — the model reads it and can correct itself.

use std::time::Duration;

use futures::future::join_all;
use sandbox::scrub::Scrubber;
use tokio_util::sync::CancellationToken;
use tools::{ToolRegistry, failure_message};
use types::{SafetyTier, ToolCall, ToolError};

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
}

/// Everything a dispatch needs.
#[derive(Debug, Clone, Copy)]
pub struct Dispatcher<'a> {
    pub registry: &'a ToolRegistry,
    pub scrubber: &'a Scrubber,
    /// Bound on each tool run (`turn_timeout_secs`).
    pub timeout: Duration,
    pub cancel: &'a CancellationToken,
    pub events: &'a EventSink,
}

impl Dispatcher<'_> {
    pub async fn run(&self, calls: &[ToolCall]) -> Dispatched {
        let mut done = Vec::with_capacity(calls.len());
        let mut batch: Vec<&ToolCall> = Vec::new();
        for call in calls {
            if self.registry.safety_tier(&call.name) == Some(SafetyTier::ReadOnly) {
                batch.push(call);
                continue;
            }
            if !self.flush(&mut batch, &mut done).await {
                return Dispatched::Cancelled(done);
            }
            batch.push(call);
            if !self.flush(&mut batch, &mut done).await {
                return Dispatched::Cancelled(done);
            }
        }
        if !self.flush(&mut batch, &mut done).await {
            return Dispatched::Cancelled(done);
        }
        Dispatched::All(done)
    }

    /// Runs `batch` concurrently and appends its outcomes in order;
    /// `false` when cancelled first.
    async fn flush(&self, batch: &mut Vec<&ToolCall>, done: &mut Vec<ToolOutcome>) -> bool {
        if batch.is_empty() {
            return !self.cancel.is_cancelled();
        }
        let calls = std::mem::take(batch);
        let results = tokio::select! {
            _ = self.cancel.cancelled() => return false,
            results = join_all(calls.iter().map(|call| self.one(call))) => results,
        };
        done.extend(results);
        true
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
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, self.registry.execute_with_policy(call))
            .await
            .unwrap_or_else(|_| {
                Err(ToolError::Timeout {
                    tool: call.name.clone(),
                    after: self.timeout,
                })
            });
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
