//! Bad input to a running guest: malformed, unknown, wrongly typed,
//! oversized and binary gateway frames and frames before `Hello`, each
//! answered with a clear error frame or a close carrying a reason while a
//! well-behaved client on another session completes its turns; malformed
//! tool calls from the model, reported to the model and the client; and the
//! envelope errors `errors.rs` does not cover (wrong JSON types, invalid
//! values).

use channels::{ClientEvent, ClientEvents, GatewayClient};
use futures::{SinkExt, StreamExt};
use test_support::{FakeLlm, Script, ScriptedReply, ScriptedToolCall, WhenExhausted, WireFormat};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use types::protocol::bootstrap::MAX_ENVELOPE_BYTES;
use types::protocol::framing::encode_frame;
use types::protocol::gateway::{
    GatewayClientFrame, GatewayEndpoint, GatewayErrorCode, GatewayServerFrame, GatewayServerMessage,
};
use types::{SessionId, UserId};

use crate::{
    PATIENCE, agent_config, connect, envelope, finish, frame, spawn_vm, turn, wait_for_endpoint,
};

/// The gateway's default frame cap (`GatewayLimits::max_frame_bytes`);
/// the transport refuses frames past four times this.
const MAX_FRAME_BYTES: usize = 256 * 1024;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn raw(endpoint: &GatewayEndpoint) -> Ws {
    let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(&endpoint.url))
        .await
        .expect("connected in time")
        .unwrap();
    ws
}

fn text(frame: &GatewayClientFrame) -> Message {
    Message::text(serde_json::to_string(frame).unwrap())
}

fn hello(endpoint: &GatewayEndpoint, session: Option<SessionId>) -> GatewayClientFrame {
    GatewayClientFrame::Hello {
        user_id: UserId::parse("alice").unwrap(),
        session_id: session,
        token: endpoint.token.clone(),
        resume_from: None,
        new_session: false,
    }
}

/// What the raw connection receives next.
#[derive(Debug)]
enum Received {
    Frame(GatewayServerMessage),
    Closed(Option<CloseFrame>),
}

async fn receive(ws: &mut Ws) -> Received {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the gateway answered in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Received::Frame(serde_json::from_str(text.as_str()).unwrap());
            }
            Some(Ok(Message::Close(close))) => return Received::Closed(close),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("unexpected message {other:?}"),
            Some(Err(_)) | None => return Received::Closed(None),
        }
    }
}

async fn frame_of(ws: &mut Ws) -> GatewayServerFrame {
    match receive(ws).await {
        Received::Frame(message) => message.frame,
        Received::Closed(close) => panic!("closed instead of answering: {close:?}"),
    }
}

/// The next frame must be an error with `code`; returns its message.
async fn error_of(ws: &mut Ws, code: GatewayErrorCode) -> String {
    match frame_of(ws).await {
        GatewayServerFrame::Error { code: got, message } if got == code => message,
        other => panic!("expected a {code:?} error, got {other:?}"),
    }
}

async fn session_of(ws: &mut Ws) -> SessionId {
    match frame_of(ws).await {
        GatewayServerFrame::HelloAck {
            runtime_session_id, ..
        } => runtime_session_id,
        other => panic!("expected a hello ack, got {other:?}"),
    }
}

/// The connection must be closed now, with `code` and a reason.
async fn closed_with(ws: &mut Ws, code: CloseCode) -> String {
    match receive(ws).await {
        Received::Closed(Some(close)) => {
            assert_eq!(close.code, code, "{close:?}");
            assert!(!close.reason.is_empty(), "a close reason is given");
            close.reason.to_string()
        }
        other => panic!("expected a close frame with {code:?}, got {other:?}"),
    }
}

/// A frame sent first on a fresh connection: an error with `code` and a
/// policy close whose reason says why.
async fn refused_before_hello(
    endpoint: &GatewayEndpoint,
    first: Message,
    code: GatewayErrorCode,
) -> String {
    let mut ws = raw(endpoint).await;
    ws.send(first).await.unwrap();
    let message = error_of(&mut ws, code).await;
    let reason = closed_with(&mut ws, CloseCode::Policy).await;
    let start: String = message.chars().take(20).collect();
    assert!(reason.contains(&start), "{reason}");
    message
}

/// Waits for the first streamed delta of the good client's turn.
async fn first_delta(events: &mut ClientEvents) {
    loop {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("the turn streamed in time")
            .expect("the client is open");
        if let ClientEvent::Frame(message) = event
            && let GatewayServerFrame::AssistantDelta { .. } = message.frame
        {
            return;
        }
    }
}

/// The rest of the good client's turn: its final message.
async fn completion(events: &mut ClientEvents) -> String {
    loop {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("the turn finished in time")
            .expect("the client is open");
        let ClientEvent::Frame(message) = event else {
            continue;
        };
        match message.frame {
            GatewayServerFrame::TurnCompleted { final_message, .. } => return final_message,
            GatewayServerFrame::Error { message, .. } => panic!("good turn failed: {message}"),
            _ => {}
        }
    }
}

async fn send_turn(client: &GatewayClient, content: &str) {
    client
        .send_frame(GatewayClientFrame::SendTurn {
            content: content.into(),
            client_turn_id: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_frames_get_clear_errors_while_another_session_keeps_serving() {
    // The good client's first answer streams slowly, so the bad frames
    // arrive while its turn runs; everything after is echoed.
    let llm = FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![ScriptedReply::text("A slow and steady answer").with_chunk_delay_ms(60)],
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let mut guest = spawn_vm(
        home.path(),
        &frame(&envelope(&workspace, agent_config(&llm))),
    )
    .await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;
    let endpoint =
        GatewayEndpoint::parse(&std::fs::read_to_string(&endpoint_file).unwrap()).unwrap();

    let (good, mut good_events, good_session) = connect(endpoint_file.clone(), None).await;
    send_turn(&good, "tell me slowly").await;
    first_delta(&mut good_events).await;

    // Frames before hello: an error, then a policy close naming it.
    let message = refused_before_hello(
        &endpoint,
        text(&GatewayClientFrame::HealthCheck),
        GatewayErrorCode::HelloRequired,
    )
    .await;
    assert!(message.contains("first frame must be a hello"), "{message}");
    let message = refused_before_hello(
        &endpoint,
        Message::text("{\"type\": \"hello\", "),
        GatewayErrorCode::MalformedFrame,
    )
    .await;
    assert!(message.contains("the frame was rejected"), "{message}");
    let message = refused_before_hello(
        &endpoint,
        Message::binary(vec![0u8, 159, 146, 150]),
        GatewayErrorCode::MalformedFrame,
    )
    .await;
    assert!(message.contains("binary frames"), "{message}");
    let mut wrong_token = hello(&endpoint, None);
    if let GatewayClientFrame::Hello { token, .. } = &mut wrong_token {
        *token = "not-the-token".into();
    }
    let message = refused_before_hello(
        &endpoint,
        text(&wrong_token),
        GatewayErrorCode::Unauthorized,
    )
    .await;
    assert!(message.contains("token is wrong"), "{message}");
    assert!(!message.contains("not-the-token"), "{message}");

    // An authenticated client on a session of its own.
    let mut ws = raw(&endpoint).await;
    ws.send(text(&hello(&endpoint, None))).await.unwrap();
    session_of(&mut ws).await;
    ws.send(text(&GatewayClientFrame::NewSession))
        .await
        .unwrap();
    let bad_session = session_of(&mut ws).await;
    assert_ne!(bad_session, good_session);

    // Each bad frame gets an error; the connection lives on.
    ws.send(Message::text("{not json")).await.unwrap();
    let message = error_of(&mut ws, GatewayErrorCode::MalformedFrame).await;
    assert!(message.contains("key must be a string"), "{message}");
    ws.send(Message::text(r#"{"type": "launch_missiles"}"#))
        .await
        .unwrap();
    let message = error_of(&mut ws, GatewayErrorCode::MalformedFrame).await;
    assert!(
        message.contains("unknown variant `launch_missiles`"),
        "{message}"
    );
    ws.send(Message::text(r#"{"type": "send_turn", "content": 42}"#))
        .await
        .unwrap();
    let message = error_of(&mut ws, GatewayErrorCode::MalformedFrame).await;
    assert!(message.contains("invalid type: integer `42`"), "{message}");
    ws.send(Message::text(r#"{"content": "no type"}"#))
        .await
        .unwrap();
    let message = error_of(&mut ws, GatewayErrorCode::MalformedFrame).await;
    assert!(message.contains("missing field `type`"), "{message}");
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let message = error_of(&mut ws, GatewayErrorCode::MalformedFrame).await;
    assert!(message.contains("binary frames"), "{message}");
    let oversized = GatewayClientFrame::SendTurn {
        content: "x".repeat(MAX_FRAME_BYTES + 10),
        client_turn_id: None,
    };
    ws.send(text(&oversized)).await.unwrap();
    let message = error_of(&mut ws, GatewayErrorCode::FrameTooLarge).await;
    assert!(
        message.contains(&format!("the gateway accepts at most {MAX_FRAME_BYTES}")),
        "{message}"
    );
    // Still serving this connection: a turn on its own session.
    ws.send(text(&GatewayClientFrame::SendTurn {
        content: "after the junk".into(),
        client_turn_id: None,
    }))
    .await
    .unwrap();
    loop {
        match frame_of(&mut ws).await {
            GatewayServerFrame::TurnCompleted { final_message, .. } => {
                assert_eq!(final_message, "You said: after the junk");
                break;
            }
            GatewayServerFrame::Error { message, .. } => panic!("turn failed: {message}"),
            _ => {}
        }
    }
    // Past the transport's cap the socket cannot go on: a close with
    // "message too big" and a reason. The gateway closes after reading the
    // frame's header, so the megabytes still in flight may meet a TCP reset
    // on this side; the close frame arrived before it and is still read.
    match ws
        .send(Message::text("y".repeat(4 * MAX_FRAME_BYTES + 1)))
        .await
    {
        Ok(()) => {}
        Err(tungstenite::Error::Io(error))
            if matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) => {}
        Err(other) => panic!("sending the oversized frame failed: {other}"),
    }
    let reason = closed_with(&mut ws, CloseCode::Size).await;
    assert!(reason.contains("websocket error"), "{reason}");

    // The good client's turn finished untouched, and the next one works.
    assert_eq!(
        completion(&mut good_events).await,
        "A slow and steady answer"
    );
    let (reply, _) = turn(&good, &mut good_events, "and again").await;
    assert_eq!(reply, "You said: and again");
    assert!(guest.try_wait().unwrap().is_none(), "oxydra-vm still runs");
    good.shutdown().await;
}

/// What the client saw of a turn with failing tool calls.
async fn tool_turn(client: &GatewayClient, events: &mut ClientEvents) -> (Vec<bool>, String) {
    send_turn(client, "do three things").await;
    let mut finished = Vec::new();
    loop {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("the turn finished in time")
            .expect("the client is open");
        let ClientEvent::Frame(message) = event else {
            continue;
        };
        match message.frame {
            GatewayServerFrame::ToolCallFinished { ok, .. } => finished.push(ok),
            GatewayServerFrame::TurnCompleted { final_message, .. } => {
                return (finished, final_message);
            }
            GatewayServerFrame::Error { message, .. } => panic!("turn failed: {message}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn malformed_tool_calls_are_reported_to_the_model_and_the_next_turn_works() {
    let llm = FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![
            ScriptedReply::tool_calls(vec![
                ScriptedToolCall::new("file_list", r#"{"path": "/shared""#),
                ScriptedToolCall::new("file_list", r#"{"path": 42}"#),
                ScriptedToolCall::new("launch_missiles", r#"{"target": "moon"}"#),
            ]),
            ScriptedReply::text("I will fix my calls."),
        ],
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let mut guest = spawn_vm(
        home.path(),
        &frame(&envelope(&workspace, agent_config(&llm))),
    )
    .await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;
    let (client, mut events, _) = connect(endpoint_file, None).await;

    let (finished, reply) = tool_turn(&client, &mut events).await;
    assert_eq!(finished, [false, false, false], "each call failed");
    assert_eq!(reply, "I will fix my calls.");

    // The model read one clear failure per call, in its order.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1].body["messages"].as_array().unwrap();
    let results: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(results.len(), 3, "{messages:?}");
    assert!(
        results[0].starts_with(
            "Tool execution failed: invalid arguments: the arguments are not valid JSON"
        ),
        "{}",
        results[0]
    );
    assert!(
        results[1].starts_with("Tool execution failed: invalid arguments: field 'path'"),
        "{}",
        results[1]
    );
    assert_eq!(
        results[2],
        "Tool execution failed: unknown tool 'launch_missiles'"
    );

    let (reply, tools) = turn(&client, &mut events, "just talk").await;
    assert_eq!(reply, "You said: just talk");
    assert!(tools.is_empty());
    assert!(guest.try_wait().unwrap().is_none(), "oxydra-vm still runs");
    client.shutdown().await;
}

/// An envelope that frames correctly but does not decode: exit 2 naming
/// the problem.
async fn rejected_envelope(edit: impl FnOnce(&mut serde_json::Value), expected: &[&str]) {
    let llm = FakeLlm::start(WireFormat::Openai).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let mut json = serde_json::to_value(envelope(&workspace, agent_config(&llm))).unwrap();
    edit(&mut json);
    let bytes = encode_frame(&serde_json::to_vec(&json).unwrap(), MAX_ENVELOPE_BYTES).unwrap();
    let (code, stderr) = finish(spawn_vm(home.path(), &bytes).await).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("the bootstrap envelope on stdin is invalid"),
        "{stderr}"
    );
    for needle in expected {
        assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    }
    assert!(!channels::endpoint_file_in(&workspace).exists());
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn envelopes_with_wrong_types_or_values_exit_2_naming_them() {
    rejected_envelope(
        |json| json["user_id"] = 42.into(),
        &["invalid type: integer `42`"],
    )
    .await;
    rejected_envelope(
        |json| json["user_id"] = "../bob".into(),
        &["invalid user id \"../bob\""],
    )
    .await;
    rejected_envelope(
        |json| json["sandbox_tier"] = "mainframe".into(),
        &["unknown variant `mainframe`"],
    )
    .await;
    rejected_envelope(
        |json| json["agent_config"]["runtime"]["max_turns"] = "many".into(),
        &["invalid type: string \"many\""],
    )
    .await;
    rejected_envelope(
        |json| json["credentials"] = serde_json::Value::Array(Vec::new()),
        &["invalid type: sequence"],
    )
    .await;
}

/// Keeps the frame-size constant honest against the gateway's default.
#[test]
fn the_frame_cap_used_here_is_the_gateways_default() {
    assert_eq!(
        gateway::GatewayLimits::default().max_frame_bytes,
        MAX_FRAME_BYTES
    );
}
