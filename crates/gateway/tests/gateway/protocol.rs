//! Authentication, malformed input, health, sessions and shutdown.

use std::time::Duration;

use gateway::{GatewayLimits, HealthReport};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use types::protocol::bootstrap::StartupDegradedReason;
use types::protocol::gateway::{GatewayClientFrame, GatewayErrorCode, GatewayServerFrame};
use types::runner::SandboxTier;
use types::{SecretString, SessionId, UserId};

use crate::support::{Harness, Options, assert_consecutive};
use futures::SinkExt;

fn hello_with(token: &str) -> GatewayClientFrame {
    GatewayClientFrame::Hello {
        user_id: UserId::parse("alice").unwrap(),
        session_id: None,
        token: SecretString::new(token),
        resume_from: None,
        new_session: false,
    }
}

/// Sends `text` as the first frame and returns the error frame's code and
/// message and the close reason.
async fn refused(harness: &Harness, text: &str) -> (GatewayErrorCode, String, String) {
    let mut client = harness.connect().await;
    client.send_text(text).await;
    let message = client.recv().await;
    assert_eq!(message.seq, 0);
    let GatewayServerFrame::Error { code, message } = message.frame else {
        panic!("expected an error, got {message:?}");
    };
    let close = client.expect_closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    (code, message, close.reason.to_string())
}

#[tokio::test]
async fn hello_ack_reports_session_tier_degraded_reasons_and_model() {
    let harness = Harness::start(vec![]).await;
    let mut client = harness.connect().await;
    client.send(&harness.hello("alice")).await;
    let ack = client.recv().await;
    let GatewayServerFrame::HelloAck {
        runtime_session_id,
        tier,
        degraded_reasons,
        model,
    } = ack.frame
    else {
        panic!("expected hello ack, got {ack:?}");
    };
    assert_eq!(ack.seq, 0);
    assert_eq!(tier, SandboxTier::Process);
    assert_eq!(
        degraded_reasons,
        [StartupDegradedReason::InsecureProcessTier]
    );
    assert_eq!(model.as_str(), "gpt-4.1");
    // A hello without a session id continues the user's latest session;
    // another user gets a session of their own.
    let (_again, same) = harness.attach("alice").await;
    assert_eq!(same, runtime_session_id);
    let (_bob, bobs) = harness.attach("bob").await;
    assert_ne!(bobs, runtime_session_id);
}

#[tokio::test]
async fn wrong_missing_or_absent_tokens_close_the_connection_with_a_reason() {
    let harness = Harness::start(vec![]).await;

    let wrong = serde_json::to_string(&hello_with("not-the-token")).unwrap();
    let (code, message, reason) = refused(&harness, &wrong).await;
    assert_eq!(code, GatewayErrorCode::Unauthorized);
    assert!(message.contains("token is wrong"), "{message}");
    assert!(message.contains("gateway-endpoint"), "{message}");
    assert!(
        reason.starts_with("unauthorized: the token is wrong"),
        "{reason}"
    );

    let empty = serde_json::to_string(&hello_with("")).unwrap();
    let (code, _, reason) = refused(&harness, &empty).await;
    assert_eq!(code, GatewayErrorCode::Unauthorized);
    assert!(reason.contains("has no token"), "{reason}");

    let (code, message, reason) = refused(&harness, r#"{"type":"hello","user_id":"alice"}"#).await;
    assert_eq!(code, GatewayErrorCode::MalformedFrame);
    assert!(message.contains("missing field `token`"), "{message}");
    assert!(reason.contains("missing field `token`"), "{reason}");

    let (code, _, reason) = refused(&harness, r#"{"type":"send_turn","content":"hi"}"#).await;
    assert_eq!(code, GatewayErrorCode::HelloRequired);
    assert!(reason.contains("first frame must be a hello"), "{reason}");

    // The server is unaffected: a correct hello still works.
    harness.attach("alice").await;
}

#[tokio::test]
async fn a_connection_that_never_says_hello_is_closed() {
    let harness = Harness::start_with(
        vec![],
        Options {
            limits: GatewayLimits {
                hello_timeout: Duration::from_millis(200),
                ..GatewayLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let mut client = harness.connect().await;
    let close = client.expect_closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(
        close.reason.contains("no hello within 0.2 seconds"),
        "{close:?}"
    );
}

#[tokio::test]
async fn malformed_unknown_and_oversized_frames_get_errors_and_the_connection_lives() {
    let harness = Harness::start_with(
        vec![],
        Options {
            limits: GatewayLimits {
                max_frame_bytes: 1024,
                ..GatewayLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (mut client, _) = harness.attach("alice").await;
    let oversized = format!(r#"{{"type":"send_turn","content":"{}"}}"#, "x".repeat(2000));
    let cases: [(&str, GatewayErrorCode, &str); 6] = [
        (
            "not json",
            GatewayErrorCode::MalformedFrame,
            "expected ident",
        ),
        (
            r#"{"type":"launch_missiles"}"#,
            GatewayErrorCode::MalformedFrame,
            "unknown variant `launch_missiles`",
        ),
        (
            r#"{"type":"send_turn","content":42}"#,
            GatewayErrorCode::MalformedFrame,
            "invalid type",
        ),
        (
            r#"{"type":"send_turn","content":"   "}"#,
            GatewayErrorCode::MalformedFrame,
            "non-empty content",
        ),
        (&oversized, GatewayErrorCode::FrameTooLarge, "at most 1024"),
        (
            r#"{"type":"approval_response","request_id":"nope","approved":true}"#,
            GatewayErrorCode::UnknownApproval,
            "no approval request 'nope'",
        ),
    ];
    for (text, expected_code, expected_text) in cases {
        client.send_text(text).await;
        let message = client.recv().await;
        assert_eq!(message.seq, 0, "{text}");
        match message.frame {
            GatewayServerFrame::Error { code, message } => {
                assert_eq!(code, expected_code, "{text}: {message}");
                assert!(message.contains(expected_text), "{text}: {message}");
            }
            other => panic!("{text}: expected an error, got {other:?}"),
        }
    }
    client
        .ws
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .unwrap();
    let message = client.recv().await;
    assert!(
        matches!(&message.frame, GatewayServerFrame::Error { code: GatewayErrorCode::MalformedFrame, message } if message.contains("binary")),
        "{message:?}"
    );
    client.send(&GatewayClientFrame::CancelActiveTurn).await;
    let message = client.recv().await;
    assert!(
        matches!(
            message.frame,
            GatewayServerFrame::Error {
                code: GatewayErrorCode::NoActiveTurn,
                ..
            }
        ),
        "{message:?}"
    );
    // Still connected and serving.
    client.turn("still there?").await;
    let frames = client.recv_turn().await;
    assert_eq!(
        crate::support::final_message(&frames),
        "You said: still there?"
    );

    // Beyond the transport cap the frame is not even read: the
    // connection is closed with "message too big".
    client.send_text(&"y".repeat(70 * 1024)).await;
    let close = client.expect_closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Size);
}

#[tokio::test]
async fn a_frame_breaking_the_websocket_protocol_is_closed_as_a_protocol_error() {
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::MaybeTlsStream;

    let harness = Harness::start(vec![]).await;
    let (mut client, _) = harness.attach("alice").await;
    // A masked text frame "hi" with a reserved bit (RSV2) set, which no
    // negotiated extension allows.
    let frame = [0x80 | 0x20 | 0x1, 0x80 | 2, 0, 0, 0, 0, b'h', b'i'];
    match client.ws.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp.write_all(&frame).await.unwrap(),
        _ => unreachable!("the test gateway is plain ws://"),
    }
    let close = client.expect_closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Protocol, "{close:?}");
    assert!(close.reason.contains("Reserved bits"), "{close:?}");
    // The gateway serves on.
    let (mut other, _) = harness.attach("bob").await;
    other.turn("still serving?").await;
    let frames = other.recv_turn().await;
    assert_eq!(
        crate::support::final_message(&frames),
        "You said: still serving?"
    );
}

#[tokio::test]
async fn health_answers_over_plain_http_and_as_a_frame() {
    let harness = Harness::start(vec![]).await;
    let (mut client, _) = harness.attach("alice").await;
    let url = format!("http://{}/health", harness.gateway.local_addr());
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let report: HealthReport = response.json().await.unwrap();
    assert!(report.healthy);
    assert_eq!(report.tier, SandboxTier::Process);
    assert_eq!(
        report.degraded_reasons,
        [StartupDegradedReason::InsecureProcessTier]
    );
    assert_eq!((report.active_sessions, report.connections), (1, 1));
    assert_eq!(report.busy_sessions, 0);

    client.send(&GatewayClientFrame::HealthCheck).await;
    let message = client.recv().await;
    assert_eq!(message.seq, 0);
    match message.frame {
        GatewayServerFrame::HealthStatus {
            healthy,
            tier,
            active_sessions,
            ..
        } => {
            assert!(healthy);
            assert_eq!(tier, SandboxTier::Process);
            assert_eq!(active_sessions, 1);
        }
        other => panic!("expected health, got {other:?}"),
    }
}

#[tokio::test]
async fn new_session_starts_fresh_and_old_sessions_stay_listed() {
    let harness = Harness::start(vec![]).await;
    let (mut client, first) = harness.attach("alice").await;
    client.turn("remember me").await;
    client.recv_turn().await;

    client.send(&GatewayClientFrame::NewSession).await;
    let second = client.expect_hello_ack().await;
    assert_ne!(second, first);
    client.turn("hello again").await;
    let frames = client.recv_turn().await;
    // A clean context: the new session's first request holds only the
    // system prompt and the new message.
    let last = harness.llm.requests().pop().unwrap().body;
    assert_eq!(last["messages"].as_array().unwrap().len(), 2, "{last}");
    // Its stream is numbered on without gaps.
    assert_consecutive(&frames);

    client.send(&GatewayClientFrame::ListSessions).await;
    let message = client.recv().await;
    let GatewayServerFrame::Sessions { sessions } = message.frame else {
        panic!("expected sessions, got {message:?}");
    };
    let listed: Vec<(SessionId, bool)> = sessions
        .into_iter()
        .map(|s| (s.session_id, s.current))
        .collect();
    assert_eq!(listed, [(second.clone(), true), (first.clone(), false)]);

    // The old session can be attached again by id.
    let (_, again) = harness
        .attach_with(GatewayClientFrame::Hello {
            user_id: UserId::parse("alice").unwrap(),
            session_id: Some(first.clone()),
            token: harness.endpoint.token.clone(),
            resume_from: None,
            new_session: false,
        })
        .await;
    assert_eq!(again, first);

    // A hello asking for a new session gets one instead of the latest (a
    // chat channel's first message from a new chat).
    let (_, fresh) = harness
        .attach_with(GatewayClientFrame::Hello {
            user_id: UserId::parse("alice").unwrap(),
            session_id: None,
            token: harness.endpoint.token.clone(),
            resume_from: None,
            new_session: true,
        })
        .await;
    assert!(fresh != first && fresh != second, "{fresh}");
    let (_, latest) = harness.attach("alice").await;
    assert_eq!(latest, fresh);
}

#[tokio::test]
async fn unknown_or_foreign_sessions_are_refused_but_the_connection_stays() {
    let harness = Harness::start(vec![]).await;
    let (_alice, alices) = harness.attach("alice").await;
    let mut client = harness.connect().await;
    for (user, session) in [("bob", alices.clone()), ("bob", SessionId::new("nope"))] {
        client
            .send(&GatewayClientFrame::Hello {
                user_id: UserId::parse(user).unwrap(),
                session_id: Some(session.clone()),
                token: harness.endpoint.token.clone(),
                resume_from: None,
                new_session: false,
            })
            .await;
        let message = client.recv().await;
        match message.frame {
            GatewayServerFrame::Error {
                code: GatewayErrorCode::UnknownSession,
                message,
            } => assert!(
                message.contains(&format!("no session '{session}'")),
                "{message}"
            ),
            other => panic!("expected unknown session, got {other:?}"),
        }
    }
    client.send(&harness.hello("bob")).await;
    let bobs = client.expect_hello_ack().await;
    assert_ne!(bobs, alices);
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503() {
    let harness = Harness::start_with(
        vec![],
        Options {
            limits: GatewayLimits {
                max_connections: 2,
                ..GatewayLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (_a, _) = harness.attach("alice").await;
    let (b, _) = harness.attach("alice").await;
    let refused = tokio_tungstenite::connect_async(harness.endpoint.url.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    // The slot is released before the server drops the socket, so once
    // the closed connection has ended a new one is accepted.
    let mut b = b;
    b.ws.close(None).await.unwrap();
    b.expect_closed().await;
    tokio_tungstenite::connect_async(harness.endpoint.url.as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_closes_connections_and_waits_for_them() {
    let harness = Harness::start(vec![]).await;
    let (mut client, _) = harness.attach("alice").await;
    let Harness { gateway, .. } = harness;
    let stopping = tokio::spawn(gateway.shutdown());
    let close = client.expect_closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    assert!(close.reason.contains("shutting down"), "{close:?}");
    stopping.await.unwrap().unwrap();
}
