//! One live session: its outgoing stream, its lane of waiting turns, its
//! active turn and the approval requests that turn is waiting on.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use types::{SessionId, TurnId, UserId};

use crate::outbox::Outbox;

/// A turn waiting in a session's lane.
#[derive(Debug)]
pub(crate) struct QueuedTurn {
    pub content: String,
    pub client_turn_id: Option<String>,
}

/// Why a turn could not join the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneRefusal {
    /// `depth` turns already wait.
    Full { depth: usize },
    /// The lane's worker stopped (the gateway is shutting down).
    Closed,
}

#[derive(Debug)]
struct ActiveTurn {
    turn_id: TurnId,
    cancel: CancellationToken,
}

/// A session as the gateway holds it while it is loaded.
#[derive(Debug)]
pub(crate) struct SessionHub {
    pub id: SessionId,
    pub user: UserId,
    pub outbox: Outbox,
    /// Child of the gateway's token; each turn's token is its child.
    pub cancel: CancellationToken,
    lane: mpsc::Sender<QueuedTurn>,
    lane_depth: usize,
    active: Mutex<Option<ActiveTurn>>,
    approvals: Mutex<HashMap<String, oneshot::Sender<bool>>>,
    /// When the session was last fetched, given a turn or finished one.
    last_used: Mutex<Instant>,
}

impl SessionHub {
    /// A hub and the receiving end of its lane (for its lane worker).
    pub fn new(
        id: SessionId,
        user: UserId,
        parent: &CancellationToken,
        lane_depth: usize,
        outbox: Outbox,
    ) -> (Self, mpsc::Receiver<QueuedTurn>) {
        let (lane, queue) = mpsc::channel(lane_depth);
        let hub = Self {
            id,
            user,
            outbox,
            cancel: parent.child_token(),
            lane,
            lane_depth,
            active: Mutex::new(None),
            approvals: Mutex::new(HashMap::new()),
            last_used: Mutex::new(Instant::now()),
        };
        (hub, queue)
    }

    /// Marks the session as used now.
    pub fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Whether the session may be unloaded at `now`: no client attached,
    /// no turn running or waiting, and unused for at least `idle`.
    pub fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        let last_used = *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        now.saturating_duration_since(last_used) >= idle
            && !self.outbox.has_clients()
            && !self.is_busy()
            && self.lane.capacity() == self.lane_depth
    }

    /// Queues a turn behind the active one; never waits.
    pub fn enqueue(&self, turn: QueuedTurn) -> Result<(), LaneRefusal> {
        self.touch();
        self.lane.try_send(turn).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => LaneRefusal::Full {
                depth: self.lane_depth,
            },
            mpsc::error::TrySendError::Closed(_) => LaneRefusal::Closed,
        })
    }

    pub fn set_active(&self, turn_id: TurnId, cancel: CancellationToken) {
        *self.active.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(ActiveTurn { turn_id, cancel });
    }

    pub fn clear_active(&self) {
        *self.active.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.touch();
    }

    /// Cancels the active turn (queued turns stay queued); the id of the
    /// turn cancelled, if one was running.
    pub fn cancel_active(&self) -> Option<TurnId> {
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let turn = active.as_ref()?;
        turn.cancel.cancel();
        Some(turn.turn_id.clone())
    }

    pub fn is_busy(&self) -> bool {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Registers a pending approval request.
    pub fn await_approval(&self, request_id: String) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.approvals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request_id, tx);
        rx
    }

    /// Drops a request that was answered, timed out or cancelled.
    pub fn forget_approval(&self, request_id: &str) {
        self.approvals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(request_id);
    }

    /// Delivers a client's answer; `false` when no such request waits.
    pub fn answer_approval(&self, request_id: &str, approved: bool) -> bool {
        let waiting = self
            .approvals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(request_id);
        // The lock is released before the waiting turn is woken.
        waiting.is_some_and(|tx| tx.send(approved).is_ok())
    }
}
