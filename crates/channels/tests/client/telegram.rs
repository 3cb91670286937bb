//! The Telegram adapter between the fake Bot API (test-support) and a
//! scripted gateway: approval requests become messages with buttons; a
//! stranger's tap (or an unlisted group's message) is refused and audited
//! and reaches no gateway; the allowed person's deny and approve travel as
//! `ApprovalResponse`s and the message says who decided; an unanswered
//! request is marked denied when the gateway stops waiting. Files people
//! send land in the inbox; files the agent sends are uploaded, links out
//! of `/shared` refused. A reply Telegram cannot format goes out as plain
//! text; what streaming showed beyond the final answer is deleted; server
//! errors are retried with backoff, for polls and sends.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use channels::EndpointSource;
use channels::telegram::{ChannelAudit, TelegramAdapter, TelegramSettings};
use test_support::{FakeTelegram, SentMessage};
use types::channel::ChannelHealthStatus;
use types::ids::UserId;
use types::protocol::gateway::{
    GatewayClientFrame, GatewayErrorCode, GatewayServerFrame, TurnUsage,
};
use types::tool::SafetyTier;
use types::{AuditKind, AuditRecord};

use crate::server::{Conn, ScriptedServer, ack, msg};

const TOKEN: &str = "42:approvals";
const ALICE: i64 = 1001;
const STRANGER: i64 = 2002;
const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct RecordedAudit(Mutex<Vec<AuditRecord>>);

impl ChannelAudit for RecordedAudit {
    fn record(&self, record: &AuditRecord) -> Result<(), String> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
    }
}

fn approval(
    seq: u64,
    request_id: &str,
    command: &str,
) -> types::protocol::gateway::GatewayServerMessage {
    msg(
        seq,
        GatewayServerFrame::ApprovalRequest {
            request_id: request_id.into(),
            tool: "shell_exec".into(),
            arguments_summary: command.into(),
            arguments: format!("{{\"command\":\"{command}\"}}"),
            safety_tier: SafetyTier::Privileged,
        },
    )
}

/// The end of turn `t-1` with its answer.
fn completed(seq: u64, answer: &str) -> types::protocol::gateway::GatewayServerMessage {
    msg(
        seq,
        GatewayServerFrame::TurnCompleted {
            turn_id: "t-1".into(),
            final_message: answer.into(),
            usage: TurnUsage::default(),
        },
    )
}

/// The message asking about `command`, once it is shown with its buttons.
async fn approval_message(telegram: &FakeTelegram, command: &str) -> SentMessage {
    let chat = telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter()
                .any(|m| m.text.contains(command) && m.reply_markup.is_some())
        })
        .await;
    chat.into_iter().find(|m| m.text.contains(command)).unwrap()
}

async fn next_answer(conn: &mut Conn) -> (String, bool) {
    match conn.recv().await {
        Some(GatewayClientFrame::ApprovalResponse {
            request_id,
            approved,
        }) => (request_id, approved),
        other => panic!("expected an approval response, got {other:?}"),
    }
}

/// The fake Bot API, a scripted gateway and an adapter between them that
/// accepts files up to 1 KiB into `<state>/shared/inbox`.
async fn start() -> (
    FakeTelegram,
    ScriptedServer,
    Arc<RecordedAudit>,
    tempfile::TempDir,
    TelegramAdapter,
) {
    start_with(FakeTelegram::start(TOKEN).await).await
}

/// The same with a fake Bot API set up by the test.
async fn start_with(
    telegram: FakeTelegram,
) -> (
    FakeTelegram,
    ScriptedServer,
    Arc<RecordedAudit>,
    tempfile::TempDir,
    TelegramAdapter,
) {
    let gateway = ScriptedServer::start().await;
    let audit = Arc::new(RecordedAudit::default());
    let state = tempfile::tempdir().unwrap();
    let adapter = TelegramAdapter::start(
        TelegramSettings {
            user_id: UserId::parse("alice").unwrap(),
            bot_token: TOKEN.into(),
            allowed_sender_ids: BTreeSet::from([ALICE]),
            allowed_chat_ids: BTreeSet::new(),
            api_base_url: telegram.base_url(),
            reject_message: None,
            state_file: state.path().join("telegram.json"),
            endpoint: EndpointSource::Fixed(gateway.endpoint()),
            edit_interval: Duration::from_millis(200),
            shared_dir: state.path().join("shared"),
            max_inbound_bytes: 1024,
            approval_timeout: Duration::from_secs(2),
        },
        audit.clone(),
    )
    .unwrap();

    (telegram, gateway, audit, state, adapter)
}

/// Accepts the adapter's connection for a new chat and answers its hello.
async fn accept_new_chat(gateway: &ScriptedServer) -> Conn {
    let mut conn = gateway.accept().await;
    match conn.recv().await {
        Some(GatewayClientFrame::Hello {
            session_id: None,
            new_session: true,
            ..
        }) => {}
        other => panic!("expected a hello asking for a new session, got {other:?}"),
    }
    conn.send(&ack("s-tg")).await;
    conn
}

#[tokio::test]
async fn approval_taps_count_only_from_allowed_senders_and_unanswered_ones_time_out() {
    let (telegram, gateway, audit, state, adapter) = start().await;

    // The chat's first message opens a new session for it.
    // Alice in a group that is not listed: refused like a stranger.
    telegram.push_text(ALICE, -500, "hi from a group");
    telegram.push_text(ALICE, ALICE, "tidy up /shared");
    let mut conn = accept_new_chat(&gateway).await;
    match conn.recv().await {
        Some(GatewayClientFrame::SendTurn { content, .. }) => {
            assert_eq!(content, "tidy up /shared")
        }
        other => panic!("expected the turn, got {other:?}"),
    }
    assert_eq!(adapter.health_probe().get(), ChannelHealthStatus::Healthy);
    conn.send(&msg(
        1,
        GatewayServerFrame::TurnStarted {
            turn_id: "t-1".into(),
            client_turn_id: None,
        },
    ))
    .await;

    // The whole call is shown, with buttons.
    conn.send(&approval(2, "approval-1", "rm -rf /shared/old"))
        .await;
    let first = approval_message(&telegram, "rm -rf /shared/old").await;
    assert!(first.text.contains("shell_exec"), "{}", first.text);
    let buttons = first.reply_markup.as_ref().unwrap().to_string();
    assert!(
        buttons.contains("y:approval-1") && buttons.contains("n:approval-1"),
        "{buttons}"
    );

    // A stranger's tap is refused and audited; the gateway hears nothing
    // until alice denies.
    telegram.push_callback(STRANGER, ALICE, first.message_id, "y:approval-1");
    telegram.push_callback(ALICE, ALICE, first.message_id, "n:approval-1");
    assert_eq!(next_answer(&mut conn).await, ("approval-1".into(), false));
    let refused: Vec<AuditRecord> = audit.0.lock().unwrap().clone();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|r| r.kind == AuditKind::SenderRefused));
    let group = refused[0].sender.as_ref().unwrap();
    assert_eq!(
        (group.sender_id.as_str(), group.chat_id.as_str()),
        ("1001", "-500")
    );
    assert!(
        refused[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("allowed_chat_ids")
    );
    assert_eq!(refused[1].subject, "approval tap");
    assert_eq!(refused[1].sender.as_ref().unwrap().sender_id, "2002");
    let answers = telegram.calls_to("answerCallbackQuery");
    assert!(
        answers
            .iter()
            .any(|call| call.params["text"] == "You are not allowed to answer this request."),
        "{answers:?}"
    );
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter().any(|m| {
                m.message_id == first.message_id
                    && m.text == "❌ Denied by @user1001."
                    && m.reply_markup.is_none()
            })
        })
        .await;

    // Approve.
    conn.send(&approval(3, "approval-2", "ls -la /shared"))
        .await;
    let second = approval_message(&telegram, "ls -la /shared").await;
    telegram.push_callback(ALICE, ALICE, second.message_id, "y:approval-2");
    assert_eq!(next_answer(&mut conn).await, ("approval-2".into(), true));
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter()
                .any(|m| m.message_id == second.message_id && m.text == "✅ Approved by @user1001.")
        })
        .await;

    // Nobody answers the third: when the gateway stops waiting, the
    // message says it was denied.
    conn.send(&approval(4, "approval-3", "du -sh /shared"))
        .await;
    let third = approval_message(&telegram, "du -sh /shared").await;
    let timed_out = "⌛ No answer within 2 s: denied.";
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter()
                .any(|m| m.message_id == third.message_id && m.text == timed_out)
        })
        .await;
    // A tap the gateway no longer takes (it gave up a moment earlier)
    // does not stay shown as a decision.
    conn.send(&approval(5, "approval-4", "df -h")).await;
    let fourth = approval_message(&telegram, "df -h").await;
    telegram.push_callback(ALICE, ALICE, fourth.message_id, "y:approval-4");
    assert_eq!(next_answer(&mut conn).await, ("approval-4".into(), true));
    conn.send(&msg(
        0,
        GatewayServerFrame::Error {
            code: GatewayErrorCode::UnknownApproval,
            message: "no approval request 'approval-4' is waiting in session 's-tg' (it may have \
                      timed out or been answered)"
                .into(),
        },
    ))
    .await;
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter()
                .any(|m| m.message_id == fourth.message_id && m.text == timed_out)
        })
        .await;
    conn.send(&completed(6, "Done: nothing deleted.")).await;
    let chat = telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter()
                .any(|m| m.message_id == third.message_id && m.text == timed_out)
                && m.iter().any(|m| m.text == "Done: nothing deleted.")
        })
        .await;
    // The first two keep their decisions.
    assert!(chat.iter().any(|m| m.text == "✅ Approved by @user1001."));
    drop(state);
    adapter.shutdown().await;
}

#[tokio::test]
async fn files_people_send_land_in_the_inbox_under_safe_names_within_the_cap() {
    let (telegram, gateway, _audit, state, adapter) = start().await;
    let inbox = state.path().join("shared/inbox");

    // Too large: the sender is told, nothing reaches the agent or the disk.
    telegram.push_document(ALICE, ALICE, "big.bin", &[0; 2000], Some("keep this"));
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter().any(|m| m.text.contains("big.bin is too large"))
        })
        .await;

    // A hostile name is made safe; the turn names the saved file.
    telegram.push_document(ALICE, ALICE, "../../.evil name.sh", b"echo hi", None);
    let mut conn = accept_new_chat(&gateway).await;
    match conn.recv().await {
        Some(GatewayClientFrame::SendTurn { content, .. }) => assert_eq!(
            content,
            "I sent you a file.\n\nAttached files:\n- /shared/inbox/evil_name.sh"
        ),
        other => panic!("expected the turn, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(inbox.join("evil_name.sh")).unwrap(),
        b"echo hi"
    );
    // The same name again never overwrites the first.
    telegram.push_document(ALICE, ALICE, "evil name.sh", b"second", Some("again"));
    match conn.recv().await {
        Some(GatewayClientFrame::SendTurn { content, .. }) => {
            assert!(
                content.ends_with("- /shared/inbox/2-evil_name.sh"),
                "{content}"
            );
        }
        other => panic!("expected the turn, got {other:?}"),
    }
    let mut names: Vec<String> = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["2-evil_name.sh", "evil_name.sh"],
        "no partial or oversized file is left"
    );
    adapter.shutdown().await;
}

#[tokio::test]
async fn files_the_agent_sends_are_uploaded_and_links_out_of_shared_are_refused() {
    let (telegram, gateway, _audit, state, adapter) = start().await;
    let shared = state.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("report.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(state.path().join("host-secret"), "secret").unwrap();
    std::os::unix::fs::symlink(state.path().join("host-secret"), shared.join("escape")).unwrap();

    telegram.push_text(ALICE, ALICE, "send me the report");
    let mut conn = accept_new_chat(&gateway).await;
    assert!(matches!(
        conn.recv().await,
        Some(GatewayClientFrame::SendTurn { .. })
    ));
    for (seq, path) in [(1, "/shared/report.csv"), (2, "/shared/escape")] {
        conn.send(&msg(
            seq,
            GatewayServerFrame::FileSent {
                path: path.into(),
                file_name: path.rsplit('/').next().unwrap().into(),
                size_bytes: 8,
                caption: Some("here it is".into()),
            },
        ))
        .await;
    }
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| {
            m.iter().any(|m| {
                m.text
                    .contains("/shared/escape, but it could not be delivered")
                    && m.text.contains("outside /shared")
            })
        })
        .await;
    let documents = telegram.documents();
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0].chat_id, ALICE);
    assert_eq!(documents[0].file_name, "report.csv");
    assert_eq!(documents[0].contents, b"a,b\n1,2\n");
    assert_eq!(documents[0].caption.as_deref(), Some("here it is"));
    adapter.shutdown().await;
}

#[tokio::test]
async fn a_reply_telegram_cannot_format_is_sent_as_plain_text() {
    let (telegram, gateway, _audit, _state, adapter) = start().await;
    telegram.push_text(ALICE, ALICE, "format this");
    let mut conn = accept_new_chat(&gateway).await;
    assert!(matches!(
        conn.recv().await,
        Some(GatewayClientFrame::SendTurn { .. })
    ));
    telegram.fail_next("sendMessage", 1, 400, None);
    conn.send(&completed(1, "**bold** and `code`")).await;
    let chat = telegram
        .wait_for_chat(ALICE, PATIENCE, |m| !m.is_empty())
        .await;
    assert_eq!(chat.len(), 1, "{chat:?}");
    assert_eq!(chat[0].text, "**bold** and `code`");
    assert_eq!(chat[0].parse_mode, None);
    let sends = telegram.calls_to("sendMessage");
    assert_eq!(sends[0].params["parse_mode"], "HTML");
    assert_eq!(sends[0].params["text"], "<b>bold</b> and <code>code</code>");
    adapter.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_for_polls_and_sends() {
    let telegram = FakeTelegram::start(TOKEN).await;
    // The first poll fails: the channel is degraded and polls again.
    telegram.fail_next("getUpdates", 1, 500, None);
    let (telegram, gateway, _audit, _state, adapter) = start_with(telegram).await;
    telegram.push_text(ALICE, ALICE, "are you there?");
    let mut conn = accept_new_chat(&gateway).await;
    assert!(matches!(
        conn.recv().await,
        Some(GatewayClientFrame::SendTurn { .. })
    ));
    assert_eq!(adapter.health_probe().get(), ChannelHealthStatus::Healthy);
    // Two failed sends: the reply still arrives, after 1 s and 2 s.
    telegram.fail_next("sendMessage", 2, 500, None);
    conn.send(&completed(1, "Here.")).await;
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| m.iter().any(|m| m.text == "Here."))
        .await;
    let sends = telegram.calls_to("sendMessage");
    assert_eq!(sends.len(), 3);
    assert!(sends[1].at - sends[0].at >= Duration::from_secs(1));
    assert!(sends[2].at - sends[1].at >= Duration::from_secs(2));
    let polls = telegram.calls_to("getUpdates");
    assert!(
        polls[1].at - polls[0].at >= Duration::from_secs(1),
        "polled again at once"
    );
    adapter.shutdown().await;
}

#[tokio::test]
async fn the_final_answer_replaces_everything_streamed_before_it() {
    let (telegram, gateway, _audit, _state, adapter) = start().await;
    telegram.push_text(ALICE, ALICE, "think aloud");
    let mut conn = accept_new_chat(&gateway).await;
    assert!(matches!(
        conn.recv().await,
        Some(GatewayClientFrame::SendTurn { .. })
    ));
    // A first model call streams 6,000 characters (two messages), then the
    // turn ends with a short answer.
    let thinking = format!("{}\n\n{}", "a ".repeat(1500), "b ".repeat(1500));
    conn.send(&msg(
        1,
        GatewayServerFrame::AssistantDelta { text: thinking },
    ))
    .await;
    telegram
        .wait_for_chat(ALICE, PATIENCE, |m| m.len() == 2)
        .await;
    conn.send(&completed(2, "Done.")).await;
    let chat = telegram
        .wait_for_chat(ALICE, PATIENCE, |m| m.len() == 1 && m[0].text == "Done.")
        .await;
    assert_eq!(chat[0].parse_mode.as_deref(), Some("HTML"));
    adapter.shutdown().await;
}
