//! `TuiChannel`: the terminal as a channel adapter (spec 07: the TUI is
//! one adapter among many, with no privileged path). The event loop hands
//! it the user's actions (`submit`); `listen` gives them to
//! `channels::bridge`, which sends them to the gateway and delivers the
//! gateway's frames and link news back through `send` and `link_event`, in
//! order, as `UiEvent`s for the event loop.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use channels::{ConnectionState, LinkEvent, LinkedChannel};
use tokio::sync::mpsc;
use types::Channel;
use types::channel::{
    ChannelHealthStatus, ChannelInboundEvent, ChannelListenStream, ChannelMetadata,
    ChannelOutboundEvent, InboundPayload,
};
use types::error::ChannelError;
use types::ids::UserId;

use crate::state::UiEvent;

/// The id the TUI's events carry.
pub const CHANNEL_ID: &str = "tui";

/// The terminal's side of the channel.
#[derive(Debug)]
pub struct TuiChannel {
    user_id: UserId,
    /// Where `submit` puts actions, once someone listens.
    actions: Mutex<Option<mpsc::Sender<ChannelInboundEvent>>>,
    /// Frames and link news for the event loop, in arrival order.
    screen: mpsc::Sender<UiEvent>,
    /// The last connection state the bridge reported.
    connection: Mutex<Option<ConnectionState>>,
}

impl TuiChannel {
    /// The channel and the receiver the event loop reads (`capacity`
    /// events may wait; a full screen queue makes the bridge wait).
    pub fn new(user_id: UserId, capacity: usize) -> (Self, mpsc::Receiver<UiEvent>) {
        let (screen, events) = mpsc::channel(capacity.max(1));
        let channel = Self {
            user_id,
            actions: Mutex::new(None),
            screen,
            connection: Mutex::new(None),
        };
        (channel, events)
    }

    /// Queues one of the user's actions for the gateway. Fails, saying
    /// why, when nothing listens or the queue is full; nothing was sent.
    pub fn submit(&self, payload: InboundPayload) -> Result<(), String> {
        let actions = self
            .actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(actions) = actions else {
            return Err("the terminal is not linked to the gateway".to_owned());
        };
        let session = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|state| match state {
                ConnectionState::Connected { session_id } => Some(session_id.to_string()),
                ConnectionState::Reconnecting { .. } | ConnectionState::Closed { .. } => None,
            });
        let event = ChannelInboundEvent {
            channel_id: CHANNEL_ID.to_owned(),
            sender_id: self.user_id.to_string(),
            channel_session_id: session.unwrap_or_default(),
            payload,
            metadata: ChannelMetadata::default(),
        };
        actions.try_send(event).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => {
                "the connection is not taking messages; try again".to_owned()
            }
            mpsc::error::TrySendError::Closed(_) => {
                "the link to the gateway has stopped".to_owned()
            }
        })
    }

    async fn show(&self, event: UiEvent) -> Result<(), ChannelError> {
        self.screen
            .send(event)
            .await
            .map_err(|_| ChannelError::Closed)
    }
}

#[async_trait]
impl Channel for TuiChannel {
    async fn send(&self, event: ChannelOutboundEvent) -> Result<(), ChannelError> {
        self.show(UiEvent::Frame(event.frame)).await
    }

    /// One listener at a time: a second call while the first still reads
    /// is refused, so no action goes to a listener nobody reads.
    async fn listen(&self, buffer_size: usize) -> Result<ChannelListenStream, ChannelError> {
        let mut actions = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        if actions.as_ref().is_some_and(|sender| !sender.is_closed()) {
            return Err(ChannelError::Protocol(
                "the terminal already has a listener".to_owned(),
            ));
        }
        let (sender, receiver) = mpsc::channel(buffer_size.max(1));
        *actions = Some(sender);
        Ok(receiver)
    }

    async fn health_check(&self) -> Result<ChannelHealthStatus, ChannelError> {
        if self.screen.is_closed() {
            return Ok(ChannelHealthStatus::Unhealthy {
                reason: "the terminal has closed".to_owned(),
            });
        }
        Ok(self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(
                ChannelHealthStatus::Degraded {
                    reason: "not connected yet".to_owned(),
                },
                ConnectionState::health,
            ))
    }
}

#[async_trait]
impl LinkedChannel for TuiChannel {
    async fn link_event(&self, event: LinkEvent) -> Result<(), ChannelError> {
        if let LinkEvent::Connection(state) = &event {
            *self
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(state.clone());
        }
        self.show(UiEvent::Link(event)).await
    }
}
