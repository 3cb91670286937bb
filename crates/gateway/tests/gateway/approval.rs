//! Privileged tool calls under the `ask` policy wait for the human.

use std::time::Duration;

use gateway::GatewayLimits;
use test_support::{ScriptedReply, ScriptedToolCall};
use types::protocol::gateway::{GatewayClientFrame, GatewayErrorCode, GatewayServerFrame};
use types::{AuditDecision, AuditKind, AuditRecord, SafetyTier};

use crate::support::{Client, Harness, Options, final_message};

fn marker_then_done(name: &str) -> Vec<ScriptedReply> {
    vec![
        ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
            "write_marker",
            format!(r#"{{"name": "{name}"}}"#),
        )]),
        ScriptedReply::text("done"),
    ]
}

/// Reads up to the approval request; returns its id.
async fn approval_request(client: &mut Client, name: &str) -> String {
    let frames = client
        .recv_until(|f| matches!(f, GatewayServerFrame::ApprovalRequest { .. }))
        .await;
    assert!(
        frames.iter().any(|m| matches!(&m.frame,
            GatewayServerFrame::ToolCallStarted { name, .. } if name == "write_marker")),
        "{frames:?}"
    );
    match &frames.last().unwrap().frame {
        GatewayServerFrame::ApprovalRequest {
            request_id,
            tool,
            arguments_summary,
            arguments,
            safety_tier,
        } => {
            assert_eq!(tool, "write_marker");
            assert_eq!(*safety_tier, SafetyTier::Privileged);
            assert!(arguments_summary.contains(name), "{arguments_summary}");
            // The complete arguments, exactly as the model wrote them.
            assert_eq!(arguments, &format!(r#"{{"name": "{name}"}}"#));
            assert!(
                frames.last().unwrap().seq > 0,
                "approval requests are session frames"
            );
            request_id.clone()
        }
        other => panic!("expected an approval request, got {other:?}"),
    }
}

fn tool_finished_ok(frames: &[types::protocol::gateway::GatewayServerMessage]) -> bool {
    frames
        .iter()
        .find_map(|m| match &m.frame {
            GatewayServerFrame::ToolCallFinished { ok, .. } => Some(*ok),
            _ => None,
        })
        .expect("the tool call finished")
}

/// The tool result the model got back in its second request.
fn tool_result_sent(harness: &Harness) -> String {
    let requests = harness.llm.requests();
    let messages = requests[1].body["messages"].as_array().unwrap().clone();
    messages
        .iter()
        .find(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .expect("a tool result")
}

#[tokio::test]
async fn an_approved_privileged_call_runs() {
    let harness = Harness::start(marker_then_done("granted.txt")).await;
    let (mut client, _) = harness.attach("alice").await;
    client.turn("please write it").await;
    let request_id = approval_request(&mut client, "granted.txt").await;
    assert!(
        !harness.marker("granted.txt").exists(),
        "ran before approval"
    );
    client
        .send(&GatewayClientFrame::ApprovalResponse {
            request_id,
            approved: true,
        })
        .await;
    let frames = client.recv_turn().await;
    assert!(tool_finished_ok(&frames));
    assert_eq!(final_message(&frames), "done");
    assert!(harness.marker("granted.txt").exists());
    assert_eq!(tool_result_sent(&harness), "wrote granted.txt");
    let (requested, decided) = audited(&harness);
    assert_eq!(requested.actor, "model");
    assert_eq!(
        (decided.decision, decided.actor.as_str()),
        (Some(AuditDecision::Approved), "gateway:alice")
    );
}

/// The request and the decision the audit log holds for the one approval
/// of a test, after checking what every record must carry.
fn audited(harness: &Harness) -> (AuditRecord, AuditRecord) {
    let records = harness.memory.audit_records();
    let [requested, decided] = <[AuditRecord; 2]>::try_from(records.clone())
        .unwrap_or_else(|_| panic!("two audit records: {records:#?}"));
    assert_eq!(requested.kind, AuditKind::ApprovalRequested);
    assert_eq!(decided.kind, AuditKind::ApprovalDecided);
    for record in [&requested, &decided] {
        assert_eq!(record.user, "alice");
        assert_eq!(record.subject, "write_marker");
        assert!(record.session_id.is_some());
        assert_eq!(record.request_id, requested.request_id);
        assert!(record.request_id.is_some());
        // The arguments appear only as a hash and a size, never as text.
        let hash = record.arguments_sha256.as_deref().unwrap();
        assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(record.arguments_bytes.unwrap() > 0);
        assert!(!serde_json::to_string(record).unwrap().contains(".txt"));
    }
    assert!(requested.at_ms <= decided.at_ms);
    (requested, decided)
}

#[tokio::test]
async fn a_denied_privileged_call_never_runs_and_the_model_is_told() {
    let harness = Harness::start(marker_then_done("denied.txt")).await;
    let (mut client, _) = harness.attach("alice").await;
    client.turn("please write it").await;
    let request_id = approval_request(&mut client, "denied.txt").await;
    client
        .send(&GatewayClientFrame::ApprovalResponse {
            request_id: request_id.clone(),
            approved: false,
        })
        .await;
    let frames = client.recv_turn().await;
    assert!(!tool_finished_ok(&frames));
    assert_eq!(final_message(&frames), "done");
    assert!(!harness.marker("denied.txt").exists());
    let result = tool_result_sent(&harness);
    assert!(
        result.contains("was not approved: the user refused it"),
        "{result}"
    );
    let (_, decided) = audited(&harness);
    assert_eq!(
        (decided.decision, decided.actor.as_str()),
        (Some(AuditDecision::Denied), "gateway:alice")
    );
    // Answering again is an error: the request is gone.
    client
        .send(&GatewayClientFrame::ApprovalResponse {
            request_id,
            approved: true,
        })
        .await;
    let message = client.recv().await;
    assert!(
        matches!(
            message.frame,
            GatewayServerFrame::Error {
                code: GatewayErrorCode::UnknownApproval,
                ..
            }
        ),
        "{message:?}"
    );
}

#[tokio::test]
async fn an_unanswered_approval_times_out_as_denied() {
    let harness = Harness::start_with(
        marker_then_done("late.txt"),
        Options {
            limits: GatewayLimits {
                approval_timeout: Duration::from_millis(300),
                ..GatewayLimits::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (mut client, _) = harness.attach("alice").await;
    client.turn("please write it").await;
    approval_request(&mut client, "late.txt").await;
    let frames = client.recv_turn().await;
    assert!(!tool_finished_ok(&frames));
    assert!(!harness.marker("late.txt").exists());
    let result = tool_result_sent(&harness);
    assert!(result.contains("no answer within 0.3 seconds"), "{result}");
    let (_, decided) = audited(&harness);
    assert_eq!(decided.decision, Some(AuditDecision::TimedOut));
    assert_eq!(decided.actor, "gateway");
    assert!(
        decided
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("gateway.approval_timeout_secs"))
    );
}

#[tokio::test]
async fn cancelling_while_an_approval_waits_cancels_the_turn() {
    let harness = Harness::start(marker_then_done("never.txt")).await;
    let (mut client, _) = harness.attach("alice").await;
    client.turn("please write it").await;
    approval_request(&mut client, "never.txt").await;
    client.send(&GatewayClientFrame::CancelActiveTurn).await;
    let frames = client.recv_turn().await;
    assert!(
        matches!(
            frames.last().unwrap().frame,
            GatewayServerFrame::TurnCancelled { .. }
        ),
        "{frames:?}"
    );
    assert!(!harness.marker("never.txt").exists());
}
