//! Streamed turns, lanes, parallelism, backpressure and cancellation.

use std::time::Duration;

use gateway::GatewayLimits;
use runtime::CANCELLED_MARKER;
use test_support::{Fault, ScriptedReply};
use types::protocol::gateway::{GatewayClientFrame, GatewayErrorCode, GatewayServerFrame};
use types::{SessionId, UserId};

use crate::support::{Harness, Options, assert_consecutive, deltas, final_message, slow_answer};

/// A reply that streams a few words and then hangs until cancelled.
fn hanging() -> ScriptedReply {
    ScriptedReply::text("thinking very hard").with_fault(Fault::NeverEnd)
}

/// Reads frames until the first `AssistantDelta` (the turn is running).
async fn until_first_delta(client: &mut crate::support::Client) {
    client
        .recv_until(|f| matches!(f, GatewayServerFrame::AssistantDelta { .. }))
        .await;
}

fn is_started(frame: &GatewayServerFrame) -> bool {
    matches!(frame, GatewayServerFrame::TurnStarted { .. })
}

#[tokio::test]
async fn a_turn_streams_deltas_and_completes_with_usage_and_cost() {
    let answer = "The answer is forty two, as always.";
    let harness = Harness::start(vec![ScriptedReply::text(answer)]).await;
    let (mut client, session) = harness.attach("alice").await;
    client.turn("what is the answer?").await;
    let frames = client.recv_turn().await;

    let GatewayServerFrame::TurnStarted {
        turn_id: started,
        client_turn_id,
    } = &frames[0].frame
    else {
        panic!("the turn did not start first: {frames:?}");
    };
    assert_eq!(client_turn_id.as_deref(), Some("what is the answer?"));
    let deltas_seen = frames
        .iter()
        .filter(|m| matches!(m.frame, GatewayServerFrame::AssistantDelta { .. }))
        .count();
    assert!(deltas_seen > 3, "the answer was not streamed: {frames:?}");
    assert_eq!(deltas(&frames), answer);
    match &frames.last().unwrap().frame {
        GatewayServerFrame::TurnCompleted {
            turn_id,
            final_message,
            usage,
        } => {
            assert_eq!(turn_id, started);
            assert_eq!(final_message, answer);
            assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
            assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);
            assert!(usage.cost_usd > 0.0, "{usage:?}");
        }
        other => panic!("expected completion, got {other:?}"),
    }
    // Session frames are numbered on without gaps.
    assert_consecutive(&frames);
    // The runtime stored the exchange.
    let stored = harness.memory.messages(session.as_str());
    assert_eq!(stored.len(), 2);
}

/// The model's reasoning reaches clients as `reasoning_delta` frames,
/// before the answer and apart from it; it is neither answer text nor
/// stored, and the turn's usage names the prompt tokens read from cache.
#[tokio::test]
async fn reasoning_streams_as_its_own_frames_and_cache_reads_are_reported() {
    let reasoning = "The user wants the usual answer.";
    let answer = "Forty two.";
    let harness = Harness::start(vec![
        ScriptedReply::text(answer)
            .with_reasoning(reasoning)
            .with_cache(1_000, 0),
    ])
    .await;
    let (mut client, session) = harness.attach("alice").await;
    client.turn("what is the answer?").await;
    let frames = client.recv_turn().await;

    let reasoning_frames: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m.frame, GatewayServerFrame::ReasoningDelta { .. }))
        .map(|(index, _)| index)
        .collect();
    assert!(reasoning_frames.len() > 1, "not streamed: {frames:?}");
    let streamed: String = frames
        .iter()
        .filter_map(|m| match &m.frame {
            GatewayServerFrame::ReasoningDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, reasoning);
    let first_answer = frames
        .iter()
        .position(|m| matches!(m.frame, GatewayServerFrame::AssistantDelta { .. }))
        .unwrap();
    assert!(reasoning_frames.iter().all(|&index| index < first_answer));
    assert_eq!(deltas(&frames), answer);
    assert_consecutive(&frames);
    match &frames.last().unwrap().frame {
        GatewayServerFrame::TurnCompleted {
            final_message,
            usage,
            ..
        } => {
            assert_eq!(final_message, answer);
            assert_eq!(usage.cached_input_tokens, 1_000);
            assert_eq!(usage.cache_write_input_tokens, 0);
            assert!(usage.input_tokens > 1_000, "{usage:?}");
        }
        other => panic!("expected completion, got {other:?}"),
    }
    // Unsigned reasoning is shown, never stored (and so never sent back).
    let stored = harness.memory.messages(session.as_str());
    assert!(stored.iter().all(|m| m.reasoning.is_empty()), "{stored:?}");
    assert!(
        !serde_json::to_string(&stored)
            .unwrap()
            .contains("usual answer"),
        "{stored:?}"
    );
}

#[tokio::test]
async fn turns_sent_together_queue_and_run_in_order() {
    let harness = Harness::start(vec![]).await;
    let (mut client, _) = harness.attach("alice").await;
    for content in ["first", "second", "third"] {
        client.turn(content).await;
    }
    for content in ["first", "second", "third"] {
        let frames = client.recv_turn().await;
        match &frames[0].frame {
            GatewayServerFrame::TurnStarted { client_turn_id, .. } => {
                assert_eq!(client_turn_id.as_deref(), Some(content));
            }
            other => panic!("expected a turn start, got {other:?}"),
        }
        assert_eq!(final_message(&frames), format!("You said: {content}"));
    }
    // Each turn's request saw the previous turns' answers: they really ran
    // one after the other.
    let requests = harness.llm.requests();
    let third = &requests[2].body["messages"];
    assert_eq!(third.as_array().unwrap().len(), 6, "{third}");
}

#[tokio::test]
async fn sessions_and_users_run_in_parallel() {
    let harness = Harness::start(vec![hanging()]).await;
    let (mut alice, _) = harness.attach("alice").await;
    alice.turn("a long question").await;
    until_first_delta(&mut alice).await;

    // Alice's first session is stuck mid-stream; Bob is not held up …
    let (mut bob, _) = harness.attach("bob").await;
    bob.turn("quick one").await;
    assert_eq!(final_message(&bob.recv_turn().await), "You said: quick one");
    // … nor is another session of Alice's.
    let (mut alice2, _) = harness.attach("alice").await;
    alice2.send(&GatewayClientFrame::NewSession).await;
    alice2.expect_hello_ack().await;
    alice2.turn("side question").await;
    assert_eq!(
        final_message(&alice2.recv_turn().await),
        "You said: side question"
    );

    alice.send(&GatewayClientFrame::CancelActiveTurn).await;
    let frames = alice.recv_turn().await;
    assert!(
        matches!(
            frames.last().unwrap().frame,
            GatewayServerFrame::TurnCancelled { .. }
        ),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_full_lane_answers_busy_and_cancel_spares_the_queued_turns() {
    let harness = Harness::start_with(
        vec![hanging()],
        Options {
            limits: GatewayLimits {
                lane_depth: 2,
                ..GatewayLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (mut client, _) = harness.attach("alice").await;
    client.turn("stuck").await;
    until_first_delta(&mut client).await;
    client.turn("queued one").await;
    client.turn("queued two").await;
    client.turn("one too many").await;
    // The stuck turn's remaining words may arrive first.
    let busy = client
        .recv_until(|f| matches!(f, GatewayServerFrame::Error { .. }))
        .await
        .pop()
        .unwrap();
    assert_eq!(busy.seq, 0, "busy is for the sender only");
    match busy.frame {
        GatewayServerFrame::Error {
            code: GatewayErrorCode::Busy,
            message,
        } => {
            assert!(
                message.contains("2 messages are already waiting"),
                "{message}"
            );
            assert!(message.contains("try again"), "{message}");
        }
        other => panic!("expected busy, got {other:?}"),
    }

    client.send(&GatewayClientFrame::CancelActiveTurn).await;
    let cancelled = client.recv_turn().await;
    assert!(
        matches!(
            cancelled.last().unwrap().frame,
            GatewayServerFrame::TurnCancelled { .. }
        ),
        "{cancelled:?}"
    );
    for content in ["queued one", "queued two"] {
        let frames = client.recv_turn().await;
        assert_eq!(final_message(&frames), format!("You said: {content}"));
    }
    // The refused message never reached the model.
    let prompts: Vec<String> = harness
        .llm
        .requests()
        .iter()
        .map(|r| r.body["messages"].to_string())
        .collect();
    assert!(prompts.iter().all(|p| !p.contains("one too many")));
}

#[tokio::test]
async fn cancel_mid_stream_stops_the_turn_and_the_gateway_keeps_serving() {
    let (text, reply) = slow_answer(60, 40);
    let harness = Harness::start(vec![reply]).await;
    let (mut client, session) = harness.attach("alice").await;
    client.turn("tell me a long story").await;
    let mut frames = client
        .recv_until(|f| matches!(f, GatewayServerFrame::AssistantDelta { .. }))
        .await;
    client.send(&GatewayClientFrame::CancelActiveTurn).await;
    frames.extend(client.recv_turn().await);
    let GatewayServerFrame::TurnCancelled { turn_id } = &frames.last().unwrap().frame else {
        panic!("expected a cancelled turn: {frames:?}");
    };
    let GatewayServerFrame::TurnStarted {
        turn_id: started, ..
    } = &frames[0].frame
    else {
        panic!("expected a start: {frames:?}");
    };
    assert_eq!(turn_id, started);
    let partial = deltas(&frames);
    assert!(
        !partial.is_empty() && partial.len() < text.len(),
        "{partial}"
    );
    assert!(text.starts_with(&partial));
    // The partial answer is stored with the cancelled marker.
    let stored = harness.memory.messages(session.as_str());
    let last = stored.last().unwrap().content.clone().unwrap_or_default();
    assert!(last.contains(CANCELLED_MARKER), "{last}");

    client.turn("are you still there?").await;
    assert_eq!(
        final_message(&client.recv_turn().await),
        "You said: are you still there?"
    );
}

#[tokio::test]
async fn every_client_attached_to_a_session_sees_the_same_frames() {
    let harness = Harness::start(vec![]).await;
    let (mut first, session) = harness.attach("alice").await;
    let (mut second, _) = harness
        .attach_with(GatewayClientFrame::Hello {
            user_id: UserId::parse("alice").unwrap(),
            session_id: Some(session),
            token: harness.endpoint.token.clone(),
            resume_from: None,
            new_session: false,
        })
        .await;
    first.turn("shared").await;
    let seen_first = first.recv_turn().await;
    let seen_second = second.recv_turn().await;
    assert_eq!(seen_first, seen_second);
    assert!(is_started(&seen_second[0].frame));
}

#[tokio::test]
async fn a_failing_turn_is_reported_and_the_session_goes_on() {
    // The runtime falls back from the stream to a plain request; both fail.
    let harness = Harness::start(vec![
        ScriptedReply::error(400, "context too long"),
        ScriptedReply::error(400, "context too long"),
    ])
    .await;
    let (mut client, _) = harness.attach("alice").await;
    client.turn("boom").await;
    let frames = client.recv_turn().await;
    match &frames.last().unwrap().frame {
        GatewayServerFrame::Error {
            code: GatewayErrorCode::TurnFailed,
            message,
        } => assert!(message.contains("context too long"), "{message}"),
        other => panic!("expected a failed turn, got {other:?}"),
    }
    client.turn("again").await;
    assert_eq!(final_message(&client.recv_turn().await), "You said: again");
}

#[tokio::test]
async fn background_runs_have_their_own_lane() {
    let harness = Harness::start(vec![hanging()]).await;
    let (mut client, _) = harness.attach("alice").await;
    client.turn("stuck").await;
    until_first_delta(&mut client).await;

    let handle = harness.gateway.handle();
    let run = handle
        .submit_background(
            UserId::parse("alice").unwrap(),
            SessionId::new("scheduled-1"),
            "daily digest".into(),
        )
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), run.outcome())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome.final_message.content.as_deref(),
        Some("You said: daily digest")
    );
    // The run's session is listed with the user's sessions.
    client.send(&GatewayClientFrame::ListSessions).await;
    let listed = client
        .recv_until(|f| matches!(f, GatewayServerFrame::Sessions { .. }))
        .await;
    let GatewayServerFrame::Sessions { sessions } = &listed.last().unwrap().frame else {
        unreachable!()
    };
    assert!(
        sessions
            .iter()
            .any(|s| s.session_id.as_str() == "scheduled-1")
    );
    client.send(&GatewayClientFrame::CancelActiveTurn).await;
    client.recv_turn().await;
}
