//! A scripted gateway: a real WebSocket server on 127.0.0.1:0 whose test
//! decides, frame by frame, what it answers.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use types::protocol::gateway::{
    GatewayClientFrame, GatewayEndpoint, GatewayServerFrame, GatewayServerMessage,
};
use types::runner::SandboxTier;

pub const TOKEN: &str = "test-token";

pub struct ScriptedServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl ScriptedServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self { listener, addr }
    }

    pub fn endpoint(&self) -> GatewayEndpoint {
        GatewayEndpoint {
            url: format!("ws://{}/ws", self.addr),
            token: TOKEN.into(),
        }
    }

    pub async fn accept(&self) -> Conn {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("a connection in time")
            .unwrap();
        Conn {
            ws: tokio_tungstenite::accept_async(stream).await.unwrap(),
        }
    }
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
}

impl Conn {
    /// The next client frame; `None` when the client closed.
    pub async fn recv(&mut self) -> Option<GatewayClientFrame> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a client frame in time")?;
            match message.ok()? {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
                Message::Close(_) => return None,
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    pub async fn send(&mut self, message: &GatewayServerMessage) {
        let text = serde_json::to_string(message).unwrap();
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    pub async fn close(mut self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.to_owned().into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }
}

pub fn msg(seq: u64, frame: GatewayServerFrame) -> GatewayServerMessage {
    GatewayServerMessage { seq, frame }
}

pub fn ack(session: &str) -> GatewayServerMessage {
    msg(
        0,
        GatewayServerFrame::HelloAck {
            runtime_session_id: session.into(),
            tier: SandboxTier::Process,
            degraded_reasons: vec![],
            model: "gpt-4.1".into(),
        },
    )
}
