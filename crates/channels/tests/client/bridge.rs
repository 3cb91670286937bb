//! `bridge`: an adapter's actions reach the scripted gateway as client
//! frames; the gateway's frames and the link's news reach the adapter, in
//! order; an action the link cannot carry comes back as not sent.

use std::time::Duration;

use async_trait::async_trait;
use channels::{ConnectionState, GatewayClient, LinkEvent, LinkedChannel, bridge};
use tokio::sync::mpsc;
use types::Channel;
use types::channel::{
    ChannelHealthStatus, ChannelInboundEvent, ChannelListenStream, ChannelMetadata,
    ChannelOutboundEvent, InboundPayload,
};
use types::error::ChannelError;
use types::protocol::gateway::{GatewayClientFrame, GatewayServerFrame};

use crate::server::{ScriptedServer, msg};
use crate::{WAIT, accept_hello, fixed, steady_reconnect};

/// What the bridge delivered to the adapter.
#[derive(Debug)]
enum Delivered {
    Frame(ChannelOutboundEvent),
    Link(LinkEvent),
}

/// An adapter that records deliveries; its actions come from the test.
struct Recorder {
    delivered: mpsc::UnboundedSender<Delivered>,
}

#[async_trait]
impl Channel for Recorder {
    async fn send(&self, event: ChannelOutboundEvent) -> Result<(), ChannelError> {
        self.delivered
            .send(Delivered::Frame(event))
            .map_err(|_| ChannelError::Closed)
    }

    async fn listen(&self, _buffer_size: usize) -> Result<ChannelListenStream, ChannelError> {
        Err(ChannelError::Protocol(
            "the test hands the bridge its actions".into(),
        ))
    }

    async fn health_check(&self) -> Result<ChannelHealthStatus, ChannelError> {
        Ok(ChannelHealthStatus::Healthy)
    }
}

#[async_trait]
impl LinkedChannel for Recorder {
    async fn link_event(&self, event: LinkEvent) -> Result<(), ChannelError> {
        self.delivered
            .send(Delivered::Link(event))
            .map_err(|_| ChannelError::Closed)
    }
}

fn action(payload: InboundPayload) -> ChannelInboundEvent {
    ChannelInboundEvent {
        channel_id: "test".into(),
        sender_id: "alice".into(),
        channel_session_id: "s-1".into(),
        payload,
        metadata: ChannelMetadata::default(),
    }
}

async fn next(delivered: &mut mpsc::UnboundedReceiver<Delivered>) -> Delivered {
    tokio::time::timeout(WAIT, delivered.recv())
        .await
        .expect("a delivery in time")
        .expect("the bridge is running")
}

#[tokio::test]
async fn actions_become_frames_and_frames_reach_the_adapter_in_order() {
    let server = ScriptedServer::start().await;
    let mut config = fixed(&server);
    config.reconnect = steady_reconnect(Duration::from_millis(300), 1);
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let (drop_tx, drop_rx) = tokio::sync::oneshot::channel::<()>();
    let script = tokio::spawn(async move {
        let (mut conn, _) = accept_hello(&server).await;
        for _ in 0..2 {
            received_tx.send(conn.recv().await.unwrap()).unwrap();
        }
        for (seq, text) in (1..).zip(["Hel", "lo"]) {
            let delta = GatewayServerFrame::AssistantDelta { text: text.into() };
            conn.send(&msg(seq, delta)).await;
        }
        conn.send_raw(r#"{"seq":3,"frame":{"type":"from_the_future"}}"#)
            .await;
        drop_rx.await.unwrap();
        // The gateway goes away: the client reconnects once, then gives up.
        drop(conn);
        drop(server);
    });
    let (client, events) = GatewayClient::connect(config).await.unwrap();
    let (delivered_tx, mut delivered) = mpsc::unbounded_channel();
    let recorder = Recorder {
        delivered: delivered_tx,
    };
    let (actions, actions_rx) = mpsc::channel(8);
    let bridged = async {
        bridge(&recorder, actions_rx, &client, events)
            .await
            .unwrap();
    };
    let test = async {
        actions
            .send(action(InboundPayload::Message {
                text: "read this".into(),
                attachments: vec!["/shared/inbox/a.txt".into()],
            }))
            .await
            .unwrap();
        actions
            .send(action(InboundPayload::ListSessions))
            .await
            .unwrap();
        let frames = [
            received.recv().await.unwrap(),
            received.recv().await.unwrap(),
        ];
        assert_eq!(
            frames,
            [
                GatewayClientFrame::SendTurn {
                    content: "read this\n\nAttached files:\n- /shared/inbox/a.txt".into(),
                    client_turn_id: None,
                },
                GatewayClientFrame::ListSessions,
            ]
        );
        assert!(matches!(
            next(&mut delivered).await,
            Delivered::Link(LinkEvent::Connection(ConnectionState::Connected { .. }))
        ));
        match next(&mut delivered).await {
            Delivered::Frame(event) => assert!(
                matches!(event.frame, GatewayServerFrame::HelloAck { .. })
                    && event.channel_session_id == "s-1",
                "{event:?}"
            ),
            other => panic!("expected the HelloAck, got {other:?}"),
        }
        for text in ["Hel", "lo"] {
            match next(&mut delivered).await {
                Delivered::Frame(event) => assert_eq!(
                    event.frame,
                    GatewayServerFrame::AssistantDelta { text: text.into() }
                ),
                other => panic!("expected a delta, got {other:?}"),
            }
        }
        assert!(matches!(
            next(&mut delivered).await,
            Delivered::Link(LinkEvent::Undecodable { .. })
        ));
        drop_tx.send(()).unwrap();
        assert!(matches!(
            next(&mut delivered).await,
            Delivered::Link(LinkEvent::Connection(ConnectionState::Reconnecting { .. }))
        ));
        // While the link is down an action is not sent, and says so.
        actions.send(action(InboundPayload::Cancel)).await.unwrap();
        let mut not_sent = None;
        let mut closed = false;
        while not_sent.is_none() || !closed {
            match next(&mut delivered).await {
                Delivered::Link(LinkEvent::NotSent { payload, error }) => {
                    not_sent = Some((payload, error));
                }
                Delivered::Link(LinkEvent::Connection(ConnectionState::Closed { .. })) => {
                    closed = true;
                }
                Delivered::Link(LinkEvent::Connection(ConnectionState::Reconnecting {
                    ..
                })) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let (payload, error) = not_sent.unwrap();
        assert_eq!(payload, InboundPayload::Cancel);
        assert!(!error.is_empty());
    };
    // The bridge ends once the client has stopped for good.
    tokio::time::timeout(WAIT, async { tokio::join!(bridged, test) })
        .await
        .expect("the bridge ends after the client gives up");
    script.await.unwrap();
}
