//! Gemini: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`.
//!
//! Like the real Gemini 3 models, a `gemini-3…` model refuses a request
//! whose current turn has a step whose first function call comes back
//! without its `thoughtSignature`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::render::{
    Answer, Call, RouteError, Transcript, Wire, arguments_object, route_gemini, word_pieces,
};
use super::sse::{EventRole, SseEvent};

/// The Gemini `generateContent` format.
#[derive(Debug)]
pub(super) struct Gemini;

impl Wire for Gemini {
    fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &Value,
    ) -> Result<Call, RouteError> {
        let call = route_gemini(method, path, query)?;
        if call.model.starts_with("gemini-3") {
            check_signatures(body)?;
        }
        Ok(call)
    }

    fn transcript<'a>(&self, body: &'a Value) -> Transcript<'a> {
        Transcript::from_array(body, "contents", "parts", "user")
            .with_system(body, "systemInstruction")
    }

    fn complete(&self, answer: &Answer<'_>) -> Value {
        let thought = answer
            .reasoning
            .map(|reasoning| json!({"text": reasoning.text, "thought": true}));
        let text = answer.text.map(|text| json!({"text": text}));
        let parts: Vec<Value> = thought
            .into_iter()
            .chain(text)
            .chain(function_calls(answer))
            .collect();
        chunk(answer, parts, Finish::Stop)
    }

    fn stream(&self, answer: &Answer<'_>) -> Vec<SseEvent> {
        let reasoning = answer.reasoning.map(|r| r.text.as_str());
        let thoughts = word_pieces(reasoning.unwrap_or_default())
            .into_iter()
            .map(|piece| json!({"text": piece, "thought": true}));
        let texts = word_pieces(answer.text.unwrap_or_default())
            .into_iter()
            .map(|piece| json!({"text": piece}));
        let mut events: Vec<SseEvent> = thoughts
            .chain(texts)
            .map(|part| {
                let content = chunk(answer, vec![part], Finish::NotYet);
                SseEvent::data(EventRole::Content, &content)
            })
            .collect();
        if answer.has_calls() {
            // Gemini sends every function call of a turn, whole, in one chunk.
            let calls = chunk(answer, function_calls(answer).collect(), Finish::NotYet);
            events.push(SseEvent::data(EventRole::Content, &calls));
        }
        // The real API ends with an (often empty) text part that carries the
        // finish reason and the usage.
        let last = chunk(answer, vec![json!({"text": ""})], Finish::Stop);
        events.push(SseEvent::data(EventRole::Terminal, &last));
        events
    }

    fn error(&self, status: StatusCode, message: &str) -> Value {
        let code = match status.as_u16() {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ABORTED",
            429 => "RESOURCE_EXHAUSTED",
            499 => "CANCELLED",
            501 => "UNIMPLEMENTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            402..=498 => "FAILED_PRECONDITION",
            _ => "INTERNAL",
        };
        json!({"error": {"code": status.as_u16(), "message": message, "status": code}})
    }

    fn line_end(&self) -> &'static str {
        // Gemini really frames its server-sent events with CRLF.
        "\r\n"
    }
}

fn function_calls<'a>(answer: &'a Answer<'_>) -> impl Iterator<Item = Value> + 'a {
    answer.calls.iter().map(|call| {
        let mut part = json!({
            "functionCall": {"name": call.name, "args": arguments_object(&call.arguments)}
        });
        if let (Some(signature), Some(fields)) = (&call.signature, part.as_object_mut()) {
            fields.insert(
                "thoughtSignature".to_owned(),
                Value::from(signature.as_str()),
            );
        }
        part
    })
}

/// Gemini 3's rule: in the current turn (everything after the last user
/// content with text), the first function call of each model step must
/// carry the `thoughtSignature` it was answered with.
fn check_signatures(body: &Value) -> Result<(), RouteError> {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let parts = |content: &Value| {
        content
            .get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let turn_start = contents
        .iter()
        .rposition(|content| {
            content.get("role").and_then(Value::as_str) == Some("user")
                && parts(content).iter().any(|part| part.get("text").is_some())
        })
        .map_or(0, |position| position + 1);
    for (position, content) in contents.iter().enumerate().skip(turn_start) {
        if content.get("role").and_then(Value::as_str) != Some("model") {
            continue;
        }
        let first_call = parts(content)
            .into_iter()
            .find(|part| part.get("functionCall").is_some());
        if let Some(call) = first_call
            && call
                .get("thoughtSignature")
                .and_then(Value::as_str)
                .is_none()
        {
            let name = call
                .pointer("/functionCall/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(RouteError::bad_request(format!(
                "Function call is missing a thought_signature in functionCall parts. \
                 Additional data, function call `default_api:{name}` , position {}.",
                position + 1
            )));
        }
    }
    Ok(())
}

/// Gemini counts cached tokens inside `promptTokenCount`.
fn usage_metadata(answer: &Answer<'_>) -> Value {
    let usage = answer.usage;
    let prompt = usage.prompt_with_reads();
    let mut metadata = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": usage.output,
        "totalTokenCount": prompt + usage.output,
    });
    if let (Some(_), Some(fields)) = (usage.cache, metadata.as_object_mut()) {
        fields.insert(
            "cachedContentTokenCount".to_owned(),
            Value::from(usage.cache_read()),
        );
    }
    metadata
}

/// Whether a chunk is the last one, carrying finish reason and usage.
#[derive(Debug, Clone, Copy)]
enum Finish {
    NotYet,
    Stop,
}

/// A `GenerateContentResponse` with one candidate made of `parts`.
fn chunk(answer: &Answer<'_>, parts: Vec<Value>, finish: Finish) -> Value {
    let content = json!({"role": "model", "parts": parts});
    let response_id = format!("fake-{}", answer.seq);
    match finish {
        Finish::NotYet => json!({
            "candidates": [{"content": content, "index": 0}],
            "modelVersion": answer.model,
            "responseId": response_id,
        }),
        Finish::Stop => json!({
            "candidates": [{"content": content, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage_metadata(answer),
            "modelVersion": answer.model,
            "responseId": response_id,
        }),
    }
}
