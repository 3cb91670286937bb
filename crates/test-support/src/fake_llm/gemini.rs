//! Gemini: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`.

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
        _body: &Value,
    ) -> Result<Call, RouteError> {
        route_gemini(method, path, query)
    }

    fn transcript<'a>(&self, body: &'a Value) -> Transcript<'a> {
        Transcript::from_array(body, "contents", "parts", "user")
            .with_system(body, "systemInstruction")
    }

    fn complete(&self, answer: &Answer<'_>) -> Value {
        let text = answer.text.map(|text| json!({"text": text}));
        let parts: Vec<Value> = text.into_iter().chain(function_calls(answer)).collect();
        chunk(answer, parts, Finish::Stop)
    }

    fn stream(&self, answer: &Answer<'_>) -> Vec<SseEvent> {
        let mut events: Vec<SseEvent> = word_pieces(answer.text.unwrap_or_default())
            .into_iter()
            .map(|piece| {
                let content = chunk(answer, vec![json!({"text": piece})], Finish::NotYet);
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
        json!({"functionCall": {"name": call.name, "args": arguments_object(&call.arguments)}})
    })
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
            "usageMetadata": {
                "promptTokenCount": answer.usage.input,
                "candidatesTokenCount": answer.usage.output,
                "totalTokenCount": answer.usage.total(),
            },
            "modelVersion": answer.model,
            "responseId": response_id,
        }),
    }
}
