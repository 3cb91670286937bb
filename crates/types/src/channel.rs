//! The `Channel` trait: an adapter between a chat surface (TUI, Telegram,
//! …) and the gateway. Adapters never call the runtime directly.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::ChannelError;
use crate::protocol::gateway::GatewayServerFrame;

/// Platform details that travel alongside a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// What a user did on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InboundPayload {
    Message {
        text: String,
        /// References to files already placed in the user's workspace.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
    },
    Cancel,
    NewSession,
    ApprovalResponse {
        request_id: String,
        approved: bool,
    },
    /// Asked for the list of their sessions.
    ListSessions,
    /// Asked how the gateway is doing.
    HealthCheck,
}

/// A user's action, as an adapter hands it to the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInboundEvent {
    pub channel_id: String,
    /// The platform's id of the sender (checked against the allowlist).
    pub sender_id: String,
    /// The platform's conversation (chat, thread) id.
    pub channel_session_id: String,
    pub payload: InboundPayload,
    #[serde(default)]
    pub metadata: ChannelMetadata,
}

/// Something the agent says, for the adapter to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelOutboundEvent {
    pub channel_session_id: String,
    pub frame: GatewayServerFrame,
    #[serde(default)]
    pub metadata: ChannelMetadata,
}

/// Proof that the platform accepted a delivery (one id per message when a
/// long reply was split).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDeliveryReceipt {
    pub channel_id: String,
    pub message_ids: Vec<String>,
}

/// An adapter's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChannelHealthStatus {
    Healthy,
    Degraded { reason: String },
    Unhealthy { reason: String },
}

/// Inbound events from an adapter, through a bounded channel.
pub type ChannelListenStream = mpsc::Receiver<ChannelInboundEvent>;

/// A chat surface.
#[async_trait]
pub trait Channel: Send + Sync {
    async fn send(&self, event: ChannelOutboundEvent) -> Result<(), ChannelError>;
    async fn listen(&self, buffer_size: usize) -> Result<ChannelListenStream, ChannelError>;
    async fn health_check(&self) -> Result<ChannelHealthStatus, ChannelError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;

    #[test]
    fn channel_types_round_trip() {
        let metadata = ChannelMetadata {
            message_id: Some("m1".into()),
            thread_id: None,
            reply_to: Some("m0".into()),
        };
        for payload in [
            InboundPayload::Message {
                text: "hi".into(),
                attachments: vec!["/shared/inbox/a.png".into()],
            },
            InboundPayload::Cancel,
            InboundPayload::NewSession,
            InboundPayload::ApprovalResponse {
                request_id: "r".into(),
                approved: true,
            },
            InboundPayload::ListSessions,
            InboundPayload::HealthCheck,
        ] {
            round_trip(&ChannelInboundEvent {
                channel_id: "telegram".into(),
                sender_id: "12345678".into(),
                channel_session_id: "chat-9".into(),
                payload,
                metadata: metadata.clone(),
            });
        }
        round_trip(&ChannelOutboundEvent {
            channel_session_id: "chat-9".into(),
            frame: GatewayServerFrame::AssistantDelta { text: "yo".into() },
            metadata,
        });
        round_trip(&ChannelDeliveryReceipt {
            channel_id: "telegram".into(),
            message_ids: vec!["1".into(), "2".into()],
        });
        for status in [
            ChannelHealthStatus::Healthy,
            ChannelHealthStatus::Degraded {
                reason: "slow".into(),
            },
            ChannelHealthStatus::Unhealthy {
                reason: "401".into(),
            },
        ] {
            round_trip(&status);
        }
    }
}
