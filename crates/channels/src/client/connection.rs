//! The connection task: handshake, the read/write loop, and reconnection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use types::protocol::gateway::{
    CONNECTION_SEQ, GatewayClientFrame, GatewayErrorCode, GatewayServerFrame, GatewayServerMessage,
};

use super::{ClientEvent, ConnectionState, GatewayClientConfig, SendRequest, Shared};
use crate::error::ChannelsError;

pub(super) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why `serve` returned.
enum Stop {
    /// The owner shut the client down or dropped the event receiver.
    Shutdown,
    /// The connection broke; reconnect.
    Lost(String),
}

/// Opens a socket to the current endpoint, sends `Hello` (reattaching to
/// the known session and resuming after the last seen sequence) and waits
/// for `HelloAck`.
pub(super) async fn handshake(
    config: &GatewayClientConfig,
    shared: &Shared,
) -> Result<(Socket, GatewayServerMessage), ChannelsError> {
    let endpoint = config.endpoint.resolve().await?;
    let url = endpoint.url.clone();
    let timeout_error = || ChannelsError::Connect {
        url: url.clone(),
        message: format!(
            "no answer within {} ms",
            config.handshake_timeout.as_millis()
        ),
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let connecting =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config), true);
    let (mut socket, _response) = tokio::time::timeout(config.handshake_timeout, connecting)
        .await
        .map_err(|_| timeout_error())?
        .map_err(|err| ChannelsError::Connect {
            url: url.clone(),
            message: err.to_string(),
        })?;
    let last_seq = shared.last_seq.load(Ordering::SeqCst);
    let hello = GatewayClientFrame::Hello {
        user_id: config.user_id.clone(),
        session_id: shared.session(),
        token: endpoint.token,
        resume_from: (last_seq != CONNECTION_SEQ).then_some(last_seq),
        // Only until the gateway has named the session.
        new_session: config.new_session && shared.session().is_none(),
    };
    write_frame(&mut socket, &hello)
        .await
        .map_err(|message| ChannelsError::Connect {
            url: url.clone(),
            message,
        })?;
    let answer = tokio::time::timeout(config.handshake_timeout, read_hello_ack(&mut socket, &url))
        .await
        .map_err(|_| timeout_error())??;
    Ok((socket, answer))
}

async fn read_hello_ack(
    socket: &mut Socket,
    url: &str,
) -> Result<GatewayServerMessage, ChannelsError> {
    loop {
        let message = match socket.next().await {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                return Err(ChannelsError::Connect {
                    url: url.to_owned(),
                    message: err.to_string(),
                });
            }
            None => {
                return Err(ChannelsError::Connect {
                    url: url.to_owned(),
                    message: "the gateway closed the connection before HelloAck".to_owned(),
                });
            }
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|frame| (frame.code, frame.reason.to_string()))
                    .unwrap_or((CloseCode::Status, String::new()));
                let message = if reason.is_empty() {
                    format!("closed with code {code}")
                } else {
                    reason
                };
                return Err(if code == CloseCode::Policy {
                    ChannelsError::Unauthorized { message }
                } else {
                    ChannelsError::Handshake { message }
                });
            }
            Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                continue;
            }
        };
        let reply: GatewayServerMessage =
            serde_json::from_str(text.as_str()).map_err(|err| ChannelsError::Handshake {
                message: format!("undecodable answer to Hello: {err}"),
            })?;
        return match reply.frame {
            GatewayServerFrame::HelloAck { .. } => Ok(reply),
            GatewayServerFrame::Error {
                code: GatewayErrorCode::Unauthorized,
                message,
            } => Err(ChannelsError::Unauthorized { message }),
            GatewayServerFrame::Error { code, message } => Err(ChannelsError::Handshake {
                message: format!("{message} ({})", error_code_name(code)),
            }),
            other => Err(ChannelsError::Handshake {
                message: format!("expected hello_ack, got {}", frame_name(&other)),
            }),
        };
    }
}

async fn write_frame(socket: &mut Socket, frame: &GatewayClientFrame) -> Result<(), String> {
    let text = serde_json::to_string(frame).map_err(|err| err.to_string())?;
    socket
        .send(Message::text(text))
        .await
        .map_err(|err| err.to_string())
}

/// The connection task's state.
pub(super) struct Connection {
    pub(super) config: GatewayClientConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) requests: mpsc::Receiver<SendRequest>,
    pub(super) events: mpsc::Sender<ClientEvent>,
    pub(super) cancel: CancellationToken,
}

/// A recorded handshake, waiting to be reported as events.
#[derive(Debug)]
pub(super) struct Connected {
    state: ConnectionState,
    hello_ack: GatewayServerMessage,
}

impl Connection {
    /// Serves the connection `connect` made (its handshake already
    /// recorded), reconnecting when it is lost.
    pub(super) async fn run(mut self, mut socket: Socket, first: Option<Connected>) {
        self.report(first).await;
        loop {
            let reason = match self.serve(&mut socket).await {
                Stop::Shutdown => {
                    // Best effort: the peer may already be gone.
                    let _ = socket.close(None).await;
                    self.closed("the client was shut down".to_owned()).await;
                    return;
                }
                Stop::Lost(reason) => reason,
            };
            tracing::info!(%reason, "gateway connection lost; reconnecting");
            match self.reconnect(reason).await {
                Some(new_socket) => socket = new_socket,
                None => return,
            }
        }
    }

    /// Records a successful handshake (session, sequence, state) without
    /// waiting, so `GatewayClient::connect` can return an attached client;
    /// the events are sent by `report`.
    pub(super) fn record_connected(
        &mut self,
        hello_ack: GatewayServerMessage,
    ) -> Option<Connected> {
        // `handshake` only returns a `HelloAck`, and connection frames
        // (seq 0) are never dropped as duplicates.
        let hello_ack = self.accept(hello_ack)?;
        let GatewayServerFrame::HelloAck {
            runtime_session_id: session_id,
            ..
        } = hello_ack.frame.clone()
        else {
            return None;
        };
        let state = ConnectionState::Connected { session_id };
        self.shared.set_state(state.clone());
        Some(Connected { state, hello_ack })
    }

    /// Tells the receiver about a recorded handshake.
    async fn report(&mut self, connected: Option<Connected>) {
        if let Some(Connected { state, hello_ack }) = connected {
            let _ = self.events.send(ClientEvent::Connection(state)).await;
            let _ = self.events.send(ClientEvent::Frame(hello_ack)).await;
        }
    }

    async fn connected(&mut self, hello_ack: GatewayServerMessage) {
        let connected = self.record_connected(hello_ack);
        self.report(connected).await;
    }

    async fn closed(&mut self, reason: String) {
        let state = ConnectionState::Closed { reason };
        self.shared.set_state(state.clone());
        // The receiver may be gone; then nobody needs to know.
        let _ = self.events.send(ClientEvent::Connection(state)).await;
    }

    /// Records what a frame says about the session and the sequence, and
    /// returns it unless it is a duplicate of one already delivered.
    fn accept(&self, message: GatewayServerMessage) -> Option<GatewayServerMessage> {
        if let GatewayServerFrame::HelloAck {
            runtime_session_id, ..
        } = &message.frame
        {
            let mut session = self
                .shared
                .session
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if session.as_ref() != Some(runtime_session_id) {
                // Another session (a new one, or the gateway did not know
                // the old one): its sequence numbers start afresh.
                *session = Some(runtime_session_id.clone());
                self.shared.last_seq.store(0, Ordering::SeqCst);
            }
        }
        if message.seq != CONNECTION_SEQ {
            let last = self.shared.last_seq.load(Ordering::SeqCst);
            if message.seq <= last {
                tracing::debug!(
                    seq = message.seq,
                    last,
                    "dropping a replayed duplicate frame"
                );
                return None;
            }
            self.shared.last_seq.store(message.seq, Ordering::SeqCst);
        }
        Some(message)
    }

    async fn serve(&mut self, socket: &mut Socket) -> Stop {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return Stop::Shutdown,
                request = self.requests.recv() => {
                    let Some(request) = request else { return Stop::Shutdown };
                    match write_frame(socket, &request.frame).await {
                        Ok(()) => {
                            let _ = request.ack.send(Ok(()));
                        }
                        Err(reason) => {
                            let _ = request.ack.send(Err(ChannelsError::NotConnected));
                            return Stop::Lost(reason);
                        }
                    }
                }
                incoming = socket.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(err)) => return Stop::Lost(err.to_string()),
                        None => return Stop::Lost("the gateway closed the connection".to_owned()),
                    };
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Close(frame) => {
                            let reason = frame
                                .map(|frame| frame.reason.to_string())
                                .filter(|reason| !reason.is_empty())
                                .unwrap_or_else(|| "the gateway closed the connection".to_owned());
                            return Stop::Lost(reason);
                        }
                        Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                    };
                    let event = match serde_json::from_str::<GatewayServerMessage>(text.as_str()) {
                        Ok(message) => match self.accept(message) {
                            Some(message) => ClientEvent::Frame(message),
                            None => continue,
                        },
                        Err(err) => ClientEvent::Undecodable {
                            message: format!("undecodable frame from the gateway: {err}"),
                        },
                    };
                    if self.events.send(event).await.is_err() {
                        return Stop::Shutdown;
                    }
                }
            }
        }
    }

    /// Reconnects with backoff. `None` when the client stops instead
    /// (shut down, refused, or out of attempts); the closed state has then
    /// been reported.
    async fn reconnect(&mut self, mut reason: String) -> Option<Socket> {
        let mut attempt = 1u32;
        loop {
            if !self.config.reconnect.allows(attempt) {
                let attempts = attempt - 1;
                self.closed(format!(
                    "gave up reconnecting after {attempts} attempts; last error: {reason}"
                ))
                .await;
                return None;
            }
            let delay = self.config.reconnect.delay(attempt);
            let state = ConnectionState::Reconnecting {
                attempt,
                retry_in: delay,
                reason: reason.clone(),
            };
            self.shared.set_state(state.clone());
            if self
                .events
                .send(ClientEvent::Connection(state))
                .await
                .is_err()
            {
                self.shared.set_state(ConnectionState::Closed {
                    reason: "the event receiver was dropped".to_owned(),
                });
                return None;
            }
            if !self.wait_refusing_sends(delay).await {
                self.closed("the client was shut down".to_owned()).await;
                return None;
            }
            let attempt_result = tokio::select! {
                () = self.cancel.cancelled() => None,
                result = handshake(&self.config, &self.shared) => Some(result),
            };
            match attempt_result {
                None => {
                    self.closed("the client was shut down".to_owned()).await;
                    return None;
                }
                Some(Ok((socket, hello_ack))) => {
                    tracing::info!(attempt, "reconnected to the gateway");
                    self.connected(hello_ack).await;
                    return Some(socket);
                }
                Some(Err(
                    err @ (ChannelsError::Unauthorized { .. }
                    | ChannelsError::EndpointMalformed { .. }
                    | ChannelsError::EndpointUnreadable { .. }),
                )) => {
                    self.closed(err.to_string()).await;
                    return None;
                }
                Some(Err(err)) => {
                    reason = err.to_string();
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// Sleeps for `delay`, answering every send with `NotConnected` so no
    /// frame waits for a connection the user cannot see. `false` when the
    /// client was shut down meanwhile.
    async fn wait_refusing_sends(&mut self, delay: std::time::Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                () = &mut sleep => return true,
                request = self.requests.recv() => match request {
                    Some(request) => {
                        let _ = request.ack.send(Err(ChannelsError::NotConnected));
                    }
                    None => return false,
                },
            }
        }
    }
}

/// The wire name of a frame, for error messages.
fn frame_name(frame: &GatewayServerFrame) -> String {
    serde_json::to_value(frame)
        .ok()
        .and_then(|value| {
            value
                .get("type")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "an unknown frame".to_owned())
}

fn error_code_name(code: GatewayErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}
