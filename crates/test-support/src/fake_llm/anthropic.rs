//! Anthropic messages: `POST /v1/messages`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::render::{
    Answer, Call, RouteError, Transcript, Wire, argument_fragments, arguments_object,
    route_json_post, word_pieces,
};
use super::sse::{EventRole, SseEvent};

/// The Anthropic messages format.
#[derive(Debug)]
pub(super) struct Anthropic;

impl Wire for Anthropic {
    fn route(
        &self,
        method: &Method,
        path: &str,
        _query: Option<&str>,
        body: &Value,
    ) -> Result<Call, RouteError> {
        route_json_post("/v1/messages", method, path, body)
    }

    fn transcript<'a>(&self, body: &'a Value) -> Transcript<'a> {
        Transcript::from_array(body, "messages", "content", "user").with_system(body, "system")
    }

    fn complete(&self, answer: &Answer<'_>) -> Value {
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
        let content: Vec<Value> = text_block.into_iter().chain(tool_blocks).collect();
        json!({
            "id": message_id(answer),
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": content,
            "stop_reason": stop_reason(answer),
            "stop_sequence": null,
            "usage": {
                "input_tokens": answer.usage.input,
                "output_tokens": answer.usage.output,
            },
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
                "usage": {"input_tokens": answer.usage.input, "output_tokens": 1},
            }}),
        )];

        // Each block is its start, its deltas and its stop; the real API
        // sends a ping after the first block starts.
        let mut blocks: Vec<(Value, Vec<Value>)> = Vec::new();
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
                "usage": {"output_tokens": answer.usage.output},
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
