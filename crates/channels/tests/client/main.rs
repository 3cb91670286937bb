//! The gateway client against a scripted WebSocket server on 127.0.0.1:
//! real sockets, real frames from `types::protocol::gateway`.

mod bridge;
mod registry;
mod server;
#[cfg(feature = "telegram")]
mod telegram;

use std::time::Duration;

use channels::{
    ChannelsError, ClientEvent, ClientEvents, ConnectionState, EndpointSource, GatewayClient,
    GatewayClientConfig, ReconnectPolicy,
};
use server::{Conn, ScriptedServer, TOKEN, ack, msg};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use types::channel::ChannelHealthStatus;
use types::ids::UserId;
use types::protocol::gateway::{
    GatewayClientFrame, GatewayErrorCode, GatewayServerFrame, TurnUsage,
};

const WAIT: Duration = Duration::from_secs(10);

fn config(source: EndpointSource) -> GatewayClientConfig {
    let mut config = GatewayClientConfig::new(source, UserId::parse("alice").unwrap());
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_attempts: Some(50),
    };
    config.handshake_timeout = Duration::from_secs(5);
    config
}

/// Reconnection every `delay`, at most `attempts` times.
fn steady_reconnect(delay: Duration, attempts: u32) -> ReconnectPolicy {
    ReconnectPolicy {
        initial_delay: delay,
        max_delay: delay,
        max_attempts: Some(attempts),
    }
}

fn fixed(server: &ScriptedServer) -> GatewayClientConfig {
    config(EndpointSource::Fixed(server.endpoint()))
}

async fn next(events: &mut ClientEvents) -> ClientEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the event channel is open")
}

async fn next_frame(events: &mut ClientEvents) -> GatewayServerFrame {
    loop {
        match next(events).await {
            ClientEvent::Frame(message) => return message.frame,
            ClientEvent::Connection(_) => {}
            ClientEvent::Undecodable { message } => panic!("undecodable: {message}"),
        }
    }
}

async fn next_state(events: &mut ClientEvents) -> ConnectionState {
    loop {
        if let ClientEvent::Connection(state) = next(events).await {
            return state;
        }
    }
}

/// Accepts a connection and answers its `Hello` with a `HelloAck` for `s-1`.
async fn accept_hello(server: &ScriptedServer) -> (Conn, GatewayClientFrame) {
    let mut conn = server.accept().await;
    let hello = conn.recv().await.expect("a Hello frame");
    conn.send(&ack("s-1")).await;
    (conn, hello)
}

fn hello_parts(frame: GatewayClientFrame) -> (String, Option<String>, String, Option<u64>) {
    match frame {
        GatewayClientFrame::Hello {
            user_id,
            session_id,
            token,
            resume_from,
            new_session: false,
        } => (
            user_id.to_string(),
            session_id.map(|id| id.to_string()),
            token.expose().to_owned(),
            resume_from,
        ),
        other => panic!("expected Hello, got {other:?}"),
    }
}

fn usage() -> TurnUsage {
    TurnUsage {
        input_tokens: 3,
        output_tokens: 2,
        total_tokens: 5,
        cost_usd: 0.001,
        ..TurnUsage::default()
    }
}

#[tokio::test]
async fn connects_with_the_token_and_streams_a_turn() {
    let server = ScriptedServer::start().await;
    let config = fixed(&server);
    let script = tokio::spawn(async move {
        let (mut conn, hello) = accept_hello(&server).await;
        assert_eq!(
            hello_parts(hello),
            ("alice".into(), None, TOKEN.into(), None)
        );
        let turn = conn.recv().await.unwrap();
        assert_eq!(
            turn,
            GatewayClientFrame::SendTurn {
                content: "hi".into(),
                client_turn_id: None
            }
        );
        for message in [
            msg(
                1,
                GatewayServerFrame::TurnStarted {
                    turn_id: "t-1".into(),
                    client_turn_id: None,
                },
            ),
            msg(2, GatewayServerFrame::AssistantDelta { text: "Hel".into() }),
            msg(3, GatewayServerFrame::AssistantDelta { text: "lo".into() }),
            msg(
                4,
                GatewayServerFrame::TurnCompleted {
                    turn_id: "t-1".into(),
                    final_message: "Hello".into(),
                    usage: usage(),
                },
            ),
        ] {
            conn.send(&message).await;
        }
        // An unknown frame type: reported, and the connection stays.
        conn.send_raw(r#"{"seq":5,"type":"from_the_future"}"#).await;
        conn.send(&msg(
            5,
            GatewayServerFrame::AssistantDelta { text: "!".into() },
        ))
        .await;
        assert_eq!(conn.recv().await, None, "the client closes on shutdown");
    });

    let (client, mut events) = GatewayClient::connect(config).await.unwrap();
    // Attached as soon as `connect` returns, before any event is read.
    assert_eq!(client.session_id(), Some("s-1".into()));
    assert_eq!(client.health(), ChannelHealthStatus::Healthy);
    assert_eq!(
        next_state(&mut events).await,
        ConnectionState::Connected {
            session_id: "s-1".into()
        }
    );
    assert!(matches!(
        next_frame(&mut events).await,
        GatewayServerFrame::HelloAck { .. }
    ));
    assert_eq!(client.session_id(), Some("s-1".into()));
    assert_eq!(client.health(), ChannelHealthStatus::Healthy);
    client
        .send_frame(GatewayClientFrame::SendTurn {
            content: "hi".into(),
            client_turn_id: None,
        })
        .await
        .unwrap();
    assert!(matches!(
        next_frame(&mut events).await,
        GatewayServerFrame::TurnStarted { .. }
    ));
    let mut text = String::new();
    let final_message = loop {
        match next_frame(&mut events).await {
            GatewayServerFrame::AssistantDelta { text: delta } => text.push_str(&delta),
            GatewayServerFrame::TurnCompleted {
                final_message,
                usage: got,
                ..
            } => {
                assert_eq!(got, usage());
                break final_message;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(text, final_message);
    match next(&mut events).await {
        ClientEvent::Undecodable { message } => {
            assert!(message.contains("from_the_future"), "{message}");
        }
        other => panic!("expected an undecodable report, got {other:?}"),
    }
    assert_eq!(
        next_frame(&mut events).await,
        GatewayServerFrame::AssistantDelta { text: "!".into() }
    );
    assert_eq!(client.last_seq(), 5);
    client.shutdown().await;
    script.await.unwrap();
}

#[tokio::test]
async fn a_refused_token_is_a_clear_unauthorized_error() {
    let server = ScriptedServer::start().await;
    let config = fixed(&server);
    let script = tokio::spawn(async move {
        // Once with an error frame, once with only a policy close.
        let mut conn = server.accept().await;
        conn.recv().await.unwrap();
        conn.send(&msg(
            0,
            GatewayServerFrame::Error {
                code: GatewayErrorCode::Unauthorized,
                message: "wrong token".into(),
            },
        ))
        .await;
        conn.close(CloseCode::Policy, "wrong token").await;
        let mut conn = server.accept().await;
        conn.recv().await.unwrap();
        conn.close(CloseCode::Policy, "token required").await;
    });
    for expected in ["wrong token", "token required"] {
        let err = GatewayClient::connect(config.clone()).await.unwrap_err();
        assert_eq!(
            err,
            ChannelsError::Unauthorized {
                message: expected.into()
            }
        );
        assert!(!err.is_retriable());
        assert!(err.to_string().contains("refused"), "{err}");
    }
    script.await.unwrap();
}

#[tokio::test]
async fn nothing_listening_is_a_retriable_connect_error() {
    let server = ScriptedServer::start().await;
    let config = fixed(&server);
    drop(server);
    let err = GatewayClient::connect(config).await.unwrap_err();
    assert!(matches!(err, ChannelsError::Connect { .. }), "{err:?}");
    assert!(err.is_retriable());
}

#[tokio::test]
async fn endpoint_files_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway-endpoint");
    let err = GatewayClient::connect(config(EndpointSource::File(path.clone())))
        .await
        .unwrap_err();
    assert_eq!(err, ChannelsError::EndpointMissing { path: path.clone() });
    assert!(err.to_string().contains("not running"), "{err}");

    std::fs::write(&path, "ws://127.0.0.1:1/ws\n").unwrap();
    let err = channels::read_endpoint_file(&path).await.unwrap_err();
    assert!(
        matches!(err, ChannelsError::EndpointMalformed { .. }),
        "{err:?}"
    );
    std::fs::write(&path, "{\"url\":\"http://127.0.0.1:1/\",\"token\":\"t\"}").unwrap();
    let err = channels::read_endpoint_file(&path).await.unwrap_err();
    assert!(err.to_string().contains("not a ws://"), "{err}");

    let server = ScriptedServer::start().await;
    std::fs::write(&path, server.endpoint().to_line()).unwrap();
    let config = config(EndpointSource::File(path));
    let script = tokio::spawn(async move {
        let (_conn, hello) = accept_hello(&server).await;
        assert_eq!(hello_parts(hello).2, TOKEN);
    });
    let (client, _events) = GatewayClient::connect(config).await.unwrap();
    script.await.unwrap();
    client.shutdown().await;
}

/// The socket drops mid-stream: the client reconnects to the same session
/// with `resume_from` = the last sequence it saw, the replayed duplicate is
/// dropped, and the deltas add up to the final message exactly once.
#[tokio::test]
async fn reconnects_mid_stream_and_resumes_without_duplicates() {
    let server = ScriptedServer::start().await;
    let config = fixed(&server);
    let script = tokio::spawn(async move {
        let (mut conn, _) = accept_hello(&server).await;
        conn.send(&msg(
            1,
            GatewayServerFrame::TurnStarted {
                turn_id: "t-1".into(),
                client_turn_id: None,
            },
        ))
        .await;
        conn.send(&msg(
            2,
            GatewayServerFrame::AssistantDelta { text: "Hel".into() },
        ))
        .await;
        // Wait until the client saw seq 2 (it sends a frame after it).
        assert_eq!(conn.recv().await, Some(GatewayClientFrame::HealthCheck));
        drop(conn);

        let (mut conn, hello) = accept_hello(&server).await;
        assert_eq!(
            hello_parts(hello),
            ("alice".into(), Some("s-1".into()), TOKEN.into(), Some(2))
        );
        // A server replaying one frame too many: the client drops it.
        conn.send(&msg(
            2,
            GatewayServerFrame::AssistantDelta { text: "Hel".into() },
        ))
        .await;
        conn.send(&msg(
            3,
            GatewayServerFrame::AssistantDelta { text: "lo".into() },
        ))
        .await;
        conn.send(&msg(
            4,
            GatewayServerFrame::TurnCompleted {
                turn_id: "t-1".into(),
                final_message: "Hello".into(),
                usage: usage(),
            },
        ))
        .await;
        conn.recv().await;
    });

    let (client, mut events) = GatewayClient::connect(config).await.unwrap();
    let mut text = String::new();
    let mut states = Vec::new();
    let final_message = loop {
        match next(&mut events).await {
            ClientEvent::Connection(state) => states.push(state),
            ClientEvent::Frame(message) => match message.frame {
                GatewayServerFrame::AssistantDelta { text: delta } => {
                    text.push_str(&delta);
                    if message.seq == 2 {
                        client
                            .send_frame(GatewayClientFrame::HealthCheck)
                            .await
                            .unwrap();
                    }
                }
                GatewayServerFrame::TurnCompleted { final_message, .. } => break final_message,
                GatewayServerFrame::HelloAck { .. } | GatewayServerFrame::TurnStarted { .. } => {}
                other => panic!("unexpected {other:?}"),
            },
            ClientEvent::Undecodable { message } => panic!("{message}"),
        }
    };
    assert_eq!(text, final_message);
    assert_eq!(client.last_seq(), 4);
    assert!(matches!(
        states.first(),
        Some(ConnectionState::Connected { .. })
    ));
    assert!(
        states
            .iter()
            .any(|state| matches!(state, ConnectionState::Reconnecting { attempt: 1, .. })),
        "{states:?}"
    );
    assert!(
        matches!(states.last(), Some(ConnectionState::Connected { .. })),
        "{states:?}"
    );
    client.shutdown().await;
    script.await.unwrap();
}

/// While the connection is down, sends fail at once with `NotConnected`
/// instead of waiting or being sent later to a turn they were not meant for.
#[tokio::test]
async fn sends_while_reconnecting_fail_fast_and_the_client_gives_up_eventually() {
    let server = ScriptedServer::start().await;
    let mut config = fixed(&server);
    config.reconnect = steady_reconnect(Duration::from_millis(400), 2);
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    let script = tokio::spawn(async move {
        let (conn, _) = accept_hello(&server).await;
        accepted_tx.send(()).unwrap();
        drop(conn);
        // The server goes away entirely: every reconnection fails.
        drop(server);
    });
    let (client, mut events) = GatewayClient::connect(config).await.unwrap();
    accepted_rx.await.unwrap();
    script.await.unwrap();
    loop {
        if let ConnectionState::Reconnecting { .. } = next_state(&mut events).await {
            break;
        }
    }
    let err = client
        .send_frame(GatewayClientFrame::CancelActiveTurn)
        .await
        .unwrap_err();
    assert_eq!(err, ChannelsError::NotConnected);
    assert!(matches!(
        client.health(),
        ChannelHealthStatus::Degraded { .. }
    ));
    let closed = loop {
        if let ConnectionState::Closed { reason } = next_state(&mut events).await {
            break reason;
        }
    };
    assert!(
        closed.contains("gave up reconnecting after 2 attempts"),
        "{closed}"
    );
    let err = client
        .send_frame(GatewayClientFrame::HealthCheck)
        .await
        .unwrap_err();
    assert!(matches!(err, ChannelsError::Closed { .. }), "{err:?}");
    assert!(matches!(
        client.health(),
        ChannelHealthStatus::Unhealthy { .. }
    ));
}

/// A new session (another `HelloAck` session id) restarts the sequence, so
/// its first frames are not mistaken for duplicates.
#[tokio::test]
async fn a_new_session_restarts_the_sequence() {
    let server = ScriptedServer::start().await;
    let config = fixed(&server);
    let script = tokio::spawn(async move {
        let (mut conn, _) = accept_hello(&server).await;
        conn.send(&msg(
            7,
            GatewayServerFrame::AssistantDelta { text: "old".into() },
        ))
        .await;
        assert_eq!(conn.recv().await, Some(GatewayClientFrame::NewSession));
        conn.send(&ack("s-2")).await;
        conn.send(&msg(
            1,
            GatewayServerFrame::AssistantDelta { text: "new".into() },
        ))
        .await;
        conn.recv().await;
    });
    let (client, mut events) = GatewayClient::connect(config).await.unwrap();
    next_frame(&mut events).await;
    assert_eq!(
        next_frame(&mut events).await,
        GatewayServerFrame::AssistantDelta { text: "old".into() }
    );
    client
        .send_frame(GatewayClientFrame::NewSession)
        .await
        .unwrap();
    assert!(matches!(
        next_frame(&mut events).await,
        GatewayServerFrame::HelloAck { .. }
    ));
    assert_eq!(
        next_frame(&mut events).await,
        GatewayServerFrame::AssistantDelta { text: "new".into() }
    );
    assert_eq!(client.session_id(), Some("s-2".into()));
    assert_eq!(client.last_seq(), 1);
    client.shutdown().await;
    script.await.unwrap();
}

/// A token refused on reconnection (the guest restarted with a new one and
/// the client has a fixed token) stops the client with the reason.
#[tokio::test]
async fn a_refusal_while_reconnecting_closes_the_client() {
    let server = ScriptedServer::start().await;
    let config = fixed(&server);
    let script = tokio::spawn(async move {
        let (conn, _) = accept_hello(&server).await;
        drop(conn);
        let mut conn = server.accept().await;
        conn.recv().await.unwrap();
        conn.close(CloseCode::Policy, "stale token").await;
    });
    let (_client, mut events) = GatewayClient::connect(config).await.unwrap();
    let closed = loop {
        if let ConnectionState::Closed { reason } = next_state(&mut events).await {
            break reason;
        }
    };
    assert!(closed.contains("stale token"), "{closed}");
    script.await.unwrap();
}
