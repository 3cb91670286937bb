//! `TuiUiState::update`: events in, commands out.

use channels::{ConnectionState, LinkEvent};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::Duration;
use tui::state::{ActiveTurn, ApprovalPrompt, ConnectionView, Entry, ToolStatus};
use tui::{Command, TuiUiState, UiEvent};
use types::SafetyTier;
use types::channel::InboundPayload;
use types::protocol::gateway::{GatewayErrorCode, GatewayServerFrame, SessionSummary, TurnUsage};
use types::runner::SandboxTier;

fn key(code: KeyCode) -> UiEvent {
    UiEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> UiEvent {
    UiEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn frame(frame: GatewayServerFrame) -> UiEvent {
    UiEvent::Frame(frame)
}

fn hello_ack(session: &str) -> UiEvent {
    frame(GatewayServerFrame::HelloAck {
        runtime_session_id: session.into(),
        tier: SandboxTier::Process,
        degraded_reasons: vec![
            types::protocol::bootstrap::StartupDegradedReason::InsecureProcessTier,
        ],
        model: "gpt-4.1".into(),
    })
}

/// A state connected to session `s-1`.
fn connected() -> TuiUiState {
    let mut state = TuiUiState::new();
    state.update(UiEvent::Link(LinkEvent::Connection(
        ConnectionState::Connected {
            session_id: "s-1".into(),
        },
    )));
    state.update(hello_ack("s-1"));
    state
}

fn type_text(state: &mut TuiUiState, text: &str) {
    state.update(UiEvent::Paste(text.to_owned()));
}

/// Types `input`, presses Enter, and checks the commands.
fn check_submit(state: &mut TuiUiState, input: &str, expected: &[Command]) {
    type_text(state, input);
    assert_eq!(
        state.update(key(KeyCode::Enter)),
        expected,
        "input {input:?}"
    );
}

fn send_turn(content: &str) -> Command {
    Command::Send(InboundPayload::Message {
        text: content.into(),
        attachments: Vec::new(),
    })
}

#[test]
fn hello_ack_fills_the_status() {
    let state = connected();
    assert_eq!(state.connection, ConnectionView::Connected);
    assert_eq!(state.session_id, Some("s-1".into()));
    assert_eq!(state.model, Some("gpt-4.1".into()));
    assert_eq!(state.tier, Some(SandboxTier::Process));
    assert_eq!(
        state.degraded_reasons,
        ["insecure process tier: no VM or container isolation"]
    );
}

#[test]
fn enter_sends_the_prompt_and_keeps_it_in_history() {
    let mut state = connected();
    check_submit(&mut state, "hello", &[send_turn("hello")]);
    assert!(state.input.is_empty());
    assert_eq!(state.transcript, [Entry::User("hello".into())]);
    assert_eq!(state.queued_turns, 1);
    assert!(state.busy());
    // Alt+Enter and Ctrl+J start new lines; Enter sends all of it.
    type_text(&mut state, "line one");
    state.update(UiEvent::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::ALT,
    )));
    type_text(&mut state, "two");
    state.update(ctrl('j'));
    type_text(&mut state, "three");
    assert_eq!(
        state.update(key(KeyCode::Enter)),
        [send_turn("line one\ntwo\nthree")]
    );
    // Up brings back the newest entry, then the older one; Down returns.
    state.update(key(KeyCode::Up));
    assert_eq!(state.input.text(), "line one\ntwo\nthree");
    state.update(key(KeyCode::Up)); // cursor at the end: moves a line up
    state.update(key(KeyCode::Up));
    state.update(key(KeyCode::Up)); // first line: older history entry
    assert_eq!(state.input.text(), "hello");
    state.update(key(KeyCode::Down));
    state.update(key(KeyCode::Down));
    assert_eq!(state.input.text(), "");
    // Empty input sends nothing.
    assert_eq!(state.update(key(KeyCode::Enter)), []);
}

#[test]
fn a_prompt_typed_while_disconnected_stays_in_the_input() {
    let mut state = TuiUiState::new();
    check_submit(&mut state, "are you there?", &[]);
    assert_eq!(state.input.text(), "are you there?");
    assert!(
        state
            .last_error
            .as_deref()
            .unwrap()
            .contains("not connected")
    );
    assert!(state.transcript.is_empty());
}

#[test]
fn commands() {
    let mut state = connected();
    check_submit(
        &mut state,
        "/new",
        &[Command::Send(InboundPayload::NewSession)],
    );
    check_submit(
        &mut state,
        "/sessions",
        &[Command::Send(InboundPayload::ListSessions)],
    );
    check_submit(&mut state, "/help", &[]);
    assert!(matches!(state.transcript.last(), Some(Entry::Notice(line)) if line.contains("/quit")));
    check_submit(&mut state, "/frobnicate", &[]);
    assert_eq!(
        state.last_error.as_deref(),
        Some("unknown command /frobnicate: /help lists the commands")
    );
    state.input.take();
    check_submit(
        &mut state,
        "//etc/hosts is a path",
        &[send_turn("/etc/hosts is a path")],
    );
    check_submit(&mut state, "/quit", &[Command::Quit]);
    assert!(state.quit);
}

#[test]
fn a_streamed_turn_with_tool_activity() {
    let mut state = connected();
    check_submit(&mut state, "list files", &[send_turn("list files")]);
    state.update(frame(GatewayServerFrame::TurnStarted {
        turn_id: "t-1".into(),
        client_turn_id: None,
    }));
    assert_eq!(state.queued_turns, 0);
    state.update(frame(GatewayServerFrame::AssistantDelta {
        text: "Let me ".into(),
    }));
    state.update(frame(GatewayServerFrame::AssistantDelta {
        text: "look.".into(),
    }));
    state.update(frame(GatewayServerFrame::ToolCallStarted {
        call_id: "c1".into(),
        name: "file_list".into(),
        summary: "/shared".into(),
    }));
    state.update(frame(GatewayServerFrame::ToolCallStarted {
        call_id: "c2".into(),
        name: "file_read".into(),
        summary: "/shared/a".into(),
    }));
    state.update(frame(GatewayServerFrame::ToolCallFinished {
        call_id: "c1".into(),
        name: "file_list".into(),
        ok: true,
    }));
    state.update(frame(GatewayServerFrame::ToolCallFinished {
        call_id: "c2".into(),
        name: "file_read".into(),
        ok: false,
    }));
    state.update(frame(GatewayServerFrame::AssistantDelta {
        text: "Two files.".into(),
    }));
    let usage = TurnUsage {
        input_tokens: 100,
        output_tokens: 20,
        total_tokens: 120,
        cost_usd: 0.0012,
        ..TurnUsage::default()
    };
    state.update(frame(GatewayServerFrame::TurnCompleted {
        turn_id: "t-1".into(),
        final_message: "Let me look.Two files.".into(),
        usage,
    }));
    assert_eq!(
        state.transcript,
        [
            Entry::User("list files".into()),
            Entry::Assistant {
                text: "Let me look.".into(),
                streaming: false
            },
            Entry::Tool {
                call_id: "c1".into(),
                name: "file_list".into(),
                summary: "/shared".into(),
                status: ToolStatus::Succeeded
            },
            Entry::Tool {
                call_id: "c2".into(),
                name: "file_read".into(),
                summary: "/shared/a".into(),
                status: ToolStatus::Failed
            },
            Entry::Assistant {
                text: "Two files.".into(),
                streaming: false
            },
        ]
    );
    assert_eq!(state.last_usage, Some(usage));
    assert!(!state.busy());
}

#[test]
fn a_resumed_client_that_missed_the_stream_shows_the_final_message() {
    let mut state = connected();
    state.update(frame(GatewayServerFrame::TurnCompleted {
        turn_id: "t-9".into(),
        final_message: "All done.".into(),
        usage: TurnUsage::default(),
    }));
    assert_eq!(
        state.transcript,
        [Entry::Assistant {
            text: "All done.".into(),
            streaming: false
        }]
    );
}

/// Reasoning arrives in its own frames: it becomes its own entry,
/// separate from the answer, and Ctrl+T switches between the one-line
/// marker and the full text without touching anything else.
#[test]
fn reasoning_is_its_own_entry_collapsed_until_ctrl_t() {
    let mut state = connected();
    check_submit(&mut state, "why?", &[send_turn("why?")]);
    state.update(frame(GatewayServerFrame::TurnStarted {
        turn_id: "t-1".into(),
        client_turn_id: None,
    }));
    for text in ["The user ", "asks why."] {
        state.update(frame(GatewayServerFrame::ReasoningDelta {
            text: text.into(),
        }));
    }
    assert_eq!(
        state.transcript[1],
        Entry::Reasoning {
            text: "The user asks why.".into(),
            streaming: true
        }
    );
    state.update(frame(GatewayServerFrame::AssistantDelta {
        text: "Because.".into(),
    }));
    // More reasoning after the text starts a new entry.
    state.update(frame(GatewayServerFrame::ReasoningDelta {
        text: "Done?".into(),
    }));
    assert_eq!(
        state.transcript[1..],
        [
            Entry::Reasoning {
                text: "The user asks why.".into(),
                streaming: false
            },
            Entry::Assistant {
                text: "Because.".into(),
                streaming: false
            },
            Entry::Reasoning {
                text: "Done?".into(),
                streaming: true
            },
        ]
    );
    // Reasoning is not answer text: a final message is still shown only
    // when no text streamed.
    assert!(state.active_turn.as_ref().unwrap().streamed_text);

    assert!(!state.show_reasoning);
    let collapsed = tui::render::transcript_lines(&state, 80);
    let collapsed: Vec<String> = collapsed.iter().map(ToString::to_string).collect();
    assert_eq!(
        collapsed,
        [
            "you: why?",
            "thinking… (18 chars)",
            "agent: Because.",
            "thinking… (5 chars)"
        ]
    );

    // Ctrl+T is only a view change: no command, input untouched.
    type_text(&mut state, "draft");
    assert_eq!(state.update(ctrl('t')), []);
    assert!(state.show_reasoning);
    assert_eq!(state.input.text(), "draft");
    let expanded = tui::render::transcript_lines(&state, 80);
    let expanded: Vec<String> = expanded.iter().map(ToString::to_string).collect();
    assert_eq!(
        expanded,
        [
            "you: why?",
            "thinking: The user asks why.",
            "agent: Because.",
            "thinking: Done?▌"
        ]
    );
    state.update(ctrl('t'));
    assert!(!state.show_reasoning);
}

#[test]
fn ctrl_c_cancels_a_running_turn_and_quits_when_idle() {
    let mut state = connected();
    check_submit(&mut state, "long task", &[send_turn("long task")]);
    // Queued but not started yet: still cancels rather than quitting.
    assert_eq!(
        state.update(ctrl('c')),
        [Command::Send(InboundPayload::Cancel)]
    );
    state.update(frame(GatewayServerFrame::TurnStarted {
        turn_id: "t-1".into(),
        client_turn_id: None,
    }));
    assert_eq!(
        state.update(ctrl('c')),
        [Command::Send(InboundPayload::Cancel)]
    );
    assert_eq!(
        state.active_turn,
        Some(ActiveTurn {
            turn_id: "t-1".into(),
            streamed_text: false,
            cancelling: true
        })
    );
    state.update(frame(GatewayServerFrame::TurnCancelled {
        turn_id: "t-1".into(),
    }));
    assert!(!state.busy());
    assert_eq!(
        state.transcript.last(),
        Some(&Entry::Notice("turn cancelled".into()))
    );
    assert_eq!(state.update(ctrl('c')), [Command::Quit]);
}

#[test]
fn an_approval_prompt_holds_the_complete_arguments_and_scrolls() {
    let mut state = connected();
    let long = format!("echo {}", "x".repeat(600));
    let arguments = serde_json::json!({ "command": long, "timeout_secs": 30 }).to_string();
    state.update(frame(GatewayServerFrame::ApprovalRequest {
        request_id: "r-1".into(),
        tool: "shell_exec".into(),
        arguments_summary: arguments.chars().take(200).collect(),
        arguments: arguments.clone(),
        safety_tier: SafetyTier::Privileged,
    }));
    let prompt = state.pending_approval.clone().unwrap();
    assert_eq!(prompt.safety_tier, SafetyTier::Privileged);
    // Nothing is cut: the pretty-printed JSON still parses to the same value.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&prompt.arguments).unwrap(),
        serde_json::from_str::<serde_json::Value>(&arguments).unwrap()
    );
    assert!(
        prompt.arguments.contains("\n  \"command\""),
        "{}",
        prompt.arguments
    );
    assert_eq!(state.update(key(KeyCode::Down)), []);
    assert_eq!(state.update(key(KeyCode::PageDown)), []);
    assert_eq!(state.pending_approval.as_ref().unwrap().scroll, 6);
    state.update(key(KeyCode::Up));
    assert_eq!(state.pending_approval.as_ref().unwrap().scroll, 5);
    assert!(
        state.input.is_empty(),
        "scrolling keys do not reach the input"
    );
    assert_eq!(
        ApprovalPrompt::pretty_arguments("not json {"),
        "not json {",
        "arguments that are not JSON are shown as they came"
    );
}

#[test]
fn approval_prompts_take_only_y_or_n() {
    let mut state = connected();
    let request = |id: &str| {
        frame(GatewayServerFrame::ApprovalRequest {
            request_id: id.into(),
            tool: "shell_exec".into(),
            arguments_summary: r#"{"command":"rm -rf build"}"#.into(),
            arguments: r#"{"command":"rm -rf build"}"#.into(),
            safety_tier: SafetyTier::Privileged,
        })
    };
    state.update(request("r-1"));
    assert!(state.pending_approval.is_some());
    assert_eq!(state.update(key(KeyCode::Char('x'))), []);
    assert_eq!(state.update(key(KeyCode::Enter)), []);
    assert!(state.input.is_empty(), "keys do not leak into the prompt");
    assert_eq!(
        state.update(key(KeyCode::Char('y'))),
        [Command::Send(InboundPayload::ApprovalResponse {
            request_id: "r-1".into(),
            approved: true
        })]
    );
    assert!(state.pending_approval.is_none());
    state.update(request("r-2"));
    assert_eq!(
        state.update(key(KeyCode::Esc)),
        [Command::Send(InboundPayload::ApprovalResponse {
            request_id: "r-2".into(),
            approved: false
        })]
    );
    assert_eq!(
        state.transcript.last(),
        Some(&Entry::Notice("denied shell_exec".into()))
    );
}

#[test]
fn connection_changes_are_shown() {
    let mut state = connected();
    state.update(UiEvent::Link(LinkEvent::Connection(
        ConnectionState::Reconnecting {
            attempt: 1,
            retry_in: Duration::from_millis(250),
            reason: "connection reset".into(),
        },
    )));
    assert_eq!(
        state.connection,
        ConnectionView::Reconnecting {
            attempt: 1,
            reason: "connection reset".into()
        }
    );
    assert_eq!(
        state.transcript.last(),
        Some(&Entry::Notice(
            "connection lost (connection reset); reconnecting…".into()
        ))
    );
    state.update(UiEvent::Link(LinkEvent::Connection(
        ConnectionState::Connected {
            session_id: "s-1".into(),
        },
    )));
    assert_eq!(
        state.transcript.last(),
        Some(&Entry::Notice("reconnected".into()))
    );
    state.update(hello_ack("s-2"));
    assert_eq!(
        state.transcript.last(),
        Some(&Entry::Notice("new session s-2".into()))
    );
    state.update(UiEvent::Link(LinkEvent::Connection(
        ConnectionState::Closed {
            reason: "the gateway refused the connection: stale token".into(),
        },
    )));
    assert!(matches!(state.connection, ConnectionView::Closed { .. }));
    assert!(
        matches!(state.transcript.last(), Some(Entry::Error(text)) if text.contains("stale token"))
    );
}

#[test]
fn server_errors_and_failed_sends() {
    let mut state = connected();
    check_submit(&mut state, "one more", &[send_turn("one more")]);
    state.update(frame(GatewayServerFrame::Error {
        code: GatewayErrorCode::Busy,
        message: "session lane is full; try again".into(),
    }));
    assert_eq!(state.queued_turns, 0);
    assert_eq!(
        state.last_error.as_deref(),
        Some("session lane is full; try again")
    );
    state.update(UiEvent::Link(LinkEvent::NotSent {
        payload: InboundPayload::Message {
            text: "one more".into(),
            attachments: Vec::new(),
        },
        error: "not connected to the gateway (reconnecting); nothing was sent".into(),
    }));
    assert_eq!(
        state.input.text(),
        "one more",
        "the unsent prompt comes back"
    );
    assert!(
        matches!(state.transcript.last(), Some(Entry::Error(text)) if text.contains("back in the input box"))
    );
}

#[test]
fn sessions_are_listed() {
    let mut state = connected();
    state.update(frame(GatewayServerFrame::Sessions {
        sessions: vec![
            SessionSummary {
                session_id: "s-2".into(),
                updated_at_ms: 1_700_000_000_000,
                current: true,
            },
            SessionSummary {
                session_id: "s-1".into(),
                updated_at_ms: 0,
                current: false,
            },
        ],
    }));
    let lines: Vec<_> = state
        .transcript
        .iter()
        .map(|entry| format!("{entry:?}"))
        .collect();
    assert_eq!(
        lines,
        [
            "Notice(\"2 sessions:\")",
            "Notice(\"* s-2 (updated 2023-11-14 22:13 UTC)\")",
            "Notice(\"  s-1 (updated 1970-01-01 00:00 UTC)\")",
        ]
    );
}

#[test]
fn a_file_the_agent_sends_is_shown_by_its_path() {
    let mut state = connected();
    state.update(frame(GatewayServerFrame::FileSent {
        path: "/shared/report.pdf".into(),
        file_name: "report.pdf".into(),
        size_bytes: 2048,
        caption: Some("the report".into()),
    }));
    assert!(
        matches!(state.transcript.last(), Some(Entry::Notice(text))
            if text == "the agent sent you a file: /shared/report.pdf (2048 bytes): the report"),
        "{:?}",
        state.transcript.last()
    );
}
