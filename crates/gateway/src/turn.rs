//! The turn runner: lanes that feed turns to `AgentRuntime::run_session`
//! one at a time per session, and the mapping of runtime events to frames.
//!
//! Each loaded session has one lane worker (a FIFO of bounded depth), so a
//! session's turns run in order while different sessions — of one user or
//! of many — run in parallel. Background runs (scheduler, subagents) have
//! their own lane and never wait behind interactive chat.

use std::sync::Arc;

use runtime::{AgentRuntime, RuntimeEvent, TurnOutcome, TurnState};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use types::protocol::gateway::{GatewayErrorCode, GatewayServerFrame, TurnUsage};
use types::{RuntimeError, SessionId, TurnId, UserId};

use crate::approval::TurnApprover;
use crate::directory::SessionRecord;
use crate::endpoint::random_hex;
use crate::error::GatewayError;
use crate::outbox::Outbox;
use crate::server::Shared;
use crate::session::{QueuedTurn, SessionHub};

/// Runtime events buffered between the runtime and the forwarding loop.
const EVENT_BUFFER: usize = 64;
/// Frames raised inside a turn (approval requests) waiting to be published.
const SIDE_FRAMES: usize = 8;

/// Milliseconds since the Unix epoch.
pub(crate) use types::clock::now_ms;

pub(crate) fn new_session_id() -> SessionId {
    SessionId::new(format!("s-{:x}-{}", now_ms(), random_hex(6)))
}

fn new_turn_id() -> TurnId {
    TurnId::new(format!("turn-{}", random_hex(8)))
}

/// Runs one session's turns in arrival order until the session's token
/// is cancelled (gateway shutdown).
pub(crate) async fn run_lane(
    shared: Arc<Shared>,
    hub: Arc<SessionHub>,
    mut queue: mpsc::Receiver<QueuedTurn>,
) {
    loop {
        let turn = tokio::select! {
            biased;
            () = hub.cancel.cancelled() => break,
            turn = queue.recv() => match turn {
                Some(turn) => turn,
                None => break,
            },
        };
        run_interactive(&shared, &hub, turn).await;
    }
    // Turns still waiting are reported, never dropped silently.
    queue.close();
    while let Ok(turn) = queue.try_recv() {
        hub.outbox.publish(GatewayServerFrame::Error {
            code: GatewayErrorCode::TurnFailed,
            message: format!(
                "the gateway is shutting down; the queued message {:?} was not run",
                preview(&turn.content)
            ),
        });
    }
}

fn preview(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

async fn run_interactive(shared: &Shared, hub: &Arc<SessionHub>, turn: QueuedTurn) {
    let turn_id = new_turn_id();
    let cancel = hub.cancel.child_token();
    hub.set_active(turn_id.clone(), cancel.clone());
    hub.outbox.publish(GatewayServerFrame::TurnStarted {
        turn_id: turn_id.clone(),
        client_turn_id: turn.client_turn_id,
    });
    let (frames, mut side) = mpsc::channel(SIDE_FRAMES);
    let approver = TurnApprover {
        hub: Arc::clone(hub),
        frames,
        cancel: cancel.clone(),
        timeout: shared.limits.approval_timeout,
    };
    let result = approver
        .scope(drive(
            &shared.runtime,
            &hub.id,
            &turn.content,
            &cancel,
            &mut side,
            |output| match output {
                TurnOutput::Event(event) => forward(&hub.outbox, event),
                TurnOutput::Frame(frame) => {
                    hub.outbox.publish(frame);
                }
            },
        ))
        .await;
    // Cleared before the terminal frame, so a cancel that arrives after
    // it is answered with `no_active_turn`.
    hub.clear_active();
    hub.outbox.publish(terminal_frame(turn_id, result));
    if let Err(error) = shared.directory.touch(&hub.id, now_ms()).await {
        tracing::warn!(session = %hub.id, %error, "could not record the session's activity");
    }
}

/// The frame that ends a turn.
fn terminal_frame(
    turn_id: TurnId,
    result: Result<TurnOutcome, RuntimeError>,
) -> GatewayServerFrame {
    match result {
        Ok(outcome) => GatewayServerFrame::TurnCompleted {
            turn_id,
            final_message: outcome.final_message.content.unwrap_or_default(),
            usage: TurnUsage {
                input_tokens: outcome.usage.input_tokens,
                output_tokens: outcome.usage.output_tokens,
                total_tokens: outcome.usage.total_tokens,
                cost_usd: outcome.cost_usd,
                cached_input_tokens: outcome.usage.cached_input_tokens.unwrap_or(0),
                cache_write_input_tokens: outcome.usage.cache_write_input_tokens.unwrap_or(0),
            },
        },
        Err(RuntimeError::Cancelled) => GatewayServerFrame::TurnCancelled { turn_id },
        Err(error) => GatewayServerFrame::Error {
            code: GatewayErrorCode::TurnFailed,
            message: format!("turn {turn_id} failed: {error}"),
        },
    }
}

/// Publishes the frame a runtime event stands for, if any.
fn forward(outbox: &Outbox, event: RuntimeEvent) {
    let frame = match event {
        RuntimeEvent::TextDelta(text) => GatewayServerFrame::AssistantDelta { text },
        RuntimeEvent::ReasoningDelta(text) => GatewayServerFrame::ReasoningDelta { text },
        RuntimeEvent::ToolCallStarted {
            call_id,
            name,
            summary,
        } => GatewayServerFrame::ToolCallStarted {
            call_id,
            name,
            summary,
        },
        RuntimeEvent::ToolCallFinished { call_id, name, ok } => {
            GatewayServerFrame::ToolCallFinished { call_id, name, ok }
        }
        // Turn start and end are framed by the runner itself; usage is
        // reported once, summed, in `TurnCompleted`.
        RuntimeEvent::State(
            TurnState::Streaming
            | TurnState::ToolExecution
            | TurnState::Yielding
            | TurnState::Cancelled,
        )
        | RuntimeEvent::Usage { .. } => return,
    };
    outbox.publish(frame);
}

/// What a running turn produces for its clients.
#[derive(Debug)]
enum TurnOutput {
    Event(RuntimeEvent),
    /// A frame raised inside the turn (an approval request).
    Frame(GatewayServerFrame),
}

/// Runs one turn, handing over every runtime event and side frame in the
/// order they were produced: both are queued, and events sent before a
/// side frame are always taken first.
async fn drive(
    runtime: &AgentRuntime,
    session: &SessionId,
    content: &str,
    cancel: &CancellationToken,
    side: &mut mpsc::Receiver<GatewayServerFrame>,
    mut on_output: impl FnMut(TurnOutput),
) -> Result<TurnOutcome, RuntimeError> {
    let (events, mut received) = mpsc::channel(EVENT_BUFFER);
    let result = {
        let run = runtime.run_session(session, content, cancel, &events);
        tokio::pin!(run);
        loop {
            tokio::select! {
                biased;
                Some(event) = received.recv() => on_output(TurnOutput::Event(event)),
                Some(frame) = side.recv() => on_output(TurnOutput::Frame(frame)),
                result = &mut run => break result,
            }
        }
    };
    // Output produced just before the turn returned.
    while let Ok(event) = received.try_recv() {
        on_output(TurnOutput::Event(event));
    }
    while let Ok(frame) = side.try_recv() {
        on_output(TurnOutput::Frame(frame));
    }
    result
}

/// A run queued in the background lane.
#[derive(Debug)]
pub(crate) struct BackgroundJob {
    pub user: UserId,
    pub session_id: SessionId,
    pub prompt: String,
    pub reply: oneshot::Sender<Result<TurnOutcome, GatewayError>>,
}

/// Runs background jobs one after another until the gateway stops.
pub(crate) async fn run_background_lane(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<BackgroundJob>,
) {
    loop {
        let job = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            job = queue.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let result = run_background(&shared, &job).await;
        // The submitter may have stopped waiting; the run is stored anyway.
        let _ = job.reply.send(result);
    }
    queue.close();
    while let Ok(job) = queue.try_recv() {
        let _ = job.reply.send(Err(GatewayError::ShuttingDown));
    }
}

async fn run_background(shared: &Shared, job: &BackgroundJob) -> Result<TurnOutcome, GatewayError> {
    match shared.directory.get(&job.session_id).await? {
        Some(record) if record.user_id == job.user => {}
        Some(_) => {
            return Err(GatewayError::Directory(format!(
                "session '{}' belongs to another user",
                job.session_id
            )));
        }
        None => {
            let at = now_ms();
            shared
                .directory
                .create(SessionRecord {
                    session_id: job.session_id.clone(),
                    user_id: job.user.clone(),
                    created_at_ms: at,
                    updated_at_ms: at,
                })
                .await?;
        }
    }
    let cancel = shared.shutdown.child_token();
    // Background runs have no client: events are not forwarded, and a
    // privileged call is denied by the gate (no approver in scope).
    // Nothing can raise side frames without an approver in scope.
    let (_no_frames, mut side) = mpsc::channel(1);
    let outcome = drive(
        &shared.runtime,
        &job.session_id,
        &job.prompt,
        &cancel,
        &mut side,
        |_| {},
    )
    .await?;
    shared.directory.touch(&job.session_id, now_ms()).await?;
    Ok(outcome)
}
