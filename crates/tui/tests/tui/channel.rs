//! `TuiChannel`: the terminal as a `Channel` adapter — actions out through
//! one listener, frames and link news in, in order, and a health that
//! follows the link and the terminal.

use std::time::Duration;

use channels::{ConnectionState, LinkEvent, LinkedChannel};
use tui::channel::CHANNEL_ID;
use tui::{TuiChannel, UiEvent};
use types::Channel;
use types::channel::{ChannelHealthStatus, ChannelMetadata, ChannelOutboundEvent, InboundPayload};
use types::error::ChannelError;
use types::protocol::gateway::GatewayServerFrame;

fn alice() -> types::ids::UserId {
    types::ids::UserId::parse("alice").unwrap()
}

fn message(text: &str) -> InboundPayload {
    InboundPayload::Message {
        text: text.into(),
        attachments: Vec::new(),
    }
}

#[tokio::test]
async fn actions_go_to_the_one_listener() {
    let (channel, _screen) = TuiChannel::new(alice(), 8);
    let error = channel.submit(message("too early")).unwrap_err();
    assert!(error.contains("not linked"), "{error}");

    let mut actions = channel.listen(2).await.unwrap();
    let second = channel.listen(2).await.unwrap_err();
    assert!(matches!(second, ChannelError::Protocol(_)), "{second:?}");
    channel
        .link_event(LinkEvent::Connection(ConnectionState::Connected {
            session_id: "s-1".into(),
        }))
        .await
        .unwrap();
    channel.submit(message("hello")).unwrap();
    channel.submit(InboundPayload::Cancel).unwrap();
    // The listener's buffer (2) is full: the third action is refused.
    let error = channel.submit(InboundPayload::NewSession).unwrap_err();
    assert!(error.contains("try again"), "{error}");
    let first = actions.recv().await.unwrap();
    assert_eq!(
        (
            first.channel_id.as_str(),
            first.sender_id.as_str(),
            first.channel_session_id.as_str()
        ),
        (CHANNEL_ID, "alice", "s-1")
    );
    assert_eq!(first.payload, message("hello"));
    assert_eq!(
        actions.recv().await.unwrap().payload,
        InboundPayload::Cancel
    );

    // A listener that went away frees the place for a new one.
    drop(actions);
    let error = channel.submit(message("lost?")).unwrap_err();
    assert!(error.contains("stopped"), "{error}");
    let mut actions = channel.listen(4).await.unwrap();
    channel.submit(InboundPayload::ListSessions).unwrap();
    assert_eq!(
        actions.recv().await.unwrap().payload,
        InboundPayload::ListSessions
    );
}

#[tokio::test]
async fn frames_and_link_news_reach_the_screen_in_order() {
    let (channel, mut screen) = TuiChannel::new(alice(), 8);
    assert!(matches!(
        channel.health_check().await.unwrap(),
        ChannelHealthStatus::Degraded { .. }
    ));
    let connected = LinkEvent::Connection(ConnectionState::Connected {
        session_id: "s-1".into(),
    });
    channel.link_event(connected.clone()).await.unwrap();
    let delta = GatewayServerFrame::AssistantDelta { text: "hi".into() };
    channel
        .send(ChannelOutboundEvent {
            channel_session_id: "s-1".into(),
            frame: delta.clone(),
            metadata: ChannelMetadata::default(),
        })
        .await
        .unwrap();
    assert_eq!(screen.recv().await.unwrap(), UiEvent::Link(connected));
    assert_eq!(screen.recv().await.unwrap(), UiEvent::Frame(delta));
    assert_eq!(
        channel.health_check().await.unwrap(),
        ChannelHealthStatus::Healthy
    );

    channel
        .link_event(LinkEvent::Connection(ConnectionState::Reconnecting {
            attempt: 2,
            retry_in: Duration::from_millis(200),
            reason: "connection reset".into(),
        }))
        .await
        .unwrap();
    assert!(matches!(
        channel.health_check().await.unwrap(),
        ChannelHealthStatus::Degraded { reason } if reason.contains("connection reset")
    ));

    // The terminal closed: deliveries fail and the channel says why.
    drop(screen);
    let error = channel
        .send(ChannelOutboundEvent {
            channel_session_id: "s-1".into(),
            frame: GatewayServerFrame::AssistantDelta {
                text: "lost".into(),
            },
            metadata: ChannelMetadata::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(error, ChannelError::Closed);
    assert_eq!(
        channel.health_check().await.unwrap(),
        ChannelHealthStatus::Unhealthy {
            reason: "the terminal has closed".into()
        }
    );
}
