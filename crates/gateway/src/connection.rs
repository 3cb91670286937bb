//! One WebSocket connection: authentication, attachment to a session
//! (with replay), the client's commands, and forwarding of the session's
//! frames.
//!
//! Before a valid `Hello` the only acceptable frame is a `Hello` with the
//! right token; anything else is answered with an error and the
//! connection is closed with the reason. Afterwards a bad frame gets an
//! `Error` frame and the connection lives on.

use std::sync::Arc;
use std::time::Duration;

use axum::BoxError;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::SinkExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::RecvError;
use types::protocol::gateway::{
    CONNECTION_SEQ, GatewayClientFrame, GatewayErrorCode, GatewayServerFrame, GatewayServerMessage,
    SessionSummary,
};
use types::{SecretString, SessionId, UserId};

use crate::directory::SessionRecord;
use crate::endpoint::tokens_match;
use crate::outbox::{Frame, encode};
use crate::server::{HubRefusal, Shared};
use crate::session::{LaneRefusal, QueuedTurn, SessionHub};
use crate::turn::{new_session_id, now_ms};

/// How long a closing connection keeps forwarding a turn that shutdown
/// cancelled, so its client sees `TurnCancelled`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The WebSocket protocol's limit on a close reason.
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The socket is gone or closing; stop serving it.
#[derive(Debug)]
struct Closed;

type Served = Result<(), Closed>;

/// A connection's attachment to one session.
#[derive(Debug)]
struct Attached {
    user: UserId,
    hub: Arc<SessionHub>,
    live: tokio::sync::broadcast::Receiver<Frame>,
    /// The newest sequence number this client has (sent or skipped as
    /// older than its attachment).
    last_sent: u64,
}

struct Connection {
    shared: Arc<Shared>,
    socket: WebSocket,
    attached: Option<Attached>,
}

/// Serves one upgraded connection until the client leaves, breaks the
/// protocol before authenticating, or the gateway stops. `permit` holds
/// the connection's slot under the cap.
pub(crate) async fn serve_connection(
    shared: Arc<Shared>,
    socket: WebSocket,
    permit: OwnedSemaphorePermit,
) {
    let mut connection = Connection {
        shared,
        socket,
        attached: None,
    };
    // The outcome is either a clean end or a socket that went away; both
    // just end the connection.
    let _ = connection.run().await;
    drop(permit);
}

enum Event {
    Shutdown,
    HelloTimeout,
    Incoming(Option<Result<Message, axum::Error>>),
    Live(Result<Frame, RecvError>),
}

/// The next frame of the attached session; never ready when detached.
async fn next_live(attached: &mut Option<Attached>) -> Result<Frame, RecvError> {
    match attached {
        Some(attached) => attached.live.recv().await,
        None => std::future::pending().await,
    }
}

/// The close code for a transport error (RFC 6455 §7.4.1), with the
/// error; `None` when the socket itself failed and nothing can be sent.
fn transport_close_code(error: axum::Error) -> Option<(u16, BoxError)> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let error = error.into_inner();
    let code = match error.downcast_ref::<WsError>() {
        Some(WsError::Capacity(_) | WsError::WriteBufferFull(_)) => close_code::SIZE,
        Some(WsError::Utf8(_)) => close_code::INVALID,
        Some(WsError::Protocol(_)) => close_code::PROTOCOL,
        Some(
            WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Tls(_),
        ) => return None,
        Some(_) | None => close_code::ERROR,
    };
    Some((code, error))
}

fn close_reason(reason: &str) -> String {
    let mut cut = reason.len().min(MAX_CLOSE_REASON_BYTES);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason[..cut].to_owned()
}

impl Connection {
    async fn run(&mut self) -> Served {
        let hello_deadline = tokio::time::Instant::now() + self.shared.limits.hello_timeout;
        let shutdown = self.shared.shutdown.clone();
        loop {
            let awaiting_hello = self.attached.is_none();
            // Unbiased: a flood of session frames must not starve the
            // client's own frames (a cancel), nor the other way round.
            let event = tokio::select! {
                () = shutdown.cancelled() => Event::Shutdown,
                () = tokio::time::sleep_until(hello_deadline), if awaiting_hello => Event::HelloTimeout,
                live = next_live(&mut self.attached) => Event::Live(live),
                incoming = self.socket.recv() => Event::Incoming(incoming),
            };
            match event {
                Event::Shutdown => return self.close_for_shutdown().await,
                Event::HelloTimeout => {
                    let seconds = self.shared.limits.hello_timeout.as_secs_f64();
                    return self
                        .refuse(
                            GatewayErrorCode::HelloRequired,
                            format!("no hello within {seconds} seconds"),
                        )
                        .await;
                }
                Event::Live(live) => self.forward_live(live).await?,
                Event::Incoming(None) => return Ok(()),
                Event::Incoming(Some(Err(error))) => {
                    // The socket cannot continue after a transport error;
                    // the close says which kind, when the peer can still
                    // hear it.
                    return match transport_close_code(error) {
                        Some((code, error)) => {
                            let reason = close_reason(&format!("websocket error: {error}"));
                            self.close(code, reason).await
                        }
                        None => Err(Closed),
                    };
                }
                Event::Incoming(Some(Ok(message))) => self.incoming(message).await?,
            }
        }
    }

    async fn incoming(&mut self, message: Message) -> Served {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .reject(
                        GatewayErrorCode::MalformedFrame,
                        "binary frames are not part of the protocol; send JSON text frames".into(),
                    )
                    .await;
            }
            // axum answers pings itself.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => {
                // Completes the closing handshake (tungstenite has queued
                // the reply); the peer may already be gone.
                let _ = self.socket.close().await;
                return Err(Closed);
            }
        };
        let max = self.shared.limits.max_frame_bytes;
        if text.len() > max {
            return self
                .reject(
                    GatewayErrorCode::FrameTooLarge,
                    format!(
                        "the frame has {} bytes; the gateway accepts at most {max}",
                        text.len()
                    ),
                )
                .await;
        }
        let frame = match serde_json::from_str::<GatewayClientFrame>(text.as_str()) {
            Ok(frame) => frame,
            Err(error) => {
                return self
                    .reject(
                        GatewayErrorCode::MalformedFrame,
                        format!("the frame was rejected: {error}"),
                    )
                    .await;
            }
        };
        match frame {
            GatewayClientFrame::Hello {
                user_id,
                session_id,
                token,
                resume_from,
                new_session,
            } => {
                self.hello(user_id, session_id, token, resume_from, new_session)
                    .await
            }
            other => match self.attached.take() {
                Some(attached) => {
                    let result = self.command(&attached, other).await;
                    // `command` replaces the attachment on `NewSession`.
                    if self.attached.is_none() {
                        self.attached = Some(attached);
                    }
                    result
                }
                None => {
                    self.refuse(
                        GatewayErrorCode::HelloRequired,
                        "the first frame must be a hello carrying the token from the \
                         endpoint file"
                            .into(),
                    )
                    .await
                }
            },
        }
    }

    /// A bad frame: an error for an authenticated client, an error and the
    /// end of the connection for one that has not said hello.
    async fn reject(&mut self, code: GatewayErrorCode, message: String) -> Served {
        if self.attached.is_some() {
            self.send_error(code, message).await
        } else {
            self.refuse(code, message).await
        }
    }

    /// Refuses an unauthenticated connection: an `Error` frame, then a
    /// close frame carrying the reason.
    async fn refuse(&mut self, code: GatewayErrorCode, message: String) -> Served {
        let reason = close_reason(&format!("unauthorized: {message}"));
        self.send_error(code, message).await?;
        self.close(close_code::POLICY, reason).await
    }

    async fn hello(
        &mut self,
        user: UserId,
        requested: Option<SessionId>,
        token: SecretString,
        resume_from: Option<u64>,
        new_session: bool,
    ) -> Served {
        if !tokens_match(&self.shared.token, &token) {
            let what = if token.is_empty() {
                "the hello has no token"
            } else {
                "the token is wrong"
            };
            return self
                .refuse(
                    GatewayErrorCode::Unauthorized,
                    format!("{what}; use the token from the endpoint file (tmp/gateway-endpoint)"),
                )
                .await;
        }
        let session = match requested {
            Some(id) => match self.shared.directory.get(&id).await {
                Ok(Some(record)) if record.user_id == user => Ok(id),
                Ok(Some(_) | None) => Err((
                    GatewayErrorCode::UnknownSession,
                    format!(
                        "user '{user}' has no session '{id}'; omit session_id to continue \
                         the latest session"
                    ),
                )),
                Err(error) => Err((GatewayErrorCode::Internal, error.to_string())),
            },
            None if new_session => create_session(&self.shared, &user).await,
            None => match self.shared.directory.latest(&user).await {
                Ok(Some(latest)) => Ok(latest.session_id),
                Ok(None) => create_session(&self.shared, &user).await,
                Err(error) => Err((GatewayErrorCode::Internal, error.to_string())),
            },
        };
        match session {
            Ok(id) => self.attach(user, &id, resume_from).await,
            Err((code, message)) => self.send_error(code, message).await,
        }
    }
}

/// Records a new session of `user` in the directory.
async fn create_session(
    shared: &Shared,
    user: &UserId,
) -> Result<SessionId, (GatewayErrorCode, String)> {
    let at = now_ms();
    let record = SessionRecord {
        session_id: new_session_id(),
        user_id: user.clone(),
        created_at_ms: at,
        updated_at_ms: at,
    };
    let id = record.session_id.clone();
    match shared.directory.create(record).await {
        Ok(()) => {
            tracing::info!(user = %user, session = %id, "session created");
            Ok(id)
        }
        Err(error) => Err((GatewayErrorCode::Internal, error.to_string())),
    }
}

impl Connection {
    /// Attaches to `id`: `HelloAck`, the replay, then live frames.
    async fn attach(&mut self, user: UserId, id: &SessionId, resume_from: Option<u64>) -> Served {
        let hub = match self.shared.hub(id, &user) {
            Ok(hub) => hub,
            Err(HubRefusal::OtherUser) => {
                return self
                    .send_error(
                        GatewayErrorCode::UnknownSession,
                        format!("user '{user}' has no session '{id}'"),
                    )
                    .await;
            }
            Err(HubRefusal::ShuttingDown) => {
                return self
                    .send_error(
                        GatewayErrorCode::Internal,
                        "the gateway is shutting down".into(),
                    )
                    .await;
            }
        };
        let attachment = hub.outbox.attach(resume_from);
        self.attached = None;
        self.send_direct(GatewayServerFrame::HelloAck {
            runtime_session_id: hub.id.clone(),
            tier: self.shared.tier,
            degraded_reasons: self.shared.degraded_reasons.clone(),
            model: self.shared.model.clone(),
        })
        .await?;
        for frame in &attachment.replay {
            self.send_text(frame).await?;
        }
        self.attached = Some(Attached {
            user,
            hub,
            live: attachment.live,
            last_sent: attachment.head,
        });
        Ok(())
    }

    /// A command of an attached client.
    async fn command(&mut self, attached: &Attached, frame: GatewayClientFrame) -> Served {
        let hub = &attached.hub;
        match frame {
            GatewayClientFrame::Hello { .. } => {
                // Routed to `hello` by the caller.
                Ok(())
            }
            GatewayClientFrame::SendTurn {
                content,
                client_turn_id,
            } => {
                if content.trim().is_empty() {
                    return self
                        .send_error(
                            GatewayErrorCode::MalformedFrame,
                            "send_turn needs non-empty content".into(),
                        )
                        .await;
                }
                match hub.enqueue(QueuedTurn {
                    content,
                    client_turn_id,
                }) {
                    Ok(()) => Ok(()),
                    Err(LaneRefusal::Full { depth }) => {
                        self.send_error(
                            GatewayErrorCode::Busy,
                            format!(
                                "session '{}' is busy: {depth} messages are already waiting; \
                                 try again when a turn finishes",
                                hub.id
                            ),
                        )
                        .await
                    }
                    Err(LaneRefusal::Closed) => {
                        self.send_error(
                            GatewayErrorCode::Internal,
                            "the gateway is shutting down; the message was not queued".into(),
                        )
                        .await
                    }
                }
            }
            GatewayClientFrame::CancelActiveTurn => match hub.cancel_active() {
                Some(turn_id) => {
                    tracing::info!(session = %hub.id, turn = %turn_id, "turn cancel requested");
                    Ok(())
                }
                None => {
                    self.send_error(
                        GatewayErrorCode::NoActiveTurn,
                        format!("no turn is running in session '{}'", hub.id),
                    )
                    .await
                }
            },
            GatewayClientFrame::NewSession => {
                match create_session(&self.shared, &attached.user).await {
                    Ok(id) => self.attach(attached.user.clone(), &id, None).await,
                    Err((code, message)) => self.send_error(code, message).await,
                }
            }
            GatewayClientFrame::ApprovalResponse {
                request_id,
                approved,
            } => {
                if hub.answer_approval(&request_id, approved) {
                    Ok(())
                } else {
                    self.send_error(
                        GatewayErrorCode::UnknownApproval,
                        format!(
                            "no approval request '{request_id}' is waiting in session '{}' \
                             (it may have timed out or been answered)",
                            hub.id
                        ),
                    )
                    .await
                }
            }
            GatewayClientFrame::HealthCheck => {
                let health = self.shared.health();
                self.send_direct(GatewayServerFrame::HealthStatus {
                    healthy: health.healthy,
                    tier: health.tier,
                    degraded_reasons: health.degraded_reasons,
                    active_sessions: health.active_sessions,
                    uptime_secs: health.uptime_secs,
                })
                .await
            }
            GatewayClientFrame::ListSessions => {
                match self.shared.directory.list(&attached.user).await {
                    Ok(records) => {
                        let sessions = records
                            .into_iter()
                            .map(|record| SessionSummary {
                                current: record.session_id == hub.id,
                                session_id: record.session_id,
                                updated_at_ms: record.updated_at_ms,
                            })
                            .collect();
                        self.send_direct(GatewayServerFrame::Sessions { sessions })
                            .await
                    }
                    Err(error) => {
                        self.send_error(GatewayErrorCode::Internal, error.to_string())
                            .await
                    }
                }
            }
        }
    }

    /// Sends a frame of the attached session, catching up from the replay
    /// buffer if this client fell behind the broadcast.
    async fn forward_live(&mut self, live: Result<Frame, RecvError>) -> Served {
        let Some(attached) = self.attached.as_mut() else {
            return Ok(());
        };
        match live {
            Ok(frame) => {
                if frame.seq <= attached.last_sent {
                    return Ok(());
                }
                attached.last_sent = frame.seq;
                self.send_text(&frame).await
            }
            Err(RecvError::Lagged(_)) => {
                let catch_up = attached.hub.outbox.attach(Some(attached.last_sent));
                attached.live = catch_up.live;
                attached.last_sent = catch_up.head;
                for frame in &catch_up.replay {
                    self.send_text(frame).await?;
                }
                Ok(())
            }
            // The session's stream ended: the gateway is stopping.
            Err(RecvError::Closed) => Err(Closed),
        }
    }

    /// Lets a client see the end of a turn that shutdown cancelled, then
    /// closes.
    async fn close_for_shutdown(&mut self) -> Served {
        if let Some(busy) = self.attached.as_ref().map(|a| a.hub.is_busy()) {
            let grace = tokio::time::sleep(SHUTDOWN_GRACE);
            tokio::pin!(grace);
            let mut waiting = busy;
            while waiting {
                let live = tokio::select! {
                    () = &mut grace => break,
                    live = next_live(&mut self.attached) => live,
                };
                waiting = !matches!(&live, Ok(frame) if frame.terminal);
                self.forward_live(live).await?;
            }
        }
        self.close(close_code::AWAY, "the gateway is shutting down".into())
            .await
    }

    async fn close(&mut self, code: u16, reason: String) -> Served {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // The peer may already be gone; the connection ends either way.
        let _ = self.socket.send(Message::Close(Some(frame))).await;
        Err(Closed)
    }

    async fn send_error(&mut self, code: GatewayErrorCode, message: String) -> Served {
        self.send_direct(GatewayServerFrame::Error { code, message })
            .await
    }

    /// Sends a frame for this connection only (sequence number 0).
    async fn send_direct(&mut self, frame: GatewayServerFrame) -> Served {
        let text = encode(&GatewayServerMessage {
            seq: CONNECTION_SEQ,
            frame,
        });
        self.socket
            .send(Message::Text(text))
            .await
            .map_err(|_| Closed)
    }

    async fn send_text(&mut self, frame: &Frame) -> Served {
        self.socket
            .send(Message::Text(frame.text.clone()))
            .await
            .map_err(|_| Closed)
    }
}
