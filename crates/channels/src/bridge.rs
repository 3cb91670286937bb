//! The bridge between a channel adapter that runs outside the gateway's
//! process (the TUI, or any remote surface) and the gateway, through a
//! `GatewayClient`: the adapter's user actions (`Channel::listen`) become
//! client frames, and the gateway's frames are delivered with
//! `Channel::send`. What the `Channel` trait has no words for — how the
//! link is doing, an action that could not be sent — goes to
//! `LinkedChannel::link_event`, in order with the frames.

use async_trait::async_trait;
use types::Channel;
use types::channel::{
    ChannelInboundEvent, ChannelListenStream, ChannelMetadata, ChannelOutboundEvent, InboundPayload,
};
use types::error::ChannelError;
use types::protocol::gateway::GatewayClientFrame;

use crate::client::{ClientEvent, ClientEvents, ConnectionState, GatewayClient};

/// News about the link to the gateway, for the adapter to show.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    Connection(ConnectionState),
    /// The gateway said something this client cannot decode.
    Undecodable {
        message: String,
    },
    /// A user action did not reach the gateway; nothing was sent.
    NotSent {
        payload: InboundPayload,
        error: String,
    },
}

/// A channel adapter reached through a `GatewayClient`.
#[async_trait]
pub trait LinkedChannel: Channel {
    async fn link_event(&self, event: LinkEvent) -> Result<(), ChannelError>;
}

/// The client frame that carries a user's action to the gateway.
pub fn client_frame(payload: InboundPayload) -> GatewayClientFrame {
    match payload {
        InboundPayload::Message { text, attachments } => GatewayClientFrame::SendTurn {
            content: with_attachments(text, &attachments),
            client_turn_id: None,
        },
        InboundPayload::Cancel => GatewayClientFrame::CancelActiveTurn,
        InboundPayload::NewSession => GatewayClientFrame::NewSession,
        InboundPayload::ApprovalResponse {
            request_id,
            approved,
        } => GatewayClientFrame::ApprovalResponse {
            request_id,
            approved,
        },
        InboundPayload::ListSessions => GatewayClientFrame::ListSessions,
        InboundPayload::HealthCheck => GatewayClientFrame::HealthCheck,
    }
}

/// A turn's text names its attachments (files already in the user's
/// workspace): `SendTurn` carries text only.
fn with_attachments(text: String, attachments: &[String]) -> String {
    if attachments.is_empty() {
        return text;
    }
    let mut content = text;
    content.push_str("\n\nAttached files:");
    for path in attachments {
        content.push_str("\n- ");
        content.push_str(path);
    }
    content
}

/// Runs the bridge until the adapter's `actions` (from its `listen`) end,
/// the adapter refuses a delivery (its screen closed), or the client stops
/// for good. Actions and frames flow independently, so a slow write never
/// holds up the stream.
pub async fn bridge<C>(
    channel: &C,
    mut actions: ChannelListenStream,
    client: &GatewayClient,
    mut events: ClientEvents,
) -> Result<(), ChannelError>
where
    C: LinkedChannel + ?Sized,
{
    let forward_actions = async {
        while let Some(ChannelInboundEvent { payload, .. }) = actions.recv().await {
            if let Err(error) = client.send_frame(client_frame(payload.clone())).await {
                let error = error.to_string();
                channel
                    .link_event(LinkEvent::NotSent { payload, error })
                    .await?;
            }
        }
        Ok(())
    };
    let forward_events = async {
        while let Some(event) = events.recv().await {
            match event {
                ClientEvent::Frame(message) => {
                    channel
                        .send(ChannelOutboundEvent {
                            channel_session_id: client
                                .session_id()
                                .map(|id| id.to_string())
                                .unwrap_or_default(),
                            frame: message.frame,
                            metadata: ChannelMetadata::default(),
                        })
                        .await?;
                }
                ClientEvent::Connection(state) => {
                    channel.link_event(LinkEvent::Connection(state)).await?;
                }
                ClientEvent::Undecodable { message } => {
                    channel
                        .link_event(LinkEvent::Undecodable { message })
                        .await?;
                }
            }
        }
        Ok(())
    };
    // Whichever side ends first ends the bridge.
    tokio::select! {
        result = forward_actions => result,
        result = forward_events => result,
    }
}
