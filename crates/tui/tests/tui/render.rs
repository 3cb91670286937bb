//! Rendering through ratatui's `TestBackend`, at 80×24 and after resizes.

use channels::{ConnectionState, LinkEvent};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui::render::render;
use tui::{TuiUiState, UiEvent};
use types::SafetyTier;
use types::protocol::gateway::{GatewayServerFrame, TurnUsage};
use types::runner::SandboxTier;

fn key(code: KeyCode) -> UiEvent {
    UiEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn frame(frame: GatewayServerFrame) -> UiEvent {
    UiEvent::Frame(frame)
}

/// A conversation with a finished turn, a tool call and a streaming answer.
fn conversation() -> TuiUiState {
    let mut state = TuiUiState::new();
    state.update(UiEvent::Link(LinkEvent::Connection(
        ConnectionState::Connected {
            session_id: "s-1".into(),
        },
    )));
    state.update(frame(GatewayServerFrame::HelloAck {
        runtime_session_id: "s-1".into(),
        tier: SandboxTier::Container,
        degraded_reasons: vec![],
        model: "gpt-4.1".into(),
    }));
    state.update(UiEvent::Paste("What is in /shared?".into()));
    state.update(UiEvent::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Enter,
        crossterm::event::KeyModifiers::NONE,
    )));
    for event in [
        GatewayServerFrame::TurnStarted { turn_id: "t-1".into(), client_turn_id: None },
        GatewayServerFrame::ToolCallStarted {
            call_id: "c1".into(),
            name: "file_list".into(),
            summary: "/shared".into(),
        },
        GatewayServerFrame::ToolCallFinished { call_id: "c1".into(), name: "file_list".into(), ok: true },
        GatewayServerFrame::AssistantDelta {
            text: "There are three files: notes.md, plan.txt and a folder called archive that holds last year's reports.".into(),
        },
        GatewayServerFrame::TurnCompleted {
            turn_id: "t-1".into(),
            final_message: String::new(),
            usage: TurnUsage { input_tokens: 900, output_tokens: 34, total_tokens: 934, cost_usd: 0.0021, ..TurnUsage::default() },
        },
    ] {
        state.update(frame(event));
    }
    state
}

fn draw(terminal: &mut Terminal<TestBackend>, state: &TuiUiState) -> Vec<String> {
    terminal.draw(|f| render(state, f)).unwrap();
    let buffer = terminal.backend().buffer();
    let width = usize::from(buffer.area.width);
    buffer
        .content
        .chunks(width)
        .map(|row| {
            row.iter()
                .map(|cell| cell.symbol())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect()
}

#[test]
fn the_80x24_screen() {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let screen = draw(&mut terminal, &conversation());
    insta::assert_snapshot!("conversation_80x24", screen.join("\n"));
    assert_eq!(screen.len(), 24);
    assert!(
        screen[23]
            .starts_with("● connected │ session s-1 │ gpt-4.1 │ tier container │ 934 tok $0.0021")
    );
}

#[test]
fn resizing_keeps_the_layout_and_the_newest_lines() {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut state = conversation();
    for n in 0..40 {
        state.update(frame(GatewayServerFrame::AssistantDelta {
            text: format!("line {n} "),
        }));
    }
    draw(&mut terminal, &state);
    for (width, height) in [(40, 12), (120, 40), (80, 24), (20, 6)] {
        terminal.backend_mut().resize(width, height);
        let screen = draw(&mut terminal, &state);
        assert_eq!(screen.len(), usize::from(height));
        assert!(
            screen
                .iter()
                .all(|row| unicode_width(row) <= usize::from(width))
        );
        // The status bar is the last row; the input box sits on top of it.
        assert!(
            screen[usize::from(height) - 1].starts_with("● connected"),
            "{screen:#?}"
        );
        assert!(
            screen[usize::from(height) - 2].starts_with('└'),
            "{screen:#?}"
        );
        // The newest streamed text is visible above the input box.
        let transcript = screen[..usize::from(height) - 4].join(" ");
        assert!(transcript.contains("39"), "{width}x{height}: {screen:#?}");
    }
}

#[test]
fn the_input_box_grows_with_the_prompt_and_an_approval_band_appears() {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut state = conversation();
    state.update(UiEvent::Paste("first line\nsecond line\nthird line".into()));
    let screen = draw(&mut terminal, &state);
    assert_eq!(
        screen[19],
        "│first line                                                                    │"
    );
    assert_eq!(screen[21].trim_end_matches('│').trim_end(), "│third line");
    assert_eq!(terminal.get_cursor_position().unwrap(), (11, 21).into());

    state.update(frame(GatewayServerFrame::ApprovalRequest {
        request_id: "r-1".into(),
        tool: "shell_exec".into(),
        arguments_summary: r#"{"command":"rm -rf build"}"#.into(),
        arguments: r#"{"command":"rm -rf build"}"#.into(),
        safety_tier: SafetyTier::Privileged,
    }));
    let screen = draw(&mut terminal, &state);
    let panel = screen[..18].join("\n");
    assert!(
        panel.contains("allow shell_exec (privileged)? [y]es / [n]o"),
        "{screen:#?}"
    );
    assert!(
        panel.contains(r#""command": "rm -rf build""#),
        "{screen:#?}"
    );
    assert!(
        screen[18].contains("answer the approval prompt"),
        "{screen:#?}"
    );
}

#[test]
fn long_approval_arguments_are_shown_in_full_by_scrolling() {
    let mut terminal = Terminal::new(TestBackend::new(60, 24)).unwrap();
    let mut state = conversation();
    let steps: Vec<String> = (1..=60).map(|n| format!("echo step-{n:02}")).collect();
    let arguments = serde_json::json!({ "command": steps.join(" && ") }).to_string();
    state.update(frame(GatewayServerFrame::ApprovalRequest {
        request_id: "r-1".into(),
        tool: "shell_exec".into(),
        arguments_summary: String::new(),
        arguments,
        safety_tier: SafetyTier::Privileged,
    }));
    let mut seen = String::new();
    for _ in 0..10 {
        seen.push_str(&draw(&mut terminal, &state).join("\n"));
        state.update(key(KeyCode::PageDown));
    }
    assert!(seen.contains("(Up/Down scroll)"), "{seen}");
    // One long value, wrapped at spaces; scrolling reaches every part.
    for n in [1, 30, 60] {
        assert!(
            seen.contains(&format!("step-{n:02}")),
            "step {n} never shown: {seen}"
        );
    }
}

fn unicode_width(text: &str) -> usize {
    use unicode_width::UnicodeWidthStr;
    text.width()
}

#[test]
fn the_status_bar_names_cached_input_when_there_was_some() {
    let mut state = conversation();
    let line = |state: &TuiUiState| tui::render::status_line(state, 120).to_string();
    assert!(!line(&state).contains("cached"), "{}", line(&state));
    state.last_usage = Some(TurnUsage {
        cached_input_tokens: 800,
        ..state.last_usage.unwrap()
    });
    assert!(
        line(&state).contains("934 tok (800 cached) $0.0021"),
        "{}",
        line(&state)
    );
}
