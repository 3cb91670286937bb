//! A fake Telegram Bot API on 127.0.0.1: real HTTP, the Bot API's paths
//! (`/bot<token>/<method>`) and envelopes, scriptable updates served by
//! long polling, a record of every call, faults on demand (429 with
//! `retry_after`, 401, 500), and Telegram's own refusals where a test
//! should see them: a wrong token (401), a message over 4,096 characters,
//! HTML that does not parse, an edit that changes nothing.
//!
//! It keeps every message the bot sent, with its edits applied, so a test
//! reads a chat the way a person would see it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The fake bot's own user id.
pub const FAKE_BOT_ID: i64 = 777_000;
/// The fake bot's username (`getMe`).
pub const FAKE_BOT_USERNAME: &str = "oxydra_test_bot";

/// One call the bot made.
#[derive(Debug, Clone)]
pub struct TelegramCall {
    pub method: String,
    /// The JSON body.
    pub params: Value,
    pub at: Instant,
}

/// A message the bot sent, as the chat shows it now.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub message_id: i64,
    pub chat_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
    pub reply_markup: Option<Value>,
    /// How many times it was edited.
    pub edits: u32,
}

/// A document the bot uploaded (`sendDocument`).
#[derive(Debug, Clone, PartialEq)]
pub struct SentDocument {
    pub chat_id: i64,
    pub file_name: String,
    pub contents: Vec<u8>,
    pub caption: Option<String>,
}

#[derive(Debug)]
struct Fault {
    status: u16,
    description: String,
    retry_after: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    updates: Vec<Value>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<TelegramCall>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// The highest `offset` a `getUpdates` sent (updates below it are
    /// confirmed and forgotten).
    confirmed: i64,
    messages: BTreeMap<i64, SentMessage>,
    /// Documents the bot uploaded, in order.
    documents: Vec<SentDocument>,
    /// Files people "sent": file id → contents.
    files: HashMap<String, Vec<u8>>,
}

#[derive(Debug)]
struct Shared {
    token: String,
    inner: Mutex<Inner>,
    arrived: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake Bot API; dropping it stops the server.
#[derive(Debug)]
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeTelegram {
    /// Starts serving a bot whose token is `token`.
    pub async fn start(token: &str) -> Self {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            inner: Mutex::new(Inner {
                next_update_id: 100,
                next_message_id: 1,
                ..Inner::default()
            }),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", axum::routing::post(handle))
            .route("/file/{bot}/{*path}", axum::routing::get(download))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Bot API");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    /// The value for `api_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues an update (its `update_id` is assigned) and returns the id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut inner = self.shared.lock();
            let id = inner.next_update_id;
            inner.next_update_id += 1;
            update["update_id"] = json!(id);
            inner.updates.push(update);
            id
        };
        self.shared.arrived.notify_waiters();
        id
    }

    /// A text message from user `from` in chat `chat` (private when they
    /// are the same id, a group otherwise).
    pub fn push_text(&self, from: i64, chat: i64, text: &str) -> i64 {
        let message_id = self.next_message_id();
        self.push_update(json!({
            "message": {
                "message_id": message_id,
                "from": {"id": from, "is_bot": false, "first_name": format!("user{from}"), "username": format!("user{from}")},
                "chat": {"id": chat, "type": if from == chat { "private" } else { "group" }},
                "date": 1_765_000_000,
                "text": text,
            }
        }))
    }

    /// A tap on an inline button of message `message_id` in `chat`.
    pub fn push_callback(&self, from: i64, chat: i64, message_id: i64, data: &str) -> i64 {
        let query_id = format!("cb-{}", self.next_message_id());
        self.push_update(json!({
            "callback_query": {
                "id": query_id,
                "from": {"id": from, "is_bot": false, "first_name": format!("user{from}"), "username": format!("user{from}")},
                "message": {
                    "message_id": message_id,
                    "chat": {"id": chat, "type": if from == chat { "private" } else { "group" }},
                    "date": 1_765_000_000,
                },
                "data": data,
            }
        }))
    }

    /// A document from user `from` in chat `chat`, with `caption`; its
    /// contents are served by `getFile` and the file download path.
    pub fn push_document(
        &self,
        from: i64,
        chat: i64,
        file_name: &str,
        contents: &[u8],
        caption: Option<&str>,
    ) -> i64 {
        let message_id = self.next_message_id();
        let file_id = format!("doc-{message_id}");
        self.shared
            .lock()
            .files
            .insert(file_id.clone(), contents.to_vec());
        let mut message = json!({
            "message_id": message_id,
            "from": {"id": from, "is_bot": false, "first_name": format!("user{from}"), "username": format!("user{from}")},
            "chat": {"id": chat, "type": if from == chat { "private" } else { "group" }},
            "date": 1_765_000_000,
            "document": {"file_id": file_id, "file_name": file_name, "file_size": contents.len()},
        });
        if let Some(caption) = caption {
            message["caption"] = json!(caption);
        }
        self.push_update(json!({ "message": message }))
    }

    fn next_message_id(&self) -> i64 {
        let mut inner = self.shared.lock();
        let id = inner.next_message_id;
        inner.next_message_id += 1;
        id
    }

    /// The next `count` calls of `method` fail with `status` (429 answers
    /// carry `retry_after`; 400 is Telegram refusing the formatting).
    pub fn fail_next(&self, method: &str, count: usize, status: u16, retry_after: Option<u64>) {
        let description = match status {
            // What Telegram says about formatting it cannot parse.
            400 => "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0".to_owned(),
            401 => "Unauthorized".to_owned(),
            429 => format!(
                "Too Many Requests: retry after {}",
                retry_after.unwrap_or(1)
            ),
            _ => "Internal Server Error".to_owned(),
        };
        let mut inner = self.shared.lock();
        let queue = inner.faults.entry(method.to_owned()).or_default();
        for _ in 0..count {
            queue.push_back(Fault {
                status,
                description: description.clone(),
                retry_after,
            });
        }
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<TelegramCall> {
        self.shared.lock().calls.clone()
    }

    /// The calls of one method, oldest first.
    pub fn calls_to(&self, method: &str) -> Vec<TelegramCall> {
        self.calls()
            .into_iter()
            .filter(|call| call.method == method)
            .collect()
    }

    /// The documents the bot uploaded, oldest first.
    pub fn documents(&self) -> Vec<SentDocument> {
        self.shared.lock().documents.clone()
    }

    /// The highest offset the bot confirmed.
    pub fn confirmed_offset(&self) -> i64 {
        self.shared.lock().confirmed
    }

    /// The messages the bot sent to `chat`, as shown now, oldest first.
    pub fn chat(&self, chat: i64) -> Vec<SentMessage> {
        self.shared
            .lock()
            .messages
            .values()
            .filter(|message| message.chat_id == chat)
            .cloned()
            .collect()
    }

    /// Waits until `check` holds for the chat's messages; panics with what
    /// the chat shows after `patience`.
    pub async fn wait_for_chat(
        &self,
        chat: i64,
        patience: Duration,
        check: impl Fn(&[SentMessage]) -> bool,
    ) -> Vec<SentMessage> {
        let deadline = Instant::now() + patience;
        loop {
            let messages = self.chat(chat);
            if check(&messages) {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "chat {chat} did not reach the expected state within {patience:?}; it shows {messages:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn envelope_error(status: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": status, "description": description});
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn bad_request(description: &str) -> Response {
    envelope_error(400, &format!("Bad Request: {description}"), None)
}

/// A request's parameters: its JSON body, or the text fields of a
/// multipart form with its file part.
async fn parameters(request: Request) -> Result<(Value, Option<(String, Vec<u8>)>), String> {
    let multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"));
    if !multipart {
        let bytes = axum::body::to_bytes(request.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        if bytes.is_empty() {
            return Ok((json!({}), None));
        }
        return serde_json::from_slice(&bytes)
            .map(|value| (value, None))
            .map_err(|e| format!("the body is not JSON: {e}"));
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| e.to_string())?;
    let mut params = serde_json::Map::new();
    let mut file = None;
    while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(file_name) => {
                let bytes = field.bytes().await.map_err(|e| e.to_string())?;
                file = Some((file_name, bytes.to_vec()));
            }
            None => {
                let text = field.text().await.map_err(|e| e.to_string())?;
                params.insert(name, json!(text));
            }
        }
    }
    Ok((Value::Object(params), file))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        return envelope_error(401, "Unauthorized", None);
    }
    let (params, file) = match parameters(request).await {
        Ok(parsed) => parsed,
        Err(problem) => return bad_request(&problem),
    };
    let fault = {
        let mut inner = shared.lock();
        inner.calls.push(TelegramCall {
            method: method.clone(),
            params: params.clone(),
            at: Instant::now(),
        });
        inner.faults.get_mut(&method).and_then(VecDeque::pop_front)
    };
    if let Some(fault) = fault {
        return envelope_error(fault.status, &fault.description, fault.retry_after);
    }
    match method.as_str() {
        "getMe" => ok(json!({
            "id": FAKE_BOT_ID, "is_bot": true, "first_name": "Oxydra test", "username": FAKE_BOT_USERNAME,
        })),
        "getUpdates" => get_updates(&shared, &params).await,
        "sendMessage" => send_message(&shared, &params),
        "editMessageText" => edit_message_text(&shared, &params),
        "sendChatAction" | "answerCallbackQuery" => ok(json!(true)),
        "getFile" => get_file(&shared, &params),
        "deleteMessage" => delete_message(&shared, &params),
        "sendDocument" => send_document(&shared, &params, file),
        _ => envelope_error(404, "Not Found: method not found", None),
    }
}

fn send_document(shared: &Shared, params: &Value, file: Option<(String, Vec<u8>)>) -> Response {
    let Some((file_name, contents)) = file else {
        return bad_request("there is no document in the request");
    };
    // Form fields are text: `chat_id` arrives as a string.
    let Some(chat_id) = params["chat_id"]
        .as_str()
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return bad_request("chat_id is empty");
    };
    let mut inner = shared.lock();
    inner.documents.push(SentDocument {
        chat_id,
        file_name: file_name.clone(),
        contents,
        caption: params["caption"].as_str().map(str::to_owned),
    });
    let message_id = inner.next_message_id;
    inner.next_message_id += 1;
    ok(json!({
        "message_id": message_id,
        "chat": {"id": chat_id, "type": "private"},
        "date": 1_765_000_000,
        "document": {"file_id": format!("sent-{message_id}"), "file_name": file_name},
    }))
}

fn delete_message(shared: &Shared, params: &Value) -> Response {
    let mut inner = shared.lock();
    let message_id = params["message_id"].as_i64().unwrap_or_default();
    match inner.messages.get(&message_id) {
        Some(message) if params["chat_id"].as_i64() == Some(message.chat_id) => {
            inner.messages.remove(&message_id);
            ok(json!(true))
        }
        _ => bad_request("message to delete not found"),
    }
}

fn get_file(shared: &Shared, params: &Value) -> Response {
    let file_id = params["file_id"].as_str().unwrap_or_default();
    match shared.lock().files.get(file_id) {
        Some(contents) => ok(json!({
            "file_id": file_id,
            "file_size": contents.len(),
            "file_path": format!("documents/{file_id}"),
        })),
        None => bad_request("invalid file_id"),
    }
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let contents = path
        .strip_prefix("documents/")
        .and_then(|file_id| shared.lock().files.get(file_id).cloned());
    match contents {
        Some(contents) => contents.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn get_updates(shared: &Shared, params: &Value) -> Response {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let arrived = shared.arrived.notified();
        {
            let mut inner = shared.lock();
            inner.confirmed = inner.confirmed.max(offset);
            // Confirmed updates are forgotten, as Telegram does.
            inner
                .updates
                .retain(|update| update["update_id"].as_i64().unwrap_or(0) >= offset);
            if !inner.updates.is_empty() {
                return ok(Value::Array(inner.updates.clone()));
            }
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return ok(json!([]));
        }
    }
}

/// The text after Telegram's entity parsing, or why it cannot be parsed.
fn parse_text(text: &str, parse_mode: Option<&str>) -> Result<String, String> {
    match parse_mode {
        None => Ok(text.to_owned()),
        Some("HTML") => parse_html(text),
        Some(other) => Err(format!("unsupported parse_mode {other}")),
    }
}

/// Telegram's HTML rules: known tags only, properly nested, `<`, `>` and
/// `&` escaped outside tags.
fn parse_html(text: &str) -> Result<String, String> {
    const TAGS: [&str; 14] = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "blockquote",
        "span",
    ];
    let mut visible = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest
                    .find('>')
                    .ok_or("can't parse entities: unclosed start tag")?;
                let tag = &rest[1..end];
                let (closing, body) = match tag.strip_prefix('/') {
                    Some(body) => (true, body),
                    None => (false, tag),
                };
                let name = body.split_whitespace().next().unwrap_or_default();
                if !TAGS.contains(&name) {
                    return Err(format!(
                        "can't parse entities: unsupported start tag \"{name}\""
                    ));
                }
                if closing {
                    if open.pop().as_deref() != Some(name) {
                        return Err(format!(
                            "can't parse entities: can't find end tag corresponding to start tag \"{name}\""
                        ));
                    }
                } else {
                    open.push(name.to_owned());
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest
                    .find(';')
                    .ok_or("can't parse entities: unclosed entity")?;
                let decoded = match &rest[1..end] {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    other => {
                        return Err(format!(
                            "can't parse entities: unsupported entity \"{other}\""
                        ));
                    }
                };
                visible.push(decoded);
                rest = &rest[end + 1..];
            }
            '>' => return Err("can't parse entities: unexpected end tag".to_owned()),
            c => {
                visible.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(name) = open.pop() {
        return Err(format!(
            "can't parse entities: unclosed start tag \"{name}\""
        ));
    }
    Ok(visible)
}

/// The message's text, or Telegram's reason to refuse it.
fn check_text(params: &Value) -> Result<String, String> {
    let text = params["text"].as_str().unwrap_or_default();
    let visible = parse_text(text, params["parse_mode"].as_str())?;
    if visible.trim().is_empty() {
        return Err("message text is empty".to_owned());
    }
    if visible.encode_utf16().count() > 4096 {
        return Err("message is too long".to_owned());
    }
    Ok(text.to_owned())
}

fn send_message(shared: &Shared, params: &Value) -> Response {
    let text = match check_text(params) {
        Ok(text) => text,
        Err(reason) => return bad_request(&reason),
    };
    let Some(chat_id) = params["chat_id"].as_i64() else {
        return bad_request("chat_id is empty");
    };
    let mut inner = shared.lock();
    let message_id = inner.next_message_id;
    inner.next_message_id += 1;
    inner.messages.insert(
        message_id,
        SentMessage {
            message_id,
            chat_id,
            text: text.clone(),
            parse_mode: params["parse_mode"].as_str().map(str::to_owned),
            reply_markup: params.get("reply_markup").cloned(),
            edits: 0,
        },
    );
    ok(json!({
        "message_id": message_id,
        "from": {"id": FAKE_BOT_ID, "is_bot": true, "first_name": "Oxydra test"},
        "chat": {"id": chat_id, "type": "private"},
        "date": 1_765_000_000,
        "text": text,
    }))
}

fn edit_message_text(shared: &Shared, params: &Value) -> Response {
    let text = match check_text(params) {
        Ok(text) => text,
        Err(reason) => return bad_request(&reason),
    };
    let mut inner = shared.lock();
    let message_id = params["message_id"].as_i64().unwrap_or_default();
    let Some(message) = inner.messages.get_mut(&message_id) else {
        return bad_request("message to edit not found");
    };
    if params["chat_id"].as_i64() != Some(message.chat_id) {
        return bad_request("message to edit not found");
    }
    let parse_mode = params["parse_mode"].as_str().map(str::to_owned);
    let reply_markup = params.get("reply_markup").cloned();
    if message.text == text
        && message.parse_mode == parse_mode
        && message.reply_markup == reply_markup
    {
        return bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
    }
    message.text = text;
    message.parse_mode = parse_mode;
    message.reply_markup = reply_markup;
    message.edits += 1;
    ok(json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_checked_as_telegram_does() {
        assert_eq!(parse_html("<b>a</b> &lt;b&gt;").unwrap(), "a <b>");
        assert!(parse_html("<b>a").unwrap_err().contains("unclosed"));
        assert!(parse_html("<b>a</i>").unwrap_err().contains("end tag"));
        assert!(parse_html("1 < 2").is_err());
        assert!(
            parse_html("<script>x</script>")
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(parse_html("a & b").is_err());
        assert_eq!(
            parse_html(
                "<a href=\"https://x\">x</a><pre><code class=\"language-rust\">y</code></pre>"
            )
            .unwrap(),
            "xy"
        );
    }
}
