//! A chat with a guest through the real client library (`channels`),
//! shared by the `guest` and `runner` test binaries.

use std::path::PathBuf;
use std::time::Duration;

use channels::{ClientEvent, ClientEvents, EndpointSource, GatewayClient, GatewayClientConfig};
use test_support::{FakeLlm, Script, WhenExhausted, WireFormat};
use types::protocol::bootstrap::StartupDegradedReason;
use types::protocol::gateway::{GatewayClientFrame, GatewayServerFrame};
use types::runner::SandboxTier;
use types::{SessionId, UserId};

/// Bound on every wait of a chat; hitting it is a failure.
const CHAT_PATIENCE: Duration = Duration::from_secs(30);

/// A gateway client of alice's guest, attached to `session` (or her
/// latest); returns the session it attached to.
pub async fn connect(
    endpoint_file: PathBuf,
    session: Option<SessionId>,
) -> (GatewayClient, ClientEvents, SessionId) {
    let mut config = GatewayClientConfig::new(
        EndpointSource::File(endpoint_file),
        UserId::parse("alice").unwrap(),
    );
    config.session_id = session;
    let (client, events) = tokio::time::timeout(CHAT_PATIENCE, GatewayClient::connect(config))
        .await
        .expect("connected in time")
        .unwrap();
    let session = client.session_id().expect("attached once connected");
    (client, events, session)
}

/// Sends a turn, approving every privileged call it asks about; returns
/// its final message and the tools it ran (each must succeed).
pub async fn turn(
    client: &GatewayClient,
    events: &mut ClientEvents,
    text: &str,
) -> (String, Vec<String>) {
    let (reply, tools) = turn_outcomes(client, events, text).await;
    let tools = tools
        .into_iter()
        .map(|(name, ok)| {
            assert!(ok, "tool {name} failed");
            name
        })
        .collect();
    (reply, tools)
}

/// Like `turn`, but a tool may fail: each tool it ran with whether it
/// succeeded.
pub async fn turn_outcomes(
    client: &GatewayClient,
    events: &mut ClientEvents,
    text: &str,
) -> (String, Vec<(String, bool)>) {
    client
        .send_frame(GatewayClientFrame::SendTurn {
            content: text.into(),
            client_turn_id: None,
        })
        .await
        .unwrap();
    let mut tools = Vec::new();
    loop {
        let event = tokio::time::timeout(CHAT_PATIENCE, events.recv())
            .await
            .expect("the turn finished in time")
            .expect("the client is open");
        let ClientEvent::Frame(message) = event else {
            continue;
        };
        match message.frame {
            GatewayServerFrame::ToolCallFinished { name, ok, .. } => tools.push((name, ok)),
            GatewayServerFrame::ApprovalRequest { request_id, .. } => {
                client
                    .send_frame(GatewayClientFrame::ApprovalResponse {
                        request_id,
                        approved: true,
                    })
                    .await
                    .unwrap();
            }
            GatewayServerFrame::TurnCompleted { final_message, .. } => {
                return (final_message, tools);
            }
            GatewayServerFrame::Error { message, .. } => panic!("turn failed: {message}"),
            _ => {}
        }
    }
}

/// The guest's health report: its tier and why it is degraded.
pub async fn health(
    client: &GatewayClient,
    events: &mut ClientEvents,
) -> (SandboxTier, Vec<StartupDegradedReason>) {
    client
        .send_frame(GatewayClientFrame::HealthCheck)
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(CHAT_PATIENCE, events.recv())
            .await
            .expect("the health report came in time")
            .expect("the client is open");
        if let ClientEvent::Frame(message) = event
            && let GatewayServerFrame::HealthStatus {
                tier,
                degraded_reasons,
                ..
            } = message.frame
        {
            return (tier, degraded_reasons);
        }
    }
}

/// A fake LLM that answers every request by echoing it.
pub async fn echo_llm() -> FakeLlm {
    FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: Vec::new(),
    })
    .await
    .unwrap()
}
