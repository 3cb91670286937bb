//! A scripted gateway for the end-to-end test: a real WebSocket server on
//! 127.0.0.1:0 that checks the token and answers every prompt with a
//! streamed, fixed reply, using the real frames of `types`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use types::protocol::gateway::{
    GatewayClientFrame, GatewayEndpoint, GatewayErrorCode, GatewayServerFrame,
    GatewayServerMessage, SessionSummary, TurnUsage,
};
use types::runner::SandboxTier;

pub const TOKEN: &str = "e2e-token";

/// The streamed reply, in pieces.
pub const REPLY: [&str; 4] = ["The answer ", "to your question ", "is ", "42."];

/// What the server saw, for the test to check.
#[derive(Debug, Default)]
pub struct Seen {
    pub frames: Vec<GatewayClientFrame>,
}

pub struct ScriptedGateway {
    pub endpoint: GatewayEndpoint,
    pub seen: Arc<Mutex<Seen>>,
}

impl ScriptedGateway {
    /// Binds and serves on the current runtime until the runtime stops.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = GatewayEndpoint {
            url: format!("ws://{}/ws", listener.local_addr().unwrap()),
            token: TOKEN.into(),
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let server_seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&server_seen);
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                        serve(ws, seen).await;
                    }
                });
            }
        });
        Self { endpoint, seen }
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, seq: u64, frame: GatewayServerFrame) -> bool {
    let text = serde_json::to_string(&GatewayServerMessage { seq, frame }).unwrap();
    ws.send(Message::text(text)).await.is_ok()
}

fn hello_ack(session: &str) -> GatewayServerFrame {
    GatewayServerFrame::HelloAck {
        runtime_session_id: session.into(),
        tier: SandboxTier::Process,
        degraded_reasons: vec![],
        model: "gpt-4.1".into(),
    }
}

async fn serve(mut ws: WebSocketStream<TcpStream>, seen: Arc<Mutex<Seen>>) {
    let mut session = 1u32;
    let mut seq = 0u64;
    let mut turn = 0u32;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: GatewayClientFrame = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(err) => {
                let error = GatewayServerFrame::Error {
                    code: GatewayErrorCode::MalformedFrame,
                    message: err.to_string(),
                };
                send(&mut ws, 0, error).await;
                continue;
            }
        };
        seen.lock().unwrap().frames.push(frame.clone());
        let ok = match frame {
            GatewayClientFrame::Hello { token, .. } if token.expose() != TOKEN => {
                let error = GatewayServerFrame::Error {
                    code: GatewayErrorCode::Unauthorized,
                    message: "wrong token".into(),
                };
                send(&mut ws, 0, error).await;
                return;
            }
            GatewayClientFrame::Hello { .. } => {
                send(&mut ws, 0, hello_ack(&format!("s-{session}"))).await
            }
            GatewayClientFrame::HealthCheck => {
                let status = GatewayServerFrame::HealthStatus {
                    healthy: true,
                    tier: SandboxTier::Process,
                    degraded_reasons: vec![],
                    active_sessions: 1,
                    uptime_secs: 3,
                };
                send(&mut ws, 0, status).await
            }
            GatewayClientFrame::SendTurn { .. } => {
                turn += 1;
                let turn_id = format!("t-{turn}");
                seq += 1;
                let mut ok = send(
                    &mut ws,
                    seq,
                    GatewayServerFrame::TurnStarted {
                        turn_id: turn_id.as_str().into(),
                        client_turn_id: None,
                    },
                )
                .await;
                for piece in REPLY {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    seq += 1;
                    ok &= send(
                        &mut ws,
                        seq,
                        GatewayServerFrame::AssistantDelta { text: piece.into() },
                    )
                    .await;
                }
                seq += 1;
                ok & send(
                    &mut ws,
                    seq,
                    GatewayServerFrame::TurnCompleted {
                        turn_id: turn_id.as_str().into(),
                        final_message: REPLY.concat(),
                        usage: TurnUsage {
                            input_tokens: 40,
                            output_tokens: 9,
                            total_tokens: 49,
                            cost_usd: 0.0003,
                            ..TurnUsage::default()
                        },
                    },
                )
                .await
            }
            GatewayClientFrame::NewSession => {
                session += 1;
                seq = 0;
                send(&mut ws, 0, hello_ack(&format!("s-{session}"))).await
            }
            GatewayClientFrame::ListSessions => {
                let sessions = (1..=session)
                    .rev()
                    .map(|n| SessionSummary {
                        session_id: format!("s-{n}").into(),
                        updated_at_ms: 1_700_000_000_000,
                        current: n == session,
                    })
                    .collect();
                send(&mut ws, 0, GatewayServerFrame::Sessions { sessions }).await
            }
            GatewayClientFrame::CancelActiveTurn => {
                let error = GatewayServerFrame::Error {
                    code: GatewayErrorCode::NoActiveTurn,
                    message: "no turn is running".into(),
                };
                send(&mut ws, 0, error).await
            }
            GatewayClientFrame::ApprovalResponse { .. } => true,
        };
        if !ok {
            return;
        }
    }
}
