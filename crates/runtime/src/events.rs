//! What a running turn reports: a typed stream the gateway forwards to
//! clients (text as it arrives, tool activity, usage, state changes).

use tokio::sync::mpsc;
use types::UsageUpdate;

/// The turn loop's states; every transition is also a `tracing` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnState {
    /// Waiting for, or receiving, the model's answer.
    Streaming,
    /// Running the tool calls the model asked for.
    ToolExecution,
    /// The model answered without tool calls; the turn is over.
    Yielding,
    /// The turn was cancelled; what was produced is kept.
    Cancelled,
}

/// One thing that happened during a turn.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    State(TurnState),
    /// A fragment of the answer, forwarded as it arrives.
    TextDelta(String),
    /// A fragment of the model's reasoning trace.
    ReasoningDelta(String),
    ToolCallStarted {
        call_id: String,
        name: String,
        /// The arguments, shortened (scrubbed by the registry's pipeline
        /// only in the result; keep this brief).
        summary: String,
    },
    ToolCallFinished {
        call_id: String,
        name: String,
        ok: bool,
    },
    /// Usage of one provider call and its estimated cost.
    Usage {
        usage: UsageUpdate,
        cost_usd: f64,
    },
}

/// Where a turn sends its events. Bounded: a slow consumer slows the turn
/// down rather than growing memory; a dropped receiver is ignored (the turn
/// still completes and is stored).
pub type EventSink = mpsc::Sender<RuntimeEvent>;

/// Sends `event`, ignoring a receiver that has gone away.
pub(crate) async fn emit(sink: &EventSink, event: RuntimeEvent) {
    if let RuntimeEvent::State(state) = &event {
        tracing::info!(state = ?state, "turn state");
    }
    // A client that disconnected must not stop the turn.
    let _ = sink.send(event).await;
}
