//! What the four wire formats have in common: the [`Wire`] trait each format
//! implements, the answer it renders, and helpers that split text and
//! arguments into stream pieces and count tokens deterministically.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::script::{ScriptedCache, ScriptedReasoning, ScriptedToolCall};
use super::sse::SseEvent;

/// The fixed creation timestamp of every rendered answer (2025-01-01), so
/// snapshots of rendered bodies stay stable.
pub(super) const CREATED: u64 = 1_735_689_600;

/// Model name used when a request does not say which model it wants.
const DEFAULT_MODEL: &str = "fake-model";

/// How many characters of tool-call arguments go into one streamed fragment.
const ARGUMENT_FRAGMENT_CHARS: usize = 8;

/// Object keys whose string values are identifiers rather than words, and so
/// do not count as input tokens.
const NOT_WORDS: &[&str] = &[
    "type",
    "id",
    "call_id",
    "tool_call_id",
    "tool_use_id",
    "role",
    "status",
    "mimeType",
    "mime_type",
    "data",
];

/// One vendor wire format: how its requests are routed and read, and how its
/// answers and errors are rendered.
pub(super) trait Wire: Send + Sync {
    /// Which generation call `method path?query` is, or why there is none.
    fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &Value,
    ) -> Result<Call, RouteError>;

    /// The conversation in a request body.
    fn transcript<'a>(&self, body: &'a Value) -> Transcript<'a>;

    /// A complete, non-streamed answer.
    fn complete(&self, answer: &Answer<'_>) -> Value;

    /// A streamed answer as SSE events, in order.
    fn stream(&self, answer: &Answer<'_>) -> Vec<SseEvent>;

    /// The format's error envelope for `status`.
    fn error(&self, status: StatusCode, message: &str) -> Value;

    /// The line ending of the format's SSE stream.
    fn line_end(&self) -> &'static str {
        "\n"
    }
}

/// A request that reached a generation endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Call {
    pub stream: bool,
    pub model: String,
}

impl Call {
    /// A call whose streaming flag and model are fields of the JSON body, as
    /// with OpenAI chat, Responses and Anthropic.
    fn from_body(body: &Value) -> Self {
        Self {
            stream: body.get("stream").and_then(Value::as_bool) == Some(true),
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_MODEL)
                .to_owned(),
        }
    }
}

/// Why a request did not reach a generation endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RouteError {
    pub status: StatusCode,
    pub message: String,
}

impl RouteError {
    pub(super) fn not_found(method: &Method, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("fake LLM server has no route for {method} {path}"),
        }
    }

    /// A request the real API would refuse as invalid.
    pub(super) fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    fn method_not_allowed(method: &Method, path: &str) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("fake LLM server only accepts POST on {path}, got {method}"),
        }
    }
}

/// Routes the single `POST endpoint` of a format that reads streaming and
/// model from the JSON body.
pub(super) fn route_json_post(
    endpoint: &str,
    method: &Method,
    path: &str,
    body: &Value,
) -> Result<Call, RouteError> {
    if path != endpoint {
        return Err(RouteError::not_found(method, path));
    }
    if method != Method::POST {
        return Err(RouteError::method_not_allowed(method, path));
    }
    Ok(Call::from_body(body))
}

/// Routes Gemini's `POST /v1beta/models/{model}:{action}`.
pub(super) fn route_gemini(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<Call, RouteError> {
    let (model, action) = path
        .strip_prefix("/v1beta/models/")
        .filter(|model_action| !model_action.contains('/'))
        .and_then(|model_action| model_action.rsplit_once(':'))
        .ok_or_else(|| RouteError::not_found(method, path))?;
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return Err(RouteError::not_found(method, path)),
    };
    if method != Method::POST {
        return Err(RouteError::method_not_allowed(method, path));
    }
    let alt_sse = query.is_some_and(|query| query.split('&').any(|pair| pair == "alt=sse"));
    if stream && !alt_sse {
        return Err(RouteError {
            status: StatusCode::BAD_REQUEST,
            message: "fake LLM server streams only as server-sent events: add ?alt=sse".to_owned(),
        });
    }
    Ok(Call {
        stream,
        model: model.to_owned(),
    })
}

/// Everything a format needs to render one successful answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answer<'a> {
    /// 1-based number of the generation request, used in every id.
    pub seq: u64,
    pub model: &'a str,
    pub text: Option<&'a str>,
    pub calls: &'a [ScriptedToolCall],
    pub reasoning: Option<&'a ScriptedReasoning>,
    pub usage: Usage,
    /// The request body, for options such as `stream_options`.
    pub request: &'a Value,
}

impl Answer<'_> {
    pub(super) fn has_calls(&self) -> bool {
        !self.calls.is_empty()
    }
}

/// Deterministic token counts: words in, words out, at least 1 each, and
/// the scripted cache counts (none unless scripted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    /// Prompt tokens processed without the cache (the prompt's words).
    pub input: u64,
    pub output: u64,
    pub cache: Option<ScriptedCache>,
}

impl Usage {
    pub(super) fn of(
        transcript: &Transcript<'_>,
        text: Option<&str>,
        calls: &[ScriptedToolCall],
        cache: Option<ScriptedCache>,
    ) -> Self {
        let output = count_words(text.unwrap_or_default())
            + calls
                .iter()
                .map(|call| 1 + count_words(&call.arguments))
                .sum::<u64>();
        Self {
            input: transcript.input_words().max(1),
            output: output.max(1),
            cache,
        }
    }

    /// Prompt tokens read from the cache.
    pub(super) fn cache_read(&self) -> u64 {
        self.cache.map_or(0, |cache| cache.read)
    }

    /// The prompt as OpenAI and Gemini count it: cache reads included.
    pub(super) fn prompt_with_reads(&self) -> u64 {
        self.input + self.cache_read()
    }

    pub(super) fn total(&self) -> u64 {
        self.input + self.output
    }
}

/// One message of a request's conversation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Turn<'a> {
    pub role: &'a str,
    /// The message content in the format's own shape (a string, a list of
    /// parts or blocks).
    pub content: &'a Value,
}

/// The conversation of a request, read loosely: the fake must answer any
/// request, even one the real API would reject.
#[derive(Debug, Clone, Default)]
pub(super) struct Transcript<'a> {
    pub system: Vec<&'a Value>,
    pub turns: Vec<Turn<'a>>,
}

impl<'a> Transcript<'a> {
    /// Turns read from `body[field]`, an array of objects with a role and
    /// content under the given keys.
    pub(super) fn from_array(
        body: &'a Value,
        field: &str,
        content_key: &str,
        default_role: &'a str,
    ) -> Self {
        let turns = body
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|message| Turn {
                role: message
                    .get("role")
                    .and_then(Value::as_str)
                    .unwrap_or(default_role),
                content: message.get(content_key).unwrap_or(&Value::Null),
            })
            .collect();
        Self {
            system: Vec::new(),
            turns,
        }
    }

    /// Adds `body[field]` as system text when present.
    pub(super) fn with_system(mut self, body: &'a Value, field: &str) -> Self {
        self.system.extend(body.get(field));
        self
    }

    fn input_words(&self) -> u64 {
        self.system
            .iter()
            .copied()
            .chain(self.turns.iter().map(|turn| turn.content))
            .map(value_words)
            .sum()
    }

    /// Whether the last message is the user's, with text (not a tool result
    /// travelling as a user message).
    pub(super) fn ends_with_user_text(&self) -> bool {
        self.turns
            .last()
            .is_some_and(|turn| turn.role == "user" && !text_of(turn.content).is_empty())
    }

    /// The text of the last user message that has any, or "" when none does.
    /// Tool results travel as user messages in some formats; they carry no
    /// text and are skipped.
    pub(super) fn last_user_text(&self) -> String {
        self.turns
            .iter()
            .rev()
            .filter(|turn| turn.role == "user")
            .map(|turn| text_of(turn.content))
            .find(|text| !text.is_empty())
            .unwrap_or_default()
    }
}

/// The text of a message content: a string, or the `text` of its parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part {
                Value::String(text) => Some(text.as_str()),
                Value::Object(part) => part.get("text").and_then(Value::as_str),
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) => None,
            })
            .collect(),
        Value::Object(part) => part
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Value::Null | Value::Bool(_) | Value::Number(_) => String::new(),
    }
}

/// Words in every string of `value`, except identifier-like fields.
fn value_words(value: &Value) -> u64 {
    match value {
        Value::String(text) => count_words(text),
        Value::Array(items) => items.iter().map(value_words).sum(),
        Value::Object(fields) => fields
            .iter()
            .filter(|(key, _)| !NOT_WORDS.contains(&key.as_str()))
            .map(|(_, value)| value_words(value))
            .sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

fn count_words(text: &str) -> u64 {
    // A usize always fits in a u64 on the platforms Rust supports.
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

/// Splits text into streamed pieces, one word each with the whitespace that
/// precedes it, so the pieces concatenate back to exactly `text`.
pub(super) fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut previous_was_space = true;
    for (index, ch) in text.char_indices() {
        let is_space = ch.is_whitespace();
        if is_space && !previous_was_space && index > start {
            pieces.push(&text[start..index]);
            start = index;
        }
        previous_was_space = is_space;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits raw tool-call arguments into short fragments on character
/// boundaries (SSE payloads must stay valid UTF-8 JSON strings).
pub(super) fn argument_fragments(arguments: &str) -> Vec<&str> {
    let mut fragments = Vec::new();
    let mut start = 0;
    for (count, (index, _)) in arguments.char_indices().enumerate() {
        if count > 0 && count % ARGUMENT_FRAGMENT_CHARS == 0 {
            fragments.push(&arguments[start..index]);
            start = index;
        }
    }
    if start < arguments.len() {
        fragments.push(&arguments[start..]);
    }
    fragments
}

/// Tool-call arguments as the JSON object Anthropic and Gemini send. Text
/// that is not a JSON object is kept, as `{"_raw": text}`, so a test can
/// still see what was scripted.
pub(super) fn arguments_object(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        Ok(_) | Err(_) => json!({ "_raw": arguments }),
    }
}

/// Round-robin order over several lists: the first item of each, then the
/// second of each, and so on. Used to interleave parallel tool calls.
pub(super) fn interleave<T: Copy>(lists: &[Vec<T>]) -> Vec<(usize, T)> {
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|round| {
            lists
                .iter()
                .enumerate()
                .filter_map(move |(list, items)| items.get(round).map(|item| (list, *item)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_concatenate_to_the_text() {
        for text in [
            "",
            "one",
            "Hello, world!",
            "  lead and trail  ",
            "a\nb\r\nc",
            "héllo wörld ✓",
        ] {
            let pieces = word_pieces(text);
            assert_eq!(pieces.concat(), text);
        }
        assert_eq!(word_pieces("Hello big world"), ["Hello", " big", " world"]);
    }

    #[test]
    fn argument_fragments_respect_char_boundaries() {
        let arguments = r#"{"path": "/shared/é✓ü"}"#;
        let fragments = argument_fragments(arguments);
        assert!(fragments.len() > 2);
        assert_eq!(fragments.concat(), arguments);
        assert!(
            fragments
                .iter()
                .all(|f| f.chars().count() <= ARGUMENT_FRAGMENT_CHARS)
        );
    }

    #[test]
    fn arguments_object_keeps_malformed_text() {
        assert_eq!(arguments_object(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(arguments_object(""), json!({}));
        assert_eq!(arguments_object("{broken"), json!({"_raw": "{broken"}));
        assert_eq!(arguments_object("[1]"), json!({"_raw": "[1]"}));
    }

    #[test]
    fn interleave_alternates_lists() {
        let lists = vec![vec!['a', 'b', 'c'], vec!['x']];
        assert_eq!(interleave(&lists), [(0, 'a'), (1, 'x'), (0, 'b'), (0, 'c')]);
    }

    #[test]
    fn last_user_text_skips_text_free_user_messages() {
        let body = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "list "}, {"type": "text", "text": "files"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]},
        ]});
        let transcript = Transcript::from_array(&body, "messages", "content", "user");
        assert_eq!(transcript.last_user_text(), "list files");
        assert!(!transcript.ends_with_user_text(), "a tool result is last");
        assert_eq!(transcript.input_words(), 5);
        let body = json!({"messages": [{"role": "user", "content": "hi"}]});
        let transcript = Transcript::from_array(&body, "messages", "content", "user");
        assert!(transcript.ends_with_user_text());
    }
}
