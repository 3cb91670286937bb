//! The Telegram adapter (feature `telegram`): Bot API long polling on the
//! host, one gateway session per chat.
//!
//! `TelegramAdapter::start` spawns the poller. It checks the token
//! (`getMe`), then long-polls `getUpdates`, recording the next offset
//! durably before it acts on a batch, so nothing is handled twice after a
//! restart. Every message and button tap is checked against the allowlists
//! first (default deny): a refused one starts nothing, is audited and may
//! get the configured rejection reply. An allowed one goes to its chat's
//! link — a `GatewayClient` attached to the chat's own session (identity
//! mapping, kept in `state`) joined by `bridge` to a `chat::ChatLink`,
//! whose worker writes the gateway's frames back to the chat.
//!
//! To add a platform, write a module like this one behind a feature of its
//! own: it turns platform events into `ChannelInboundEvent`s for a
//! `LinkedChannel` per conversation and renders `GatewayServerFrame`s back
//! (see docs/channels.md).

mod api;
mod chat;
mod inbox;
mod markdown;
mod outgoing;
mod state;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use types::channel::{ChannelHealthStatus, ChannelInboundEvent, ChannelMetadata, InboundPayload};
use types::clock::now_ms;
use types::{AuditKind, AuditRecord, Channel, ChannelSender, SecretString, UserId};

use self::api::{
    ApiError, BotApi, CallbackQuery, Chat, LinkPreviewOptions, Message, SendMessage, Update,
};
use self::chat::{ChatLink, ChatWorker, WorkerInput, parse_approval_data};
use self::state::{ChatKey, StateFile};
use crate::bridge::bridge;
use crate::client::{GatewayClient, GatewayClientConfig};
use crate::endpoint::EndpointSource;
use crate::error::ChannelsError;

/// The channel's id in events, audit records and status.
pub const CHANNEL_ID: &str = "telegram";
/// The Bot API's address (`api_base_url` when unset).
pub const DEFAULT_API_BASE_URL: &str = "https://api.telegram.org";
/// How often the reply being streamed is edited at most (Telegram allows
/// about one message per second per chat).
pub const DEFAULT_EDIT_INTERVAL: Duration = Duration::from_secs(1);
/// The largest file accepted from a chat by default (the Bot API serves
/// files up to 20 MB).
pub const DEFAULT_MAX_INBOUND_BYTES: u64 = 20 * 1024 * 1024;
/// A chat that was refused hears `reject_message` at most this often.
const REJECT_EVERY: Duration = Duration::from_secs(600);
/// How long to wait before checking a refused token again.
const TOKEN_RECHECK: Duration = Duration::from_secs(60);
/// The longest pause between polls after failures.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(30);

const HELP: &str = "Talk to me and I answer. Commands:\n\
/new — start a new conversation (the old one stays stored)\n\
/cancel — stop the answer being written\n\
/status — how the agent is doing\n\
/help — this text";

/// Where refused senders are recorded (the runner's audit file).
pub trait ChannelAudit: Send + Sync + fmt::Debug {
    /// Appends one record durably.
    fn record(&self, record: &AuditRecord) -> Result<(), String>;
}

/// Everything the adapter needs, resolved by the runner.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub user_id: UserId,
    pub bot_token: SecretString,
    /// Telegram user ids allowed to talk to the agent (never empty).
    pub allowed_sender_ids: BTreeSet<i64>,
    /// Group chats the agent takes part in (private chats need none).
    pub allowed_chat_ids: BTreeSet<i64>,
    pub api_base_url: String,
    pub reject_message: Option<String>,
    /// The adapter's durable state (offset, chat → session).
    pub state_file: PathBuf,
    /// How the user's gateway is found (the endpoint file).
    pub endpoint: EndpointSource,
    pub edit_interval: Duration,
    /// The host directory the agent sees as `/shared` (files people send
    /// are saved in its `inbox/`).
    pub shared_dir: PathBuf,
    /// The largest file accepted from a chat.
    pub max_inbound_bytes: u64,
    /// How long the gateway waits for an approval
    /// (`gateway.approval_timeout_secs`), so a request is marked denied
    /// when it expires.
    pub approval_timeout: Duration,
}

/// Reads an adapter's health from anywhere (a status report).
#[derive(Debug, Clone)]
pub struct HealthProbe(Arc<Mutex<ChannelHealthStatus>>);

impl HealthProbe {
    /// The health now.
    pub fn get(&self) -> ChannelHealthStatus {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running Telegram adapter.
#[derive(Debug)]
pub struct TelegramAdapter {
    health: Arc<Mutex<ChannelHealthStatus>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TelegramAdapter {
    /// Opens the adapter's state and starts polling. Fails only when the
    /// state file is unreadable; a bad token is reported by `health`.
    pub fn start(settings: TelegramSettings, audit: Arc<dyn ChannelAudit>) -> Result<Self, String> {
        let state = StateFile::open(&settings.state_file)?;
        let api = BotApi::new(&settings.api_base_url, settings.bot_token.clone())
            .map_err(|e| e.to_string())?;
        let health = Arc::new(Mutex::new(ChannelHealthStatus::Degraded {
            reason: "connecting to Telegram".into(),
        }));
        let cancel = CancellationToken::new();
        let poller = Poller {
            settings,
            api,
            state,
            audit,
            health: Arc::clone(&health),
            chats: HashMap::new(),
            chat_tasks: JoinSet::new(),
            rejected: HashMap::new(),
            bot_username: None,
        };
        let task = tokio::spawn(poller.run(cancel.clone()));
        Ok(Self {
            health,
            cancel,
            task,
        })
    }

    /// Where the adapter's health can be read while it runs.
    pub fn health_probe(&self) -> HealthProbe {
        HealthProbe(Arc::clone(&self.health))
    }

    /// Stops polling and closes every chat's link.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        // The task only ends by returning.
        let _ = self.task.await;
    }
}

/// A chat's open link: where its actions and notices go.
#[derive(Debug)]
struct ChatHandle {
    actions: mpsc::Sender<ChannelInboundEvent>,
    worker: mpsc::Sender<WorkerInput>,
}

impl ChatHandle {
    fn is_open(&self) -> bool {
        !self.actions.is_closed() && !self.worker.is_closed()
    }
}

/// A chat command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Help,
    New,
    Cancel,
    Status,
}

/// The command `text` is, if any (`/new` or `/new@this_bot`).
fn command(text: &str, bot_username: Option<&str>) -> Option<Command> {
    let word = text.split_whitespace().next()?.strip_prefix('/')?;
    let name = match word.split_once('@') {
        Some((name, bot)) if bot_username.is_none_or(|own| own.eq_ignore_ascii_case(bot)) => name,
        Some(_) => return None,
        None => word,
    };
    match name.to_ascii_lowercase().as_str() {
        "help" | "start" => Some(Command::Help),
        "new" => Some(Command::New),
        "cancel" => Some(Command::Cancel),
        "status" => Some(Command::Status),
        _ => None,
    }
}

struct Poller {
    settings: TelegramSettings,
    api: BotApi,
    state: StateFile,
    audit: Arc<dyn ChannelAudit>,
    health: Arc<Mutex<ChannelHealthStatus>>,
    chats: HashMap<ChatKey, ChatHandle>,
    chat_tasks: JoinSet<()>,
    /// When each refused chat last heard `reject_message`.
    rejected: HashMap<i64, tokio::time::Instant>,
    bot_username: Option<String>,
}

impl Poller {
    fn set_health(&self, health: ChannelHealthStatus) {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner) = health;
    }

    async fn run(mut self, cancel: CancellationToken) {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = self.poll_forever() => {}
        }
        // Closing the handles ends each chat's bridge and worker.
        self.chats.clear();
        let drain = async { while self.chat_tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            self.chat_tasks.abort_all();
        }
    }

    async fn poll_forever(&mut self) {
        loop {
            let pause = match self.check_token().await {
                Ok(()) => self.poll_updates().await,
                Err(pause) => pause,
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// `getMe`: a refused token makes the channel unhealthy (checked again
    /// after `TOKEN_RECHECK`), an unreachable API degraded.
    async fn check_token(&mut self) -> Result<(), Duration> {
        match self.api.get_me().await {
            Ok(me) => {
                tracing::info!(bot = ?me.username, "telegram bot connected");
                self.bot_username = me.username;
                self.set_health(ChannelHealthStatus::Healthy);
                Ok(())
            }
            Err(error @ ApiError::Unauthorized(_)) => Err(self.token_refused(&error)),
            Err(error) => {
                tracing::warn!(%error, "telegram not reachable");
                self.set_health(ChannelHealthStatus::Degraded {
                    reason: error.to_string(),
                });
                Err(Duration::from_secs(5))
            }
        }
    }

    /// Marks the channel unhealthy; returns the pause before the token is
    /// checked again.
    fn token_refused(&self, error: &ApiError) -> Duration {
        tracing::error!(%error, "telegram channel unhealthy");
        self.set_health(ChannelHealthStatus::Unhealthy {
            reason: error.to_string(),
        });
        TOKEN_RECHECK
    }

    /// Polls until the token is refused; returns the pause before the
    /// token is checked again.
    async fn poll_updates(&mut self) -> Duration {
        let mut failures: u32 = 0;
        loop {
            match self.api.get_updates(self.state.offset()).await {
                Ok(updates) => {
                    failures = 0;
                    self.set_health(ChannelHealthStatus::Healthy);
                    self.take(updates).await;
                }
                Err(ApiError::RateLimited { retry_after }) => {
                    tokio::time::sleep(retry_after).await;
                }
                Err(error @ ApiError::Unauthorized(_)) => return self.token_refused(&error),
                Err(error) => {
                    failures += 1;
                    let pause = Duration::from_secs(1u64 << failures.min(5)).min(MAX_POLL_BACKOFF);
                    tracing::warn!(%error, ?pause, "telegram poll failed");
                    self.set_health(ChannelHealthStatus::Degraded {
                        reason: error.to_string(),
                    });
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Records the next offset, then handles the batch in order.
    async fn take(&mut self, updates: Vec<Update>) {
        let Some(last) = updates.iter().map(|update| update.update_id).max() else {
            return;
        };
        if let Err(error) = self.state.set_offset(last + 1).await {
            // Telegram forgets the batch anyway once the next poll sends
            // the new offset; only a restart before then would repeat it.
            tracing::error!(%error, "telegram offset not recorded");
        }
        for update in updates {
            if let Some(message) = update.message {
                self.on_message(message).await;
            } else if let Some(query) = update.callback_query {
                self.on_callback(query).await;
            }
        }
    }

    /// Why `sender` may not act in `chat`, if they may not.
    fn refusal(&self, sender: i64, chat: &Chat) -> Option<&'static str> {
        if !self.settings.allowed_sender_ids.contains(&sender) {
            Some("sender is not in channels.telegram.allowed_sender_ids")
        } else if !chat.is_private() && !self.settings.allowed_chat_ids.contains(&chat.id) {
            Some("group chat is not in channels.telegram.allowed_chat_ids")
        } else {
            None
        }
    }

    fn audit_refusal(&self, sender: i64, chat: &Chat, what: &str, reason: &str) {
        let record = AuditRecord {
            at_ms: now_ms(),
            user: self.settings.user_id.to_string(),
            kind: AuditKind::SenderRefused,
            actor: format!("{CHANNEL_ID}:{sender}"),
            subject: what.to_owned(),
            decision: None,
            reason: Some(reason.to_owned()),
            session_id: None,
            request_id: None,
            arguments_sha256: None,
            arguments_bytes: None,
            sender: Some(ChannelSender {
                channel: CHANNEL_ID.to_owned(),
                sender_id: sender.to_string(),
                chat_id: chat.id.to_string(),
            }),
        };
        tracing::warn!(sender, chat = chat.id, reason, "telegram sender refused");
        if let Err(error) = self.audit.record(&record) {
            tracing::error!(%error, "a refused telegram sender was not audited");
        }
    }

    async fn on_message(&mut self, message: Message) {
        // Channel posts have no sender; nobody to authenticate.
        let Some(from) = message.from.as_ref() else {
            return;
        };
        if let Some(reason) = self.refusal(from.id, &message.chat) {
            self.audit_refusal(from.id, &message.chat, "message", reason);
            self.maybe_reject(&message.chat).await;
            return;
        }
        let chat = ChatKey {
            chat_id: message.chat.id,
            thread_id: message.message_thread_id,
        };
        let text = message
            .text
            .clone()
            .or_else(|| message.caption.clone())
            .unwrap_or_default();
        let payload = match command(&text, self.bot_username.as_deref()) {
            Some(Command::Help) => {
                self.say(chat, HELP.to_owned()).await;
                return;
            }
            Some(Command::New) => {
                self.tell_worker(chat, WorkerInput::ExpectNewSession).await;
                InboundPayload::NewSession
            }
            Some(Command::Cancel) => InboundPayload::Cancel,
            Some(Command::Status) => InboundPayload::HealthCheck,
            None => match self.message_payload(chat, &message, text).await {
                Some(payload) => payload,
                None => return,
            },
        };
        let event = ChannelInboundEvent {
            channel_id: CHANNEL_ID.to_owned(),
            sender_id: from.id.to_string(),
            channel_session_id: chat.to_string(),
            payload,
            metadata: ChannelMetadata {
                message_id: Some(message.message_id.to_string()),
                thread_id: message.message_thread_id.map(|id| id.to_string()),
                reply_to: None,
            },
        };
        self.deliver(chat, event).await;
    }

    /// A message for the agent: its text and the file it carries (saved in
    /// the inbox first). `None` when there is nothing to send; the chat
    /// has been told why.
    async fn message_payload(
        &self,
        chat: ChatKey,
        message: &Message,
        text: String,
    ) -> Option<InboundPayload> {
        let mut attachments = Vec::new();
        if let Some(file) = inbox::incoming(message) {
            let saved = inbox::receive(
                &self.api,
                &self.settings.shared_dir,
                &file,
                self.settings.max_inbound_bytes,
            )
            .await;
            match saved {
                Ok(path) => attachments.push(path),
                Err(problem) => {
                    self.say(chat, format!("⚠️ {problem} Nothing was sent to the agent."))
                        .await;
                    return None;
                }
            }
        }
        let text = match (text.trim().is_empty(), attachments.is_empty()) {
            (false, _) => text,
            (true, false) => "I sent you a file.".to_owned(),
            (true, true) => {
                self.say(
                    chat,
                    "Only text, documents and photos are understood.".into(),
                )
                .await;
                return None;
            }
        };
        Some(InboundPayload::Message { text, attachments })
    }

    async fn on_callback(&mut self, query: CallbackQuery) {
        let answer = |text: &str| Some(text.to_owned());
        let (Some((request_id, approved)), Some(message)) = (
            query.data.as_deref().and_then(parse_approval_data),
            query.message.as_ref(),
        ) else {
            self.api
                .answer_callback(&query.id, answer("This button is no longer valid."))
                .await;
            return;
        };
        if let Some(reason) = self.refusal(query.from.id, &message.chat) {
            self.audit_refusal(query.from.id, &message.chat, "approval tap", reason);
            self.api
                .answer_callback(
                    &query.id,
                    answer("You are not allowed to answer this request."),
                )
                .await;
            return;
        }
        let chat = ChatKey {
            chat_id: message.chat.id,
            thread_id: message.message_thread_id,
        };
        let Some(handle) = self.chats.get(&chat).filter(|handle| handle.is_open()) else {
            self.api
                .answer_callback(&query.id, answer("This request has expired."))
                .await;
            return;
        };
        let by = query
            .from
            .username
            .clone()
            .map_or_else(|| query.from.first_name.clone(), |name| format!("@{name}"));
        let event = ChannelInboundEvent {
            channel_id: CHANNEL_ID.to_owned(),
            sender_id: query.from.id.to_string(),
            channel_session_id: chat.to_string(),
            payload: InboundPayload::ApprovalResponse {
                request_id: request_id.clone(),
                approved,
            },
            metadata: ChannelMetadata {
                message_id: Some(message.message_id.to_string()),
                thread_id: None,
                reply_to: None,
            },
        };
        let delivered = handle.actions.send(event).await.is_ok()
            && handle
                .worker
                .send(WorkerInput::Decided {
                    request_id,
                    approved,
                    by,
                })
                .await
                .is_ok();
        let text = match (delivered, approved) {
            (false, _) => "The agent is not reachable; nothing was decided.",
            (true, true) => "Approved.",
            (true, false) => "Denied.",
        };
        self.api.answer_callback(&query.id, answer(text)).await;
    }

    /// Sends `reject_message` to a refused chat, at most once per
    /// `REJECT_EVERY`.
    async fn maybe_reject(&mut self, chat: &Chat) {
        let Some(text) = self.settings.reject_message.clone() else {
            return;
        };
        let now = tokio::time::Instant::now();
        if self
            .rejected
            .get(&chat.id)
            .is_some_and(|at| now.duration_since(*at) < REJECT_EVERY)
        {
            return;
        }
        // Forget chats whose pause is over, so strangers cannot grow it.
        self.rejected
            .retain(|_, at| now.duration_since(*at) < REJECT_EVERY);
        self.rejected.insert(chat.id, now);
        self.say(
            ChatKey {
                chat_id: chat.id,
                thread_id: None,
            },
            text,
        )
        .await;
    }

    /// A plain message straight to the chat (no gateway involved).
    async fn say(&self, chat: ChatKey, text: String) {
        let request = SendMessage {
            chat_id: chat.chat_id,
            message_thread_id: chat.thread_id,
            text,
            parse_mode: None,
            reply_markup: None,
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        };
        if let Err(error) = self.api.send_message(&request).await {
            tracing::warn!(%chat, %error, "telegram message not delivered");
        }
    }

    async fn tell_worker(&mut self, chat: ChatKey, input: WorkerInput) {
        if let Ok(handle) = self.open_chat(chat).await {
            // A worker that stopped takes no more news; the next message
            // opens the chat again.
            let _ = handle.worker.send(input).await;
        }
    }

    /// Hands an allowed action to the chat's link, opening it first. When
    /// the agent cannot be reached the person is told, since nothing was
    /// delivered.
    async fn deliver(&mut self, chat: ChatKey, event: ChannelInboundEvent) {
        let failure = match self.open_chat(chat).await {
            Ok(handle) => match handle.actions.send(event).await {
                Ok(()) => return,
                Err(_) => "the chat's link closed".to_owned(),
            },
            Err(error) => error,
        };
        self.chats.remove(&chat);
        self.say(
            chat,
            format!("⚠️ The agent is not reachable right now ({failure}). Your message was not delivered; try again in a moment."),
        )
        .await;
    }

    /// The chat's link, connecting it to the chat's session (a new session
    /// for a new chat) when it is not open.
    async fn open_chat(&mut self, chat: ChatKey) -> Result<&ChatHandle, String> {
        if !self.chats.get(&chat).is_some_and(ChatHandle::is_open) {
            let handle = self.connect_chat(chat).await?;
            self.chats.insert(chat, handle);
        }
        self.chats
            .get(&chat)
            .ok_or_else(|| "the chat's link closed".to_owned())
    }

    async fn connect_chat(&mut self, chat: ChatKey) -> Result<ChatHandle, String> {
        let stored = self.state.session(chat);
        let mut config = GatewayClientConfig::new(
            self.settings.endpoint.clone(),
            self.settings.user_id.clone(),
        );
        config.session_id = stored.clone();
        config.new_session = stored.is_none();
        let (client, events, lost) = match GatewayClient::connect(config.clone()).await {
            Ok((client, events)) => (client, events, None),
            Err(ChannelsError::Handshake { message })
                if stored.is_some() && message.contains("unknown_session") =>
            {
                // The guest no longer has the chat's session (its database
                // was replaced): start a new one rather than fail forever.
                config.session_id = None;
                config.new_session = true;
                let (client, events) = GatewayClient::connect(config)
                    .await
                    .map_err(|e| e.to_string())?;
                (client, events, stored)
            }
            Err(error) => return Err(error.to_string()),
        };
        let (worker_tx, worker_rx) = mpsc::channel(64);
        let (actions_tx, actions_rx) = mpsc::channel(16);
        let worker = ChatWorker::new(
            self.api.clone(),
            chat,
            self.state.clone(),
            self.settings.edit_interval,
            self.settings.shared_dir.clone(),
            self.settings.approval_timeout,
        );
        self.chat_tasks.spawn(worker.run(worker_rx));
        if let Some(old) = lost {
            let _ = worker_tx
                .send(WorkerInput::Notice(format!(
                    "The agent no longer has this chat's conversation ({old}); a new one starts here."
                )))
                .await;
        }
        let link = ChatLink {
            worker: worker_tx.clone(),
            actions: Mutex::new(Some(actions_rx)),
        };
        self.chat_tasks.spawn(async move {
            match link.listen(16).await {
                Ok(actions) => {
                    if let Err(error) = bridge(&link, actions, &client, events).await {
                        tracing::debug!(%error, "telegram chat link ended");
                    }
                }
                Err(error) => tracing::error!(%error, "telegram chat link not started"),
            }
            client.shutdown().await;
        });
        Ok(ChatHandle {
            actions: actions_tx,
            worker: worker_tx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_recognised_with_or_without_the_bot_name() {
        assert_eq!(command("/new", None), Some(Command::New));
        assert_eq!(command("/NEW@oxy_bot", Some("oxy_bot")), Some(Command::New));
        assert_eq!(command("/new@other_bot", Some("oxy_bot")), None);
        assert_eq!(command("/start", None), Some(Command::Help));
        assert_eq!(command("/cancel now", None), Some(Command::Cancel));
        assert_eq!(command("/status", None), Some(Command::Status));
        assert_eq!(command("/unknown", None), None);
        assert_eq!(command("hello /new", None), None);
        assert_eq!(command("", None), None);
    }
}
