//! The Telegram Bot API over HTTPS: the wire types this adapter reads and
//! writes, and `BotApi`, which calls one method and classifies its failure.
//! Retrying is the caller's choice (`BotApi::call_retrying` for sends).
//!
//! The token is part of every URL (`<base>/bot<token>/<method>`), so no
//! error message ever includes a URL.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use types::SecretString;

/// How long one `getUpdates` long poll waits on Telegram's side.
pub const LONG_POLL_SECS: u64 = 25;
/// The longest message text Telegram accepts (after entity parsing), in
/// UTF-16 code units.
pub const MAX_MESSAGE_UNITS: usize = 4096;
/// Telegram's limit on an inline button's `callback_data`, in bytes.
pub const MAX_CALLBACK_DATA: usize = 64;

/// A failed call, classified by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// 401/404: the bot token is wrong or revoked. Retrying will not help.
    #[error("Telegram refused the bot token ({0}); check channels.telegram.bot_token")]
    Unauthorized(String),
    /// 429: slow down for `retry_after`.
    #[error("Telegram rate limit: retry after {} s", .retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// 400/403 and other refusals of this request (a bad entity, a chat
    /// that blocked the bot): retrying the same request will not help.
    #[error("Telegram refused {method}: {description}")]
    Refused { method: String, description: String },
    /// 5xx, a network failure or an unreadable answer: worth retrying.
    #[error("Telegram unreachable ({0})")]
    Transient(String),
}

impl ApiError {
    /// Whether Telegram could not parse the message's formatting.
    pub fn is_bad_entities(&self) -> bool {
        matches!(self, Self::Refused { description, .. } if description.contains("can't parse entities"))
    }

    /// An edit that changed nothing (harmless).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Self::Refused { description, .. } if description.contains("message is not modified"))
    }
}

/// Every answer: `{"ok": true, "result": …}` or `{"ok": false, …}`.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Chat {
    pub fn is_private(&self) -> bool {
        self.kind == "private"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub file_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoSize {
    pub file_id: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// `getFile`'s answer: where the file can be downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub file_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Absent when Telegram cannot serve the file (over 20 MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<User>,
    pub chat: Chat,
    /// The forum topic, in supergroups with topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Document>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<Vec<PhotoSize>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// The message the button was on (absent when it is too old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboardButton {
    pub text: String,
    pub callback_data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboardMarkup {
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

/// How a message's text is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParseMode {
    #[serde(rename = "HTML")]
    Html,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkPreviewOptions {
    pub is_disabled: bool,
}

/// `sendMessage`.
#[derive(Debug, Clone, Serialize)]
pub struct SendMessage {
    pub chat_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<ParseMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<InlineKeyboardMarkup>,
    pub link_preview_options: LinkPreviewOptions,
}

/// `editMessageText`. Without `reply_markup` the buttons are removed.
#[derive(Debug, Clone, Serialize)]
pub struct EditMessageText {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<ParseMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<InlineKeyboardMarkup>,
    pub link_preview_options: LinkPreviewOptions,
}

/// `sendChatAction`.
#[derive(Debug, Clone, Serialize)]
pub struct SendChatAction {
    pub chat_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    pub action: &'static str,
}

/// `answerCallbackQuery`.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerCallbackQuery {
    pub callback_query_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `getUpdates`.
#[derive(Debug, Clone, Serialize)]
pub struct GetUpdates {
    pub offset: i64,
    pub timeout: u64,
    pub allowed_updates: &'static [&'static str],
}

/// Runs `attempt` until it succeeds, waiting out rate limits (up to
/// `MAX_RETRY_AFTER`) and retrying transient failures with backoff.
async fn retrying<R, F, Fut>(method: &str, mut attempt: F) -> Result<R, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<R, ApiError>>,
{
    let mut backoff = SEND_BACKOFF.iter();
    loop {
        let error = match attempt().await {
            Ok(result) => return Ok(result),
            Err(error) => error,
        };
        let delay = match &error {
            ApiError::RateLimited { retry_after } if *retry_after <= MAX_RETRY_AFTER => {
                *retry_after
            }
            ApiError::Transient(_) => match backoff.next() {
                Some(delay) => *delay,
                None => return Err(error),
            },
            ApiError::RateLimited { .. } | ApiError::Unauthorized(_) | ApiError::Refused { .. } => {
                return Err(error);
            }
        };
        tracing::debug!(method, %error, ?delay, "telegram call retried");
        tokio::time::sleep(delay).await;
    }
}

/// A client of one bot.
#[derive(Debug, Clone)]
pub struct BotApi {
    http: reqwest::Client,
    base_url: String,
    token: SecretString,
}

/// The delays between attempts of a send: 1, 2, 4, 8 s (then it fails).
const SEND_BACKOFF: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// A `retry_after` above this fails the send instead of holding the chat.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

impl BotApi {
    pub fn new(base_url: &str, token: SecretString) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Above the long poll, so `getUpdates` is never cut short.
            .timeout(Duration::from_secs(LONG_POLL_SECS + 20))
            .build()
            .map_err(|e| ApiError::Transient(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Calls `method` once with JSON parameters.
    pub async fn call<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ApiError> {
        self.send(method, self.http.post(self.method_url(method)).json(params))
            .await
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base_url, self.token.expose())
    }

    /// Sends a request to `method` and reads its envelope.
    async fn send<R: DeserializeOwned>(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<R, ApiError> {
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ApiError::Transient(e.without_url().to_string()))?;
        let envelope: Option<Envelope<R>> = serde_json::from_slice(&body).ok();
        let (description, retry_after) = match &envelope {
            Some(envelope) => (
                envelope
                    .description
                    .clone()
                    .unwrap_or_else(|| status.to_string()),
                envelope.parameters.as_ref().and_then(|p| p.retry_after),
            ),
            None => (status.to_string(), None),
        };
        match status.as_u16() {
            401 | 404 => return Err(ApiError::Unauthorized(description)),
            429 => {
                return Err(ApiError::RateLimited {
                    retry_after: Duration::from_secs(retry_after.unwrap_or(1)),
                });
            }
            500..=599 => return Err(ApiError::Transient(format!("{method}: {description}"))),
            _ => {}
        }
        match envelope {
            Some(Envelope {
                ok: true,
                result: Some(result),
                ..
            }) => Ok(result),
            Some(_) => Err(ApiError::Refused {
                method: method.to_owned(),
                description,
            }),
            None => Err(ApiError::Transient(format!(
                "{method}: an answer that is not a Bot API envelope (HTTP {status})"
            ))),
        }
    }

    /// Calls `method`, waiting out rate limits (up to `MAX_RETRY_AFTER`)
    /// and retrying transient failures with backoff.
    pub async fn call_retrying<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ApiError> {
        retrying(method, || self.call(method, params)).await
    }

    /// `sendDocument`: uploads `contents` as `file_name` (retried like
    /// `call_retrying`).
    pub async fn send_document(
        &self,
        chat_id: i64,
        message_thread_id: Option<i64>,
        file_name: &str,
        contents: &[u8],
        caption: Option<&str>,
    ) -> Result<Message, ApiError> {
        retrying("sendDocument", || {
            let document =
                reqwest::multipart::Part::bytes(contents.to_vec()).file_name(file_name.to_owned());
            let mut form = reqwest::multipart::Form::new()
                .text("chat_id", chat_id.to_string())
                .part("document", document);
            if let Some(thread) = message_thread_id {
                form = form.text("message_thread_id", thread.to_string());
            }
            if let Some(caption) = caption {
                form = form.text("caption", caption.to_owned());
            }
            let request = self
                .http
                .post(self.method_url("sendDocument"))
                .multipart(form);
            self.send("sendDocument", request)
        })
        .await
    }

    pub async fn get_me(&self) -> Result<User, ApiError> {
        self.call("getMe", &serde_json::json!({})).await
    }

    pub async fn get_updates(&self, offset: i64) -> Result<Vec<Update>, ApiError> {
        self.call(
            "getUpdates",
            &GetUpdates {
                offset,
                timeout: LONG_POLL_SECS,
                allowed_updates: &["message", "callback_query"],
            },
        )
        .await
    }

    pub async fn send_message(&self, request: &SendMessage) -> Result<Message, ApiError> {
        self.call_retrying("sendMessage", request).await
    }

    /// Edits a message; an edit that changes nothing is success.
    pub async fn edit_message_text(&self, request: &EditMessageText) -> Result<(), ApiError> {
        match self
            .call_retrying::<_, serde_json::Value>("editMessageText", request)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_modified() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Deletes a message the bot sent. Best effort: a message that stays
    /// is only untidy.
    pub async fn delete_message(&self, chat_id: i64, message_id: i64) {
        let request = serde_json::json!({ "chat_id": chat_id, "message_id": message_id });
        if let Err(error) = self
            .call_retrying::<_, bool>("deleteMessage", &request)
            .await
        {
            tracing::debug!(%error, "telegram message not deleted");
        }
    }

    /// Shows "typing…" for a few seconds. Best effort: never retried.
    pub async fn send_typing(&self, chat_id: i64, message_thread_id: Option<i64>) {
        let request = SendChatAction {
            chat_id,
            message_thread_id,
            action: "typing",
        };
        if let Err(error) = self.call::<_, bool>("sendChatAction", &request).await {
            tracing::debug!(%error, "telegram typing indicator not shown");
        }
    }

    pub async fn get_file(&self, file_id: &str) -> Result<File, ApiError> {
        self.call_retrying("getFile", &serde_json::json!({ "file_id": file_id }))
            .await
    }

    /// Downloads `file_path` (from `getFile`) into `dest`, refusing more
    /// than `max_bytes`; returns the size. A partial file is left for the
    /// caller to remove.
    pub async fn download(
        &self,
        file_path: &str,
        max_bytes: u64,
        dest: &std::path::Path,
    ) -> Result<u64, ApiError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let url = format!(
            "{}/file/bot{}/{file_path}",
            self.base_url,
            self.token.expose()
        );
        let transient = |e: reqwest::Error| ApiError::Transient(e.without_url().to_string());
        let response = self.http.get(url).send().await.map_err(transient)?;
        let status = response.status();
        if !status.is_success() {
            return Err(match status.as_u16() {
                401 | 404 => ApiError::Refused {
                    method: "file download".into(),
                    description: format!("HTTP {status}"),
                },
                _ => ApiError::Transient(format!("file download: HTTP {status}")),
            });
        }
        let io = |e: std::io::Error| ApiError::Transient(format!("{}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut written: u64 = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(transient)?;
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(ApiError::Refused {
                    method: "file download".into(),
                    description: format!("the file is larger than {max_bytes} bytes"),
                });
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        Ok(written)
    }

    pub async fn answer_callback(&self, callback_query_id: &str, text: Option<String>) {
        let request = AnswerCallbackQuery {
            callback_query_id: callback_query_id.to_owned(),
            text,
        };
        if let Err(error) = self
            .call_retrying::<_, bool>("answerCallbackQuery", &request)
            .await
        {
            tracing::warn!(%error, "telegram callback answer not delivered");
        }
    }
}
