//! `TuiUiState`: everything the screen shows, as plain data, changed only
//! by `TuiUiState::update` (an event in, commands out). No terminal and no
//! socket here, so every behaviour is unit-tested directly.

use channels::{ConnectionState, LinkEvent};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use types::SafetyTier;
use types::channel::InboundPayload;
use types::ids::{ModelId, SessionId, TurnId};
use types::protocol::gateway::{GatewayErrorCode, GatewayServerFrame, SessionSummary, TurnUsage};
use types::runner::SandboxTier;

use crate::input::{InputBuffer, InputHistory};

/// Something that happened: a key, a paste, a frame from the gateway, or
/// news about the link to it.
#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    Key(KeyEvent),
    Paste(String),
    Frame(GatewayServerFrame),
    Link(LinkEvent),
}

/// What the state asks the program to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send the user's action to the gateway.
    Send(InboundPayload),
    Quit,
}

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionView {
    Connecting,
    Connected,
    Reconnecting { attempt: u32, reason: String },
    Closed { reason: String },
}

/// A tool call's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolStatus {
    Running,
    Succeeded,
    Failed,
}

/// One item of the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    User(String),
    /// Assistant text; `streaming` while deltas may still be appended.
    Assistant {
        text: String,
        streaming: bool,
    },
    /// The model's reasoning before an answer or a tool call; shown only
    /// when `TuiUiState::show_reasoning` is on, else as a one-line marker.
    Reasoning {
        text: String,
        streaming: bool,
    },
    Tool {
        call_id: String,
        name: String,
        summary: String,
        status: ToolStatus,
    },
    Notice(String),
    Error(String),
}

/// The turn the gateway is running for this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveTurn {
    pub turn_id: TurnId,
    /// Whether assistant text has arrived for it.
    pub streamed_text: bool,
    /// Ctrl+C was pressed; `TurnCancelled` is expected.
    pub cancelling: bool,
}

/// How far PageUp/PageDown move the approval panel: no more than the rows
/// the panel shows (see `render::APPROVAL_MIN_ROWS`), so no line is skipped.
pub const APPROVAL_PAGE_LINES: usize = 5;

/// A privileged tool call waiting for y/n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPrompt {
    pub request_id: String,
    pub tool: String,
    pub safety_tier: SafetyTier,
    /// The complete (scrubbed) arguments, pretty-printed when they are
    /// JSON: all of them are shown, scrollable.
    pub arguments: String,
    /// Lines of the arguments scrolled past.
    pub scroll: usize,
}

impl ApprovalPrompt {
    /// `arguments` as indented JSON, or as they came when they are not JSON.
    pub fn pretty_arguments(arguments: &str) -> String {
        serde_json::from_str::<serde_json::Value>(arguments)
            .and_then(|value| serde_json::to_string_pretty(&value))
            .unwrap_or_else(|_| arguments.to_owned())
    }
}

/// Lines of `/help`.
pub const HELP: &[&str] = &[
    "Enter sends; Alt+Enter (or Ctrl+J) starts a new line; Up/Down browse history.",
    "PageUp/PageDown scroll the transcript; Ctrl+T shows or hides the model's reasoning.",
    "Ctrl+C cancels the running turn, or quits when nothing runs.",
    "/new starts a new session (old ones stay stored).",
    "/sessions lists your sessions.",
    "/help shows this; /quit leaves. Start a message with // to send a leading /.",
];

/// The whole user interface as data.
#[derive(Debug, Clone, PartialEq)]
pub struct TuiUiState {
    pub connection: ConnectionView,
    pub session_id: Option<SessionId>,
    pub model: Option<ModelId>,
    pub tier: Option<SandboxTier>,
    pub degraded_reasons: Vec<String>,
    pub transcript: Vec<Entry>,
    pub active_turn: Option<ActiveTurn>,
    /// Turns sent whose `TurnStarted` has not arrived (queued in the lane).
    pub queued_turns: usize,
    pub input: InputBuffer,
    pub history: InputHistory,
    pub last_usage: Option<TurnUsage>,
    pub pending_approval: Option<ApprovalPrompt>,
    pub last_error: Option<String>,
    /// Transcript lines scrolled up from the bottom.
    pub scroll_back: usize,
    /// Whether reasoning entries show their text (Ctrl+T toggles).
    pub show_reasoning: bool,
    pub quit: bool,
}

impl Default for TuiUiState {
    fn default() -> Self {
        Self::new()
    }
}

impl TuiUiState {
    pub fn new() -> Self {
        Self {
            connection: ConnectionView::Connecting,
            session_id: None,
            model: None,
            tier: None,
            degraded_reasons: Vec::new(),
            transcript: Vec::new(),
            active_turn: None,
            queued_turns: 0,
            input: InputBuffer::default(),
            history: InputHistory::default(),
            last_usage: None,
            pending_approval: None,
            last_error: None,
            scroll_back: 0,
            show_reasoning: false,
            quit: false,
        }
    }

    /// Whether a turn runs or waits in the lane (Ctrl+C then cancels
    /// instead of quitting).
    pub fn busy(&self) -> bool {
        self.active_turn.is_some() || self.queued_turns > 0
    }

    pub fn is_connected(&self) -> bool {
        self.connection == ConnectionView::Connected
    }

    /// Applies one event and returns what must be done.
    pub fn update(&mut self, event: UiEvent) -> Vec<Command> {
        match event {
            UiEvent::Key(key) => self.on_key(key),
            UiEvent::Paste(text) => {
                if self.pending_approval.is_none() {
                    self.input.insert_str(&text);
                }
                Vec::new()
            }
            UiEvent::Frame(frame) => {
                self.on_frame(frame);
                Vec::new()
            }
            UiEvent::Link(event) => {
                self.on_link(event);
                Vec::new()
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        match key.code {
            KeyCode::Char('c') if ctrl => return self.interrupt(),
            KeyCode::Char('d') if ctrl && self.input.is_empty() && !self.busy() => {
                return self.quit();
            }
            // Only the view changes, so it works during an approval too.
            KeyCode::Char('t') if ctrl => {
                self.show_reasoning = !self.show_reasoning;
                return Vec::new();
            }
            _ => {}
        }
        if let Some(prompt) = self.pending_approval.clone() {
            return self.on_approval_key(&prompt, key.code);
        }
        match key.code {
            KeyCode::Enter if alt || shift => self.input.insert_char('\n'),
            KeyCode::Char('j') if ctrl => self.input.insert_char('\n'),
            KeyCode::Enter => return self.submit(),
            KeyCode::Char(c) if !ctrl => self.input.insert_char(c),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Up if self.input.on_first_line() => {
                if let Some(entry) = self.history.older(self.input.text()) {
                    let entry = entry.to_owned();
                    self.input.set(entry);
                }
            }
            KeyCode::Up => self.input.up(),
            KeyCode::Down if self.input.on_last_line() => {
                if let Some(entry) = self.history.newer() {
                    let entry = entry.to_owned();
                    self.input.set(entry);
                }
            }
            KeyCode::Down => self.input.down(),
            KeyCode::PageUp => self.scroll_back = self.scroll_back.saturating_add(10),
            KeyCode::PageDown => self.scroll_back = self.scroll_back.saturating_sub(10),
            _ => {}
        }
        Vec::new()
    }

    fn on_approval_key(&mut self, prompt: &ApprovalPrompt, code: KeyCode) -> Vec<Command> {
        let approved = match code {
            KeyCode::Char('y' | 'Y') => true,
            KeyCode::Char('n' | 'N') | KeyCode::Esc => false,
            KeyCode::Up | KeyCode::Down | KeyCode::PageUp | KeyCode::PageDown => {
                if let Some(pending) = self.pending_approval.as_mut() {
                    // The renderer stops at the last line; here only the
                    // direction and the step matter.
                    pending.scroll = match code {
                        KeyCode::Up => pending.scroll.saturating_sub(1),
                        KeyCode::Down => pending.scroll.saturating_add(1),
                        KeyCode::PageUp => pending.scroll.saturating_sub(APPROVAL_PAGE_LINES),
                        _ => pending.scroll.saturating_add(APPROVAL_PAGE_LINES),
                    };
                }
                return Vec::new();
            }
            _ => return Vec::new(),
        };
        self.pending_approval = None;
        self.transcript.push(Entry::Notice(format!(
            "{} {}",
            if approved { "approved" } else { "denied" },
            prompt.tool
        )));
        vec![Command::Send(InboundPayload::ApprovalResponse {
            request_id: prompt.request_id.clone(),
            approved,
        })]
    }

    /// Ctrl+C: cancel what runs, else quit.
    fn interrupt(&mut self) -> Vec<Command> {
        if !self.busy() {
            return self.quit();
        }
        if !self.is_connected() {
            self.last_error = Some(
                "not connected: the turn cannot be cancelled until the connection is back".into(),
            );
            return Vec::new();
        }
        if let Some(turn) = self.active_turn.as_mut() {
            turn.cancelling = true;
        }
        self.pending_approval = None;
        self.transcript
            .push(Entry::Notice("cancelling the turn…".into()));
        vec![Command::Send(InboundPayload::Cancel)]
    }

    fn quit(&mut self) -> Vec<Command> {
        self.quit = true;
        vec![Command::Quit]
    }

    /// Enter: a command or a message.
    fn submit(&mut self) -> Vec<Command> {
        let text = self.input.text().to_owned();
        if text.trim().is_empty() {
            return Vec::new();
        }
        let command = text.trim();
        if command.starts_with('/') && !command.starts_with("//") {
            return self.run_command(command);
        }
        if !self.is_connected() {
            self.last_error =
                Some("not connected: your message is still in the input box; press Enter again once connected".into());
            return Vec::new();
        }
        let content = match text.strip_prefix('/') {
            Some(rest) if rest.starts_with('/') => rest.to_owned(),
            _ => text,
        };
        self.input.take();
        self.history.push(&content);
        self.last_error = None;
        self.scroll_back = 0;
        self.transcript.push(Entry::User(content.clone()));
        self.queued_turns += 1;
        vec![Command::Send(InboundPayload::Message {
            text: content,
            attachments: Vec::new(),
        })]
    }

    fn run_command(&mut self, command: &str) -> Vec<Command> {
        let name = command.split_whitespace().next().unwrap_or(command);
        let action = match name {
            "/quit" | "/exit" => return self.quit(),
            "/help" => {
                self.input.take();
                self.transcript
                    .extend(HELP.iter().map(|line| Entry::Notice((*line).to_owned())));
                return Vec::new();
            }
            "/new" => InboundPayload::NewSession,
            "/sessions" => InboundPayload::ListSessions,
            unknown => {
                self.last_error = Some(format!(
                    "unknown command {unknown}: /help lists the commands"
                ));
                return Vec::new();
            }
        };
        if !self.is_connected() {
            self.last_error = Some(format!("not connected: {name} needs the gateway"));
            return Vec::new();
        }
        self.history.push(command);
        self.input.take();
        self.last_error = None;
        vec![Command::Send(action)]
    }

    fn on_not_sent(&mut self, payload: InboundPayload, error: String) {
        match payload {
            InboundPayload::Message { text: content, .. } => {
                self.queued_turns = self.queued_turns.saturating_sub(1);
                let restored = self.input.is_empty();
                if restored {
                    self.input.set(content);
                }
                self.transcript.push(Entry::Error(format!(
                    "message not sent: {error}{}",
                    if restored {
                        " (it is back in the input box)"
                    } else {
                        ""
                    }
                )));
            }
            InboundPayload::Cancel
            | InboundPayload::NewSession
            | InboundPayload::ApprovalResponse { .. }
            | InboundPayload::HealthCheck
            | InboundPayload::ListSessions => {
                self.transcript
                    .push(Entry::Error(format!("not sent: {error}")));
            }
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connection(state) => self.on_connection(state),
            LinkEvent::Undecodable { message } => self.push_error(message),
            LinkEvent::NotSent { payload, error } => self.on_not_sent(payload, error),
        }
    }

    fn on_connection(&mut self, state: ConnectionState) {
        match state {
            ConnectionState::Connected { .. } => {
                if matches!(self.connection, ConnectionView::Reconnecting { .. }) {
                    self.transcript.push(Entry::Notice("reconnected".into()));
                }
                self.connection = ConnectionView::Connected;
                self.last_error = None;
            }
            ConnectionState::Reconnecting {
                attempt,
                retry_in,
                reason,
            } => {
                if self.connection == ConnectionView::Connected {
                    self.transcript.push(Entry::Notice(format!(
                        "connection lost ({reason}); reconnecting…"
                    )));
                }
                self.last_error = Some(format!(
                    "reconnecting (attempt {attempt}, in {:.1}s): {reason}",
                    retry_in.as_secs_f64()
                ));
                self.connection = ConnectionView::Reconnecting { attempt, reason };
            }
            ConnectionState::Closed { reason } => {
                self.push_error(format!("disconnected: {reason}. /quit to leave"));
                self.connection = ConnectionView::Closed { reason };
            }
        }
    }

    fn on_frame(&mut self, frame: GatewayServerFrame) {
        match frame {
            GatewayServerFrame::HelloAck {
                runtime_session_id,
                tier,
                degraded_reasons,
                model,
            } => {
                let switched = self
                    .session_id
                    .as_ref()
                    .is_some_and(|old| *old != runtime_session_id);
                if switched {
                    self.end_turn();
                    self.queued_turns = 0;
                    self.transcript
                        .push(Entry::Notice(format!("new session {runtime_session_id}")));
                }
                self.session_id = Some(runtime_session_id);
                self.tier = Some(tier);
                self.model = Some(model);
                self.degraded_reasons = degraded_reasons.iter().map(ToString::to_string).collect();
            }
            GatewayServerFrame::TurnStarted { turn_id, .. } => {
                self.queued_turns = self.queued_turns.saturating_sub(1);
                self.end_streaming();
                self.active_turn = Some(ActiveTurn {
                    turn_id,
                    streamed_text: false,
                    cancelling: false,
                });
            }
            GatewayServerFrame::AssistantDelta { text } => {
                if let Some(turn) = self.active_turn.as_mut() {
                    turn.streamed_text = true;
                }
                match self.transcript.last_mut() {
                    Some(Entry::Assistant {
                        text: streamed,
                        streaming: true,
                    }) => streamed.push_str(&text),
                    _ => {
                        self.end_streaming();
                        self.transcript.push(Entry::Assistant {
                            text,
                            streaming: true,
                        });
                    }
                }
            }
            GatewayServerFrame::ReasoningDelta { text } => match self.transcript.last_mut() {
                Some(Entry::Reasoning {
                    text: streamed,
                    streaming: true,
                }) => streamed.push_str(&text),
                _ => {
                    self.end_streaming();
                    self.transcript.push(Entry::Reasoning {
                        text,
                        streaming: true,
                    });
                }
            },
            GatewayServerFrame::ToolCallStarted {
                call_id,
                name,
                summary,
            } => {
                self.end_streaming();
                self.transcript.push(Entry::Tool {
                    call_id,
                    name,
                    summary,
                    status: ToolStatus::Running,
                });
            }
            GatewayServerFrame::ToolCallFinished { call_id, name, ok } => {
                let status = if ok {
                    ToolStatus::Succeeded
                } else {
                    ToolStatus::Failed
                };
                let running = self
                    .transcript
                    .iter_mut()
                    .rev()
                    .find_map(|entry| match entry {
                        Entry::Tool {
                            call_id: id,
                            status,
                            ..
                        } if *id == call_id => Some(status),
                        _ => None,
                    });
                match running {
                    Some(entry_status) => *entry_status = status,
                    None => self.transcript.push(Entry::Tool {
                        call_id,
                        name,
                        summary: String::new(),
                        status,
                    }),
                }
            }
            GatewayServerFrame::ApprovalRequest {
                request_id,
                tool,
                arguments_summary,
                arguments,
                safety_tier,
            } => {
                self.end_streaming();
                self.transcript.push(Entry::Notice(format!(
                    "approval needed: {tool} ({safety_tier}) {arguments_summary}"
                )));
                self.pending_approval = Some(ApprovalPrompt {
                    request_id,
                    tool,
                    safety_tier,
                    arguments: ApprovalPrompt::pretty_arguments(&arguments),
                    scroll: 0,
                });
            }
            GatewayServerFrame::TurnCompleted {
                final_message,
                usage,
                ..
            } => {
                let streamed = self
                    .active_turn
                    .as_ref()
                    .is_some_and(|turn| turn.streamed_text);
                // A client that resumed too late gets only the terminal
                // frame: then the final message is all it has to show.
                if !streamed && !final_message.is_empty() {
                    self.end_streaming();
                    self.transcript.push(Entry::Assistant {
                        text: final_message,
                        streaming: false,
                    });
                }
                self.last_usage = Some(usage);
                self.end_turn();
            }
            GatewayServerFrame::TurnCancelled { .. } => {
                self.end_turn();
                self.transcript.push(Entry::Notice("turn cancelled".into()));
            }
            GatewayServerFrame::Error { code, message } => self.on_error(code, message),
            GatewayServerFrame::HealthStatus {
                healthy,
                tier,
                degraded_reasons,
                active_sessions,
                uptime_secs,
            } => {
                self.transcript.push(Entry::Notice(format!(
                    "gateway {}: tier {tier}, {active_sessions} active sessions, up {uptime_secs}s{}",
                    if healthy { "healthy" } else { "unhealthy" },
                    if degraded_reasons.is_empty() {
                        String::new()
                    } else {
                        format!(", {} degraded reasons", degraded_reasons.len())
                    }
                )));
            }
            GatewayServerFrame::Sessions { sessions } => self.list_sessions(&sessions),
            GatewayServerFrame::FileSent {
                path,
                size_bytes,
                caption,
                ..
            } => {
                self.end_streaming();
                let caption = caption.map(|c| format!(": {c}")).unwrap_or_default();
                self.transcript.push(Entry::Notice(format!(
                    "the agent sent you a file: {path} ({size_bytes} bytes){caption}"
                )));
            }
        }
    }

    fn on_error(&mut self, code: GatewayErrorCode, message: String) {
        match code {
            GatewayErrorCode::TurnFailed => self.end_turn(),
            GatewayErrorCode::Busy => self.queued_turns = self.queued_turns.saturating_sub(1),
            GatewayErrorCode::NoActiveTurn => {
                // The turn ended before the cancellation arrived.
                if let Some(turn) = self.active_turn.as_mut() {
                    turn.cancelling = false;
                }
                self.queued_turns = 0;
            }
            GatewayErrorCode::UnknownApproval => self.pending_approval = None,
            GatewayErrorCode::Unauthorized
            | GatewayErrorCode::HelloRequired
            | GatewayErrorCode::MalformedFrame
            | GatewayErrorCode::FrameTooLarge
            | GatewayErrorCode::UnknownSession
            | GatewayErrorCode::Internal => {}
        }
        self.push_error(message);
    }

    fn list_sessions(&mut self, sessions: &[SessionSummary]) {
        if sessions.is_empty() {
            self.transcript
                .push(Entry::Notice("no sessions yet".into()));
            return;
        }
        self.transcript
            .push(Entry::Notice(format!("{} sessions:", sessions.len())));
        for session in sessions {
            self.transcript.push(Entry::Notice(format!(
                "{} {}{}",
                if session.current { "*" } else { " " },
                session.session_id,
                format_age(session.updated_at_ms)
            )));
        }
    }

    fn push_error(&mut self, message: String) {
        self.last_error = Some(message.clone());
        self.transcript.push(Entry::Error(message));
    }

    /// Stops appending to the current assistant text or reasoning.
    fn end_streaming(&mut self) {
        if let Some(Entry::Assistant { streaming, .. } | Entry::Reasoning { streaming, .. }) =
            self.transcript.last_mut()
        {
            *streaming = false;
        }
    }

    fn end_turn(&mut self) {
        self.end_streaming();
        self.active_turn = None;
        self.pending_approval = None;
    }
}

/// ` (updated …)` from milliseconds since the epoch, in UTC.
fn format_age(updated_at_ms: i64) -> String {
    let secs = updated_at_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (hour, minute) = (secs.rem_euclid(86_400) / 3600, secs.rem_euclid(3600) / 60);
    let (year, month, day) = civil_from_days(days);
    format!(" (updated {year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC)")
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
