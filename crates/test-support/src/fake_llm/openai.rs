//! OpenAI chat completions: `POST /v1/chat/completions`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::render::{
    Answer, CREATED, Call, RouteError, Transcript, Usage, Wire, argument_fragments, interleave,
    route_json_post, word_pieces,
};
use super::sse::{EventRole, SseEvent};

/// The OpenAI chat completions format.
#[derive(Debug)]
pub(super) struct Openai;

impl Wire for Openai {
    fn route(
        &self,
        method: &Method,
        path: &str,
        _query: Option<&str>,
        body: &Value,
    ) -> Result<Call, RouteError> {
        route_json_post("/v1/chat/completions", method, path, body)
    }

    fn transcript<'a>(&self, body: &'a Value) -> Transcript<'a> {
        Transcript::from_array(body, "messages", "content", "user")
    }

    fn complete(&self, answer: &Answer<'_>) -> Value {
        let mut message = json!({
            "role": "assistant",
            "content": answer.text,
            "refusal": null,
        });
        if let (Some(reasoning), Some(message)) = (answer.reasoning, message.as_object_mut()) {
            // The field OpenAI-compatible reasoning servers (DeepSeek,
            // vLLM) add; OpenAI itself never shows reasoning here.
            message.insert(
                "reasoning_content".to_owned(),
                Value::from(reasoning.text.as_str()),
            );
        }
        if let (true, Some(message)) = (answer.has_calls(), message.as_object_mut()) {
            let calls: Value = answer
                .calls
                .iter()
                .enumerate()
                .map(|(index, call)| {
                    json!({
                        "id": call_id(answer, index),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    })
                })
                .collect();
            message.insert("tool_calls".to_owned(), calls);
        }
        json!({
            "id": completion_id(answer),
            "object": "chat.completion",
            "created": CREATED,
            "model": answer.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason(answer),
            }],
            "usage": usage(answer.usage),
        })
    }

    fn stream(&self, answer: &Answer<'_>) -> Vec<SseEvent> {
        let include_usage = answer
            .request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let chunk = |delta: Value, finish_reason: Value| {
            let mut chunk = json!({
                "id": completion_id(answer),
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": answer.model,
                "choices": [{
                    "index": 0,
                    "delta": delta,
                    "logprobs": null,
                    "finish_reason": finish_reason,
                }],
            });
            if let (true, Some(chunk)) = (include_usage, chunk.as_object_mut()) {
                // With include_usage, the real API sends `"usage": null` on
                // every chunk but the last.
                chunk.insert("usage".to_owned(), Value::Null);
            }
            chunk
        };

        let mut events = vec![SseEvent::data(
            EventRole::Frame,
            &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        )];
        let reasoning = answer.reasoning.map(|r| r.text.as_str());
        for piece in word_pieces(reasoning.unwrap_or_default()) {
            let delta = json!({"reasoning_content": piece});
            events.push(SseEvent::data(
                EventRole::Content,
                &chunk(delta, Value::Null),
            ));
        }
        for piece in word_pieces(answer.text.unwrap_or_default()) {
            let delta = json!({"content": piece});
            events.push(SseEvent::data(
                EventRole::Content,
                &chunk(delta, Value::Null),
            ));
        }
        for (index, call) in answer.calls.iter().enumerate() {
            let delta = json!({"tool_calls": [{
                "index": index,
                "id": call_id(answer, index),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }]});
            events.push(SseEvent::data(
                EventRole::Content,
                &chunk(delta, Value::Null),
            ));
        }
        // Argument fragments of parallel calls are interleaved so a client
        // must reassemble them by index.
        let fragments: Vec<Vec<&str>> = answer
            .calls
            .iter()
            .map(|call| argument_fragments(&call.arguments))
            .collect();
        for (index, fragment) in interleave(&fragments) {
            let delta = json!({"tool_calls": [{
                "index": index,
                "function": {"arguments": fragment},
            }]});
            events.push(SseEvent::data(
                EventRole::Content,
                &chunk(delta, Value::Null),
            ));
        }
        events.push(SseEvent::data(
            EventRole::Frame,
            &chunk(json!({}), Value::from(finish_reason(answer))),
        ));
        if include_usage {
            let last = json!({
                "id": completion_id(answer),
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": answer.model,
                "choices": [],
                "usage": usage(answer.usage),
            });
            events.push(SseEvent::data(EventRole::Frame, &last));
        }
        events.push(SseEvent::raw(EventRole::Terminal, "[DONE]"));
        events
    }

    fn error(&self, status: StatusCode, message: &str) -> Value {
        error_envelope(status, message)
    }
}

/// OpenAI's error envelope, shared with the Responses API.
pub(super) fn error_envelope(status: StatusCode, message: &str) -> Value {
    let kind = match status.as_u16() {
        429 => "requests",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

fn completion_id(answer: &Answer<'_>) -> String {
    format!("chatcmpl-{}", answer.seq)
}

/// The id of the `index`th tool call, shared with the Responses API.
pub(super) fn call_id(answer: &Answer<'_>, index: usize) -> String {
    format!("call_{}_{index}", answer.seq)
}

fn finish_reason(answer: &Answer<'_>) -> &'static str {
    if answer.has_calls() {
        "tool_calls"
    } else {
        "stop"
    }
}

fn usage(usage: Usage) -> Value {
    let prompt = usage.prompt_with_reads();
    let mut value = json!({
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
    });
    if let (Some(_), Some(fields)) = (usage.cache, value.as_object_mut()) {
        // OpenAI counts cached tokens inside `prompt_tokens`.
        fields.insert(
            "prompt_tokens_details".to_owned(),
            json!({"cached_tokens": usage.cache_read()}),
        );
    }
    value
}
