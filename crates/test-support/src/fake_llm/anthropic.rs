//! Anthropic messages: `POST /v1/messages`.
//!
//! Like the real API, a request with more than four `cache_control`
//! breakpoints is refused.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::render::{
    Answer, Call, RouteError, Transcript, Usage, Wire, argument_fragments, arguments_object,
    route_json_post, word_pieces,
};
use super::sse::{EventRole, SseEvent};

/// The Anthropic messages format.
#[derive(Debug)]
pub(super) struct Anthropic;

/// The most `cache_control` breakpoints Anthropic accepts in one request.
const MAX_CACHE_BREAKPOINTS: usize = 4;

impl Wire for Anthropic {
    fn route(
        &self,
        method: &Method,
        path: &str,
        _query: Option<&str>,
        body: &Value,
    ) -> Result<Call, RouteError> {
        let call = route_json_post("/v1/messages", method, path, body)?;
        let breakpoints = count_cache_control(body);
        if breakpoints > MAX_CACHE_BREAKPOINTS {
            return Err(RouteError::bad_request(format!(
                "A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be \
                 provided. Found {breakpoints}."
            )));
        }
        Ok(call)
    }

    fn transcript<'a>(&self, body: &'a Value) -> Transcript<'a> {
        Transcript::from_array(body, "messages", "content", "user").with_system(body, "system")
    }

    fn complete(&self, answer: &Answer<'_>) -> Value {
        let thinking_block = answer.reasoning.map(|reasoning| {
            json!({
                "type": "thinking",
                "thinking": reasoning.text,
                "signature": reasoning.signature.as_deref().unwrap_or_default(),
            })
        });
        let text_block = answer
            .text
            .map(|text| json!({"type": "text", "text": text}));
        let tool_blocks = answer.calls.iter().enumerate().map(|(index, call)| {
            json!({
                "type": "tool_use",
                "id": tool_use_id(answer, index),
                "name": call.name,
                "input": arguments_object(&call.arguments),
            })
        });
        let content: Vec<Value> = thinking_block
            .into_iter()
            .chain(text_block)
            .chain(tool_blocks)
            .collect();
        json!({
            "id": message_id(answer),
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": content,
            "stop_reason": stop_reason(answer),
            "stop_sequence": null,
            "usage": usage(answer.usage, answer.usage.output),
        })
    }

    fn stream(&self, answer: &Answer<'_>) -> Vec<SseEvent> {
        let mut events = vec![SseEvent::typed(
            "message_start",
            EventRole::Frame,
            json!({"message": {
                "id": message_id(answer),
                "type": "message",
                "role": "assistant",
                "model": answer.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(answer.usage, 1),
            }}),
        )];

        // Each block is its start, its deltas and its stop; the real API
        // sends a ping after the first block starts.
        let mut blocks: Vec<(Value, Vec<Value>)> = Vec::new();
        if let Some(reasoning) = answer.reasoning {
            let mut deltas: Vec<Value> = word_pieces(&reasoning.text)
                .into_iter()
                .map(|piece| json!({"type": "thinking_delta", "thinking": piece}))
                .collect();
            deltas.extend(
                reasoning
                    .signature
                    .as_ref()
                    .map(|signature| json!({"type": "signature_delta", "signature": signature})),
            );
            blocks.push((
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                deltas,
            ));
        }
        if let Some(text) = answer.text {
            let deltas = word_pieces(text)
                .into_iter()
                .map(|piece| json!({"type": "text_delta", "text": piece}))
                .collect();
            blocks.push((json!({"type": "text", "text": ""}), deltas));
        }
        for (index, call) in answer.calls.iter().enumerate() {
            let start = json!({
                "type": "tool_use",
                "id": tool_use_id(answer, index),
                "name": call.name,
                "input": {},
            });
            let deltas = argument_fragments(&call.arguments)
                .into_iter()
                .map(|fragment| json!({"type": "input_json_delta", "partial_json": fragment}))
                .collect();
            blocks.push((start, deltas));
        }
        let ping = || SseEvent::typed("ping", EventRole::Frame, json!({}));
        if blocks.is_empty() {
            events.push(ping());
        }
        for (index, (start, deltas)) in blocks.into_iter().enumerate() {
            events.push(SseEvent::typed(
                "content_block_start",
                EventRole::Frame,
                json!({"index": index, "content_block": start}),
            ));
            if index == 0 {
                events.push(ping());
            }
            for delta in deltas {
                events.push(SseEvent::typed(
                    "content_block_delta",
                    EventRole::Content,
                    json!({"index": index, "delta": delta}),
                ));
            }
            events.push(SseEvent::typed(
                "content_block_stop",
                EventRole::Frame,
                json!({"index": index}),
            ));
        }
        events.push(SseEvent::typed(
            "message_delta",
            EventRole::Terminal,
            json!({
                "delta": {"stop_reason": stop_reason(answer), "stop_sequence": null},
                "usage": match answer.usage.cache {
                    // The real API repeats the input counts (running
                    // totals) in message_delta.
                    Some(_) => usage(answer.usage, answer.usage.output),
                    None => json!({"output_tokens": answer.usage.output}),
                },
            }),
        ));
        events.push(SseEvent::typed(
            "message_stop",
            EventRole::Terminal,
            json!({}),
        ));
        events
    }

    fn error(&self, status: StatusCode, message: &str) -> Value {
        let kind = match status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            402..=499 => "invalid_request_error",
            _ => "api_error",
        };
        json!({"type": "error", "error": {"type": kind, "message": message}})
    }
}

/// A `usage` object: `input_tokens` leaves out the cached tokens, which
/// have fields of their own when a cache is scripted.
fn usage(usage: Usage, output_tokens: u64) -> Value {
    let mut value = json!({"input_tokens": usage.input, "output_tokens": output_tokens});
    if let (Some(cache), Some(fields)) = (usage.cache, value.as_object_mut()) {
        fields.insert(
            "cache_creation_input_tokens".to_owned(),
            Value::from(cache.write),
        );
        fields.insert(
            "cache_read_input_tokens".to_owned(),
            Value::from(cache.read),
        );
    }
    value
}

/// `cache_control` markers anywhere in a request: system blocks, tools and
/// message content blocks.
fn count_cache_control(value: &Value) -> usize {
    match value {
        Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| usize::from(key == "cache_control") + count_cache_control(value))
            .sum(),
        Value::Array(items) => items.iter().map(count_cache_control).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => 0,
    }
}

fn message_id(answer: &Answer<'_>) -> String {
    format!("msg_{}", answer.seq)
}

fn tool_use_id(answer: &Answer<'_>, index: usize) -> String {
    format!("toolu_{}_{index}", answer.seq)
}

fn stop_reason(answer: &Answer<'_>) -> &'static str {
    if answer.has_calls() {
        "tool_use"
    } else {
        "end_turn"
    }
}
