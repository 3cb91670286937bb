//! One Telegram chat's side of the conversation: `ChatLink`, the
//! `LinkedChannel` that `bridge` drives with the gateway's frames, and
//! `ChatWorker`, which turns those frames into Telegram messages — the
//! reply sent as soon as text streams and edited as more arrives (at most
//! once per `edit_interval`), the typing indicator while a turn runs, the
//! final reply formatted and split, approval requests with buttons.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::time::Instant;
use types::Channel;
use types::channel::{ChannelHealthStatus, ChannelListenStream, ChannelOutboundEvent};
use types::error::ChannelError;
use types::protocol::gateway::{GatewayErrorCode, GatewayServerFrame};
use types::{ModelId, SessionId};

use super::api::{
    BotApi, EditMessageText, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions,
    MAX_CALLBACK_DATA, MAX_MESSAGE_UNITS, ParseMode, SendMessage,
};
use super::markdown;
use super::outgoing::read_shared;
use super::state::{ChatKey, StateFile};
use crate::bridge::{LinkEvent, LinkedChannel};
use crate::client::ConnectionState;

/// How often "typing…" is renewed while a turn runs (Telegram shows it for
/// about five seconds).
const TYPING_EVERY: Duration = Duration::from_secs(4);

/// What a chat's worker is told.
#[derive(Debug)]
pub(super) enum WorkerInput {
    /// A frame of the chat's session.
    Frame(GatewayServerFrame),
    /// News about the link to the gateway.
    Link(LinkEvent),
    /// A person tapped Approve or Deny on a request's message.
    Decided {
        request_id: String,
        approved: bool,
        by: String,
    },
    /// A chat command asked for a new session; announce the next one.
    ExpectNewSession,
    /// Something to say that is not from the agent (help, refusals).
    Notice(String),
}

/// The `Channel` `bridge` drives for one chat: frames and link news go to
/// the chat's worker, and the chat's actions come from the poller.
#[derive(Debug)]
pub(super) struct ChatLink {
    pub(super) worker: mpsc::Sender<WorkerInput>,
    pub(super) actions: Mutex<Option<ChannelListenStream>>,
}

impl ChatLink {
    async fn tell(&self, input: WorkerInput) -> Result<(), ChannelError> {
        self.worker
            .send(input)
            .await
            .map_err(|_| ChannelError::Closed)
    }
}

#[async_trait]
impl Channel for ChatLink {
    async fn send(&self, event: ChannelOutboundEvent) -> Result<(), ChannelError> {
        self.tell(WorkerInput::Frame(event.frame)).await
    }

    async fn listen(&self, _buffer_size: usize) -> Result<ChannelListenStream, ChannelError> {
        self.actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| ChannelError::Protocol("a chat's actions have one listener".into()))
    }

    async fn health_check(&self) -> Result<ChannelHealthStatus, ChannelError> {
        Ok(if self.worker.is_closed() {
            ChannelHealthStatus::Unhealthy {
                reason: "the chat's worker stopped".into(),
            }
        } else {
            ChannelHealthStatus::Healthy
        })
    }
}

#[async_trait]
impl LinkedChannel for ChatLink {
    async fn link_event(&self, event: LinkEvent) -> Result<(), ChannelError> {
        self.tell(WorkerInput::Link(event)).await
    }
}

/// The reply being streamed: its text so far and the messages showing it.
#[derive(Debug, Default)]
struct Reply {
    text: String,
    /// Each message id with the text it shows now and how it is parsed.
    shown: Vec<Shown>,
    /// Text arrived that no message shows yet.
    dirty: bool,
}

/// A message of the reply as Telegram shows it.
#[derive(Debug, PartialEq)]
struct Shown {
    message_id: i64,
    text: String,
    parse_mode: Option<ParseMode>,
}

/// An approval request shown with its buttons.
#[derive(Debug, Clone, Copy)]
struct PendingApproval {
    message_id: i64,
    /// When the gateway stops waiting (and denies).
    expires: Instant,
}

/// Renders one chat's frames to Telegram.
#[derive(Debug)]
pub(super) struct ChatWorker {
    pub(super) api: BotApi,
    pub(super) chat: ChatKey,
    pub(super) state: StateFile,
    pub(super) edit_interval: Duration,
    /// The host directory behind `/shared` (files the agent sends).
    shared_dir: PathBuf,
    reply: Reply,
    last_flush: Option<Instant>,
    turn_running: bool,
    next_typing: Instant,
    /// Approval requests still waiting, by request id.
    approvals: BTreeMap<String, PendingApproval>,
    /// Requests answered in this turn: request id → its message (the
    /// gateway may still say the answer came too late).
    answered: BTreeMap<String, i64>,
    /// How long the gateway waits for an answer.
    approval_timeout: Duration,
    announce_session: bool,
    session: Option<SessionId>,
    model: Option<ModelId>,
}

impl ChatWorker {
    pub(super) fn new(
        api: BotApi,
        chat: ChatKey,
        state: StateFile,
        edit_interval: Duration,
        shared_dir: PathBuf,
        approval_timeout: Duration,
    ) -> Self {
        Self {
            shared_dir,
            session: state.session(chat),
            api,
            chat,
            state,
            edit_interval,
            reply: Reply::default(),
            last_flush: None,
            turn_running: false,
            next_typing: Instant::now(),
            approvals: BTreeMap::new(),
            answered: BTreeMap::new(),
            approval_timeout,
            announce_session: false,
            model: None,
        }
    }

    /// Runs until every sender of `inputs` is gone.
    pub(super) async fn run(mut self, mut inputs: mpsc::Receiver<WorkerInput>) {
        loop {
            let flush_at = self.reply.dirty.then(|| {
                self.last_flush
                    .map_or_else(Instant::now, |at| at + self.edit_interval)
            });
            let typing_at = self.turn_running.then_some(self.next_typing);
            let expiry_at = self.approvals.values().map(|pending| pending.expires).min();
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input).await,
                    None => return,
                },
                () = sleep_until(flush_at), if flush_at.is_some() => self.flush().await,
                () = sleep_until(typing_at), if typing_at.is_some() => self.typing().await,
                () = sleep_until(expiry_at), if expiry_at.is_some() => self.expire_approvals().await,
            }
        }
    }

    async fn handle(&mut self, input: WorkerInput) {
        match input {
            WorkerInput::Frame(frame) => self.frame(frame).await,
            WorkerInput::Link(LinkEvent::NotSent { error, .. }) => {
                self.say(format!("⚠️ Your message did not reach the agent: {error}"))
                    .await;
            }
            WorkerInput::Link(LinkEvent::Connection(ConnectionState::Closed { reason })) => {
                self.say(format!("⚠️ Lost the connection to the agent: {reason}"))
                    .await;
            }
            WorkerInput::Link(LinkEvent::Connection(_) | LinkEvent::Undecodable { .. }) => {}
            WorkerInput::Decided {
                request_id,
                approved,
                by,
            } => {
                if let Some(pending) = self.approvals.remove(&request_id) {
                    let verdict = if approved {
                        "✅ Approved"
                    } else {
                        "❌ Denied"
                    };
                    self.edit_plain(pending.message_id, format!("{verdict} by {by}."))
                        .await;
                    self.answered.insert(request_id, pending.message_id);
                }
            }
            WorkerInput::ExpectNewSession => self.announce_session = true,
            WorkerInput::Notice(text) => self.say(text).await,
        }
    }

    async fn frame(&mut self, frame: GatewayServerFrame) {
        match frame {
            GatewayServerFrame::HelloAck {
                runtime_session_id,
                model,
                ..
            } => {
                self.model = Some(model);
                if self.session.as_ref() != Some(&runtime_session_id) {
                    if let Err(error) = self
                        .state
                        .set_session(self.chat, runtime_session_id.clone())
                        .await
                    {
                        tracing::error!(chat = %self.chat, %error, "telegram chat's session not recorded");
                    }
                    self.session = Some(runtime_session_id.clone());
                }
                if std::mem::take(&mut self.announce_session) {
                    self.say(format!(
                        "🆕 New conversation ({runtime_session_id}). The old one stays stored."
                    ))
                    .await;
                }
            }
            GatewayServerFrame::TurnStarted { .. } => {
                self.reply = Reply::default();
                self.turn_running = true;
                self.typing().await;
            }
            GatewayServerFrame::AssistantDelta { text } => {
                self.reply.text.push_str(&text);
                self.reply.dirty = true;
            }
            GatewayServerFrame::ApprovalRequest {
                request_id,
                tool,
                arguments,
                ..
            } => {
                self.flush().await;
                self.ask_approval(request_id, tool, arguments).await;
            }
            GatewayServerFrame::FileSent {
                path,
                file_name,
                caption,
                ..
            } => {
                self.flush().await;
                self.send_file(&path, &file_name, caption.as_deref()).await;
            }
            GatewayServerFrame::TurnCompleted { final_message, .. } => {
                self.finish(&final_message).await;
                self.end_turn().await;
            }
            GatewayServerFrame::TurnCancelled { .. } => {
                self.flush().await;
                self.end_turn().await;
                self.say("⏹ Cancelled.".into()).await;
            }
            GatewayServerFrame::Error { code, message } => {
                if code == GatewayErrorCode::TurnFailed {
                    self.flush().await;
                    self.end_turn().await;
                }
                if code == GatewayErrorCode::UnknownApproval {
                    // An answer that arrived after the gateway gave up:
                    // the message must not claim it counted.
                    let late: Vec<(String, i64)> = self
                        .answered
                        .iter()
                        .filter(|(id, _)| message.contains(id.as_str()))
                        .map(|(id, message_id)| (id.clone(), *message_id))
                        .collect();
                    for (id, message_id) in late {
                        self.answered.remove(&id);
                        self.edit_plain(message_id, self.timed_out_text()).await;
                    }
                }
                let text = match code {
                    GatewayErrorCode::NoActiveTurn => "Nothing is running.".to_owned(),
                    _ => format!("⚠️ {message}"),
                };
                self.say(text).await;
            }
            GatewayServerFrame::HealthStatus {
                healthy,
                tier,
                degraded_reasons,
                active_sessions,
                uptime_secs,
            } => {
                let mut text = format!(
                    "Agent: {}\nSession: {}\nModel: {}\nIsolation: {tier}\nActive sessions: {active_sessions}\nUp for: {}",
                    if healthy { "healthy" } else { "unhealthy" },
                    self.session.as_ref().map_or("none yet", |id| id.as_str()),
                    self.model.as_ref().map_or("unknown", |id| id.as_str()),
                    humantime::format_duration(Duration::from_secs(uptime_secs)),
                );
                for reason in degraded_reasons {
                    text.push_str(&format!("\nDegraded: {reason}"));
                }
                self.say(text).await;
            }
            GatewayServerFrame::ReasoningDelta { .. }
            | GatewayServerFrame::ToolCallStarted { .. }
            | GatewayServerFrame::ToolCallFinished { .. }
            | GatewayServerFrame::Sessions { .. } => {}
        }
    }

    async fn end_turn(&mut self) {
        self.turn_running = false;
        self.reply = Reply::default();
        self.answered.clear();
        // The gateway settles every approval before a turn ends; one
        // still shown here ran out of time.
        for (_, pending) in std::mem::take(&mut self.approvals) {
            self.edit_plain(pending.message_id, self.timed_out_text())
                .await;
        }
    }

    fn timed_out_text(&self) -> String {
        format!(
            "⌛ No answer within {} s: denied.",
            self.approval_timeout.as_secs()
        )
    }

    /// Marks the requests the gateway has stopped waiting for.
    async fn expire_approvals(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .approvals
            .iter()
            .filter(|(_, pending)| pending.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(pending) = self.approvals.remove(&id) {
                self.edit_plain(pending.message_id, self.timed_out_text())
                    .await;
            }
        }
    }

    async fn typing(&mut self) {
        self.next_typing = Instant::now() + TYPING_EVERY;
        self.api
            .send_typing(self.chat.chat_id, self.chat.thread_id)
            .await;
    }

    /// Shows the streamed text so far, as plain text (the Markdown may be
    /// cut in the middle of a construct).
    async fn flush(&mut self) {
        if !self.reply.dirty {
            return;
        }
        self.reply.dirty = false;
        self.last_flush = Some(Instant::now());
        let pieces = markdown::split(&self.reply.text, MAX_MESSAGE_UNITS);
        for (index, piece) in pieces.into_iter().enumerate() {
            self.show(index, piece, None).await;
        }
    }

    /// The final reply, formatted, replacing what streaming showed.
    async fn finish(&mut self, final_message: &str) {
        let pieces = markdown::split(final_message, MAX_MESSAGE_UNITS);
        let count = pieces.len();
        for (index, piece) in pieces.into_iter().enumerate() {
            let html = markdown::to_html(&piece);
            self.show(index, piece, Some(html)).await;
        }
        // Streaming may have shown more than the final answer needs (text
        // of the turn's earlier model calls): those messages go.
        for extra in self
            .reply
            .shown
            .split_off(count.min(self.reply.shown.len()))
        {
            self.api
                .delete_message(self.chat.chat_id, extra.message_id)
                .await;
        }
    }

    /// Makes message `index` of the reply show `plain` (or `html`, falling
    /// back to `plain` when Telegram cannot parse it).
    async fn show(&mut self, index: usize, plain: String, html: Option<String>) {
        let mut attempts = match html {
            Some(html) => vec![(html, Some(ParseMode::Html)), (plain, None)],
            None => vec![(plain, None)],
        }
        .into_iter()
        .peekable();
        let existing = self.reply.shown.get(index).map(|shown| shown.message_id);
        if let (Some(shown), Some((text, parse_mode))) =
            (self.reply.shown.get(index), attempts.peek())
            && shown.text == *text
            && shown.parse_mode == *parse_mode
        {
            return;
        }
        let chat = self.chat;
        while let Some((text, parse_mode)) = attempts.next() {
            let result = match existing {
                Some(message_id) => self
                    .api
                    .edit_message_text(&EditMessageText {
                        chat_id: chat.chat_id,
                        message_id,
                        text: text.clone(),
                        parse_mode,
                        reply_markup: None,
                        link_preview_options: LinkPreviewOptions { is_disabled: true },
                    })
                    .await
                    .map(|()| message_id),
                None => self
                    .api
                    .send_message(&SendMessage {
                        chat_id: chat.chat_id,
                        message_thread_id: chat.thread_id,
                        text: text.clone(),
                        parse_mode,
                        reply_markup: None,
                        link_preview_options: LinkPreviewOptions { is_disabled: true },
                    })
                    .await
                    .map(|message| message.message_id),
            };
            match result {
                Ok(message_id) => {
                    let entry = Shown {
                        message_id,
                        text,
                        parse_mode,
                    };
                    match self.reply.shown.get_mut(index) {
                        Some(slot) => *slot = entry,
                        None => self.reply.shown.push(entry),
                    }
                    return;
                }
                Err(error) if error.is_bad_entities() && attempts.peek().is_some() => {
                    tracing::info!(chat = %chat, %error, "telegram refused the formatting; sending plain text");
                }
                Err(error) => {
                    tracing::warn!(chat = %chat, %error, "telegram reply not delivered");
                    return;
                }
            }
        }
    }

    async fn ask_approval(&mut self, request_id: String, tool: String, arguments: String) {
        let pretty = serde_json::from_str::<serde_json::Value>(&arguments)
            .ok()
            .and_then(|value| serde_json::to_string_pretty(&value).ok())
            .unwrap_or(arguments);
        // The arguments are shown in full: what the person approves. A
        // very long call is cut for display only, and says so.
        let budget = MAX_MESSAGE_UNITS - 200;
        let shown = if markdown::units(&pretty) > budget {
            let cut: String = pretty.chars().take(budget / 2).collect();
            format!(
                "{cut}\n… (cut for display; {} characters in all)",
                pretty.chars().count()
            )
        } else {
            pretty
        };
        let text = format!(
            "🔐 <b>{}</b> wants to run:\n<pre><code class=\"language-json\">{}</code></pre>",
            markdown::escape(&tool),
            markdown::escape(&shown)
        );
        let keyboard = approval_keyboard(&request_id);
        let note = if keyboard.is_none() {
            "\n(This request cannot be answered from Telegram: its id is too long.)"
        } else {
            ""
        };
        let request = SendMessage {
            chat_id: self.chat.chat_id,
            message_thread_id: self.chat.thread_id,
            text: format!("{text}{note}"),
            parse_mode: Some(ParseMode::Html),
            reply_markup: keyboard,
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        };
        match self.api.send_message(&request).await {
            Ok(message) => {
                let pending = PendingApproval {
                    message_id: message.message_id,
                    expires: Instant::now() + self.approval_timeout,
                };
                self.approvals.insert(request_id, pending);
            }
            Err(error) => {
                tracing::warn!(chat = %self.chat, %error, "telegram approval request not delivered");
            }
        }
    }

    /// Uploads a file the agent sent; a failure is told to the chat.
    async fn send_file(&self, path: &str, file_name: &str, caption: Option<&str>) {
        let shared_dir = self.shared_dir.clone();
        let owned_path = path.to_owned();
        let read = tokio::task::spawn_blocking(move || read_shared(&shared_dir, &owned_path))
            .await
            .unwrap_or_else(|e| Err(format!("reading the file failed: {e}")));
        let sent = match read {
            Ok(contents) => self
                .api
                .send_document(
                    self.chat.chat_id,
                    self.chat.thread_id,
                    file_name,
                    &contents,
                    caption,
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(problem) => Err(problem),
        };
        if let Err(problem) = sent {
            tracing::warn!(chat = %self.chat, path, %problem, "telegram file not sent");
            self.say(format!(
                "⚠️ The agent sent {path}, but it could not be delivered: {problem}"
            ))
            .await;
        }
    }

    async fn edit_plain(&self, message_id: i64, text: String) {
        let request = EditMessageText {
            chat_id: self.chat.chat_id,
            message_id,
            text,
            parse_mode: None,
            reply_markup: None,
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        };
        if let Err(error) = self.api.edit_message_text(&request).await {
            tracing::warn!(chat = %self.chat, %error, "telegram message not edited");
        }
    }

    /// Sends a plain-text message of its own.
    async fn say(&self, text: String) {
        for piece in markdown::split(&text, MAX_MESSAGE_UNITS) {
            let request = SendMessage {
                chat_id: self.chat.chat_id,
                message_thread_id: self.chat.thread_id,
                text: piece,
                parse_mode: None,
                reply_markup: None,
                link_preview_options: LinkPreviewOptions { is_disabled: true },
            };
            if let Err(error) = self.api.send_message(&request).await {
                tracing::warn!(chat = %self.chat, %error, "telegram message not delivered");
            }
        }
    }
}

/// The `callback_data` of an approval button: `y:<request id>` or
/// `n:<request id>`.
pub(super) fn approval_data(request_id: &str, approved: bool) -> String {
    format!("{}:{request_id}", if approved { 'y' } else { 'n' })
}

/// An approval button's answer, from its `callback_data`.
pub(super) fn parse_approval_data(data: &str) -> Option<(String, bool)> {
    let (verdict, request_id) = data.split_once(':')?;
    let approved = match verdict {
        "y" => true,
        "n" => false,
        _ => return None,
    };
    (!request_id.is_empty()).then(|| (request_id.to_owned(), approved))
}

fn approval_keyboard(request_id: &str) -> Option<InlineKeyboardMarkup> {
    let approve = approval_data(request_id, true);
    (approve.len() <= MAX_CALLBACK_DATA).then(|| InlineKeyboardMarkup {
        inline_keyboard: vec![vec![
            InlineKeyboardButton {
                text: "✅ Approve".into(),
                callback_data: approve,
            },
            InlineKeyboardButton {
                text: "❌ Deny".into(),
                callback_data: approval_data(request_id, false),
            },
        ]],
    })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_buttons_carry_the_request_and_the_answer() {
        assert_eq!(
            parse_approval_data(&approval_data("approval-0123456789abcdef", true)),
            Some(("approval-0123456789abcdef".into(), true))
        );
        assert_eq!(
            parse_approval_data("n:approval-1"),
            Some(("approval-1".into(), false))
        );
        assert_eq!(parse_approval_data("x:approval-1"), None);
        assert_eq!(parse_approval_data("y:"), None);
        assert!(approval_keyboard(&"r".repeat(70)).is_none());
    }
}
