//! Reconnecting with `resume_from`: replay of missed frames, the latest
//! terminal state when too far behind, and live continuation.

use gateway::GatewayLimits;
use test_support::ScriptedReply;
use types::UserId;
use types::protocol::gateway::{GatewayClientFrame, GatewayServerFrame, GatewayServerMessage};

use crate::support::{Harness, Options, assert_consecutive, deltas, final_message, slow_answer};

fn resume(harness: &Harness, session: &types::SessionId, from: u64) -> GatewayClientFrame {
    GatewayClientFrame::Hello {
        user_id: UserId::parse("alice").unwrap(),
        session_id: Some(session.clone()),
        token: harness.endpoint.token.clone(),
        resume_from: Some(from),
        new_session: false,
    }
}

#[tokio::test]
async fn reconnecting_mid_stream_loses_and_repeats_nothing() {
    let (text, reply) = slow_answer(40, 30);
    let harness = Harness::start(vec![reply]).await;
    let (mut client, session) = harness.attach("alice").await;
    client.turn("stream something").await;
    let mut before: Vec<GatewayServerMessage> = Vec::new();
    while before
        .iter()
        .filter(|m| matches!(m.frame, GatewayServerFrame::AssistantDelta { .. }))
        .count()
        < 5
    {
        before.push(client.recv().await);
    }
    let last_seen = before.last().unwrap().seq;
    // The client vanishes without a goodbye while the answer streams on.
    drop(client);

    let (mut again, resumed) = harness
        .attach_with(resume(&harness, &session, last_seen))
        .await;
    assert_eq!(resumed, session);
    let after = again.recv_turn().await;
    let all: Vec<GatewayServerMessage> = before.into_iter().chain(after).collect();
    assert_consecutive(&all);
    assert_eq!(final_message(&all), text);
    assert_eq!(deltas(&all), text);
}

#[tokio::test]
async fn resuming_from_too_far_back_gets_the_latest_terminal_state() {
    let (text, reply) = slow_answer(12, 0);
    let harness = Harness::start_with(
        vec![reply],
        Options {
            limits: GatewayLimits {
                replay_frames: 4,
                ..GatewayLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (mut client, session) = harness.attach("alice").await;
    client.turn("go").await;
    let frames = client.recv_turn().await;
    assert!(frames.len() > 4);
    drop(client);

    let (mut again, _) = harness.attach_with(resume(&harness, &session, 1)).await;
    let replayed = again.recv().await;
    assert_eq!(replayed.seq, frames.last().unwrap().seq);
    match replayed.frame {
        GatewayServerFrame::TurnCompleted { final_message, .. } => assert_eq!(final_message, text),
        other => panic!("expected the terminal state, got {other:?}"),
    }
    // Nothing else was replayed: the next frame answers a health check.
    again.send(&GatewayClientFrame::HealthCheck).await;
    let next = again.recv().await;
    assert!(
        matches!(next.frame, GatewayServerFrame::HealthStatus { .. }),
        "{next:?}"
    );
}

#[tokio::test]
async fn an_up_to_date_client_gets_no_replay_and_then_live_frames() {
    let harness = Harness::start(vec![ScriptedReply::text("one two")]).await;
    let (mut client, session) = harness.attach("alice").await;
    client.turn("first").await;
    let frames = client.recv_turn().await;
    let head = frames.last().unwrap().seq;
    drop(client);

    let (mut again, _) = harness.attach_with(resume(&harness, &session, head)).await;
    again.turn("second").await;
    let next = again.recv_turn().await;
    assert_eq!(next[0].seq, head + 1);
    assert_eq!(final_message(&next), "You said: second");
}

#[tokio::test]
async fn an_idle_session_is_unloaded_and_numbered_on_when_it_comes_back() {
    let idle = std::time::Duration::from_millis(200);
    let harness = Harness::start_with(
        vec![ScriptedReply::text("one two"), ScriptedReply::text("three")],
        Options {
            limits: GatewayLimits {
                idle_session: idle,
                ..GatewayLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (mut client, session) = harness.attach("alice").await;
    client.turn("first").await;
    let frames = client.recv_turn().await;
    let head = frames.last().unwrap().seq;
    // A session with a client attached stays loaded however long it idles.
    tokio::time::sleep(idle * 3).await;
    assert_eq!(harness.gateway.handle().health().active_sessions, 1);

    assert_eq!(harness.runtime.cached_sessions(), 1);
    drop(client);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while harness.gateway.handle().health().active_sessions > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle session was never unloaded"
        );
        tokio::time::sleep(idle / 4).await;
    }
    // Its history went with it: the runtime restores it from memory when
    // the session comes back.
    assert_eq!(harness.runtime.cached_sessions(), 0);

    // Reloaded: a client from too far back still gets the latest terminal
    // state, and the new frames are numbered above everything it saw.
    let (mut again, resumed) = harness
        .attach_with(resume(&harness, &session, head - 1))
        .await;
    assert_eq!(resumed, session);
    let replayed = again.recv().await;
    assert_eq!(replayed.seq, head);
    assert!(
        matches!(replayed.frame, GatewayServerFrame::TurnCompleted { .. }),
        "{replayed:?}"
    );
    again.turn("second").await;
    let next = again.recv_turn().await;
    assert!(next[0].seq > head, "{} after {head}", next[0].seq);
    assert_consecutive(&next);
    assert_eq!(final_message(&next), "three");
    let request = harness.llm.requests().pop().unwrap().body.to_string();
    assert!(request.contains("first"), "history restored: {request}");
    assert_eq!(harness.gateway.handle().health().active_sessions, 1);
}
