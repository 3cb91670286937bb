//! `GatewayClient`: a WebSocket client of the gateway's `/ws` protocol.
//!
//! `connect` opens the socket, sends `Hello` with the endpoint's token and
//! waits for `HelloAck`, then hands the socket to a connection task that
//! owns it. The caller sends frames with `send_frame` and reads everything
//! the server says (and every connection change) from the returned
//! `ClientEvents` receiver. When the socket drops, the task reconnects with
//! backoff (`ReconnectPolicy`) and sends `Hello { session_id, resume_from:
//! last seen sequence }`, so the gateway replays what was missed; frames at
//! or below the last seen sequence are dropped, so nothing is delivered
//! twice.

mod backoff;
mod connection;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use types::channel::ChannelHealthStatus;
use types::ids::{SessionId, UserId};
use types::protocol::gateway::{GatewayClientFrame, GatewayServerMessage};

pub use backoff::ReconnectPolicy;

use crate::endpoint::EndpointSource;
use crate::error::ChannelsError;

/// Everything `GatewayClient::connect` needs.
#[derive(Debug, Clone)]
pub struct GatewayClientConfig {
    pub endpoint: EndpointSource,
    pub user_id: UserId,
    /// Attach to this session (else the gateway picks the user's latest or
    /// a new one). After the first `HelloAck` the client always reattaches
    /// to the session the gateway reported.
    pub session_id: Option<SessionId>,
    /// Without `session_id`, start a new session rather than attach to the
    /// user's latest (a chat channel's new chat).
    pub new_session: bool,
    pub reconnect: ReconnectPolicy,
    /// Limit for opening the socket and receiving `HelloAck`.
    pub handshake_timeout: Duration,
    /// Capacity of the event channel (at least 16).
    pub event_buffer: usize,
    /// The largest WebSocket message accepted from the server.
    pub max_message_bytes: usize,
}

impl GatewayClientConfig {
    pub fn new(endpoint: EndpointSource, user_id: UserId) -> Self {
        Self {
            endpoint,
            user_id,
            session_id: None,
            new_session: false,
            reconnect: ReconnectPolicy::default(),
            handshake_timeout: Duration::from_secs(10),
            event_buffer: 256,
            max_message_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The client's connection, as the user should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Authenticated and attached to `session_id`.
    Connected { session_id: SessionId },
    /// The connection was lost (`reason`); attempt `attempt` starts after
    /// `retry_in`.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
        reason: String,
    },
    /// The client stopped for good: shut down, refused, or gave up.
    Closed { reason: String },
}

impl ConnectionState {
    /// The link's health: degraded while reconnecting, unhealthy once closed.
    pub fn health(&self) -> ChannelHealthStatus {
        match self {
            Self::Connected { .. } => ChannelHealthStatus::Healthy,
            Self::Reconnecting {
                attempt, reason, ..
            } => ChannelHealthStatus::Degraded {
                reason: format!("reconnecting (attempt {attempt}): {reason}"),
            },
            Self::Closed { reason } => ChannelHealthStatus::Unhealthy {
                reason: reason.clone(),
            },
        }
    }
}

/// What the connection task reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Connection(ConnectionState),
    /// A server frame (never a duplicate of one already delivered).
    Frame(GatewayServerMessage),
    /// A text frame from the server that is not a known
    /// `GatewayServerMessage` (e.g. a newer gateway); the connection stays.
    Undecodable {
        message: String,
    },
}

/// The receiving half returned by `GatewayClient::connect`.
pub type ClientEvents = mpsc::Receiver<ClientEvent>;

/// One frame to write, with the place to report whether it was written.
#[derive(Debug)]
struct SendRequest {
    frame: GatewayClientFrame,
    ack: oneshot::Sender<Result<(), ChannelsError>>,
}

/// State the connection task shares with the handle.
#[derive(Debug)]
struct Shared {
    state: Mutex<ConnectionState>,
    session: Mutex<Option<SessionId>>,
    last_seq: AtomicU64,
}

impl Shared {
    fn set_state(&self, state: ConnectionState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    fn session(&self) -> Option<SessionId> {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A connected gateway client. Dropping it stops the connection task.
#[derive(Debug)]
pub struct GatewayClient {
    requests: mpsc::Sender<SendRequest>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    _stop_on_drop: DropGuard,
}

impl GatewayClient {
    /// Connects and authenticates. Fails without retrying when the first
    /// connection cannot be made (a missing endpoint file, a refused token,
    /// nothing listening): the caller decides whether to try again. Once
    /// connected, connection losses are retried by the client itself.
    pub async fn connect(
        config: GatewayClientConfig,
    ) -> Result<(Self, ClientEvents), ChannelsError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(ConnectionState::Closed {
                reason: "not connected yet".to_owned(),
            }),
            session: Mutex::new(config.session_id.clone()),
            last_seq: AtomicU64::new(0),
        });
        let (socket, hello_ack) = connection::handshake(&config, &shared).await?;
        let (events_tx, events_rx) = mpsc::channel(config.event_buffer.max(16));
        let (requests_tx, requests_rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let mut task = connection::Connection {
            config,
            shared: Arc::clone(&shared),
            requests: requests_rx,
            events: events_tx,
            cancel: cancel.clone(),
        };
        // Recorded before returning: `session_id()` and `state()` of the
        // returned client already describe the attached session.
        let first = task.record_connected(hello_ack);
        let task = tokio::spawn(task.run(socket, first));
        Ok((
            Self {
                requests: requests_tx,
                shared,
                _stop_on_drop: cancel.clone().drop_guard(),
                cancel,
                task,
            },
            events_rx,
        ))
    }

    /// Writes one frame to the gateway. `NotConnected` while reconnecting
    /// (nothing was sent; the caller may retry once connected), `Closed`
    /// once the client has stopped.
    pub async fn send_frame(&self, frame: GatewayClientFrame) -> Result<(), ChannelsError> {
        let (ack, done) = oneshot::channel();
        let closed = || ChannelsError::Closed {
            reason: self.closed_reason(),
        };
        self.requests
            .send(SendRequest { frame, ack })
            .await
            .map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }

    /// The connection as of now.
    pub fn state(&self) -> ConnectionState {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The session the client is attached to (and reattaches to).
    pub fn session_id(&self) -> Option<SessionId> {
        self.shared.session()
    }

    /// The highest session sequence number delivered so far (sent as
    /// `resume_from` on reconnection).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::SeqCst)
    }

    /// The client's health, for `collect_channel_health` and status lines.
    pub fn health(&self) -> ChannelHealthStatus {
        self.state().health()
    }

    /// Closes the socket and waits for the connection task to finish.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        // The task only ends by returning; a join error would mean it
        // panicked, which it reports itself through the closed state.
        let _ = self.task.await;
    }

    fn closed_reason(&self) -> String {
        match self.state() {
            ConnectionState::Closed { reason } => reason,
            ConnectionState::Connected { .. } | ConnectionState::Reconnecting { .. } => {
                "the connection task stopped".to_owned()
            }
        }
    }
}
