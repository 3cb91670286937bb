//! The OpenAI Responses API: `POST /v1/responses`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::openai::{call_id, error_envelope};
use super::render::{
    Answer, CREATED, Call, RouteError, Transcript, Turn, Wire, argument_fragments, route_json_post,
    word_pieces,
};
use super::script::ScriptedToolCall;
use super::sse::{EventRole, SseEvent};

/// The OpenAI Responses format.
#[derive(Debug)]
pub(super) struct Responses;

impl Wire for Responses {
    fn route(
        &self,
        method: &Method,
        path: &str,
        _query: Option<&str>,
        body: &Value,
    ) -> Result<Call, RouteError> {
        route_json_post("/v1/responses", method, path, body)
    }

    fn transcript<'a>(&self, body: &'a Value) -> Transcript<'a> {
        // `input` is either one user string or a list of typed items; tool
        // results (`function_call_output`) have no role and no text.
        let transcript = match body.get("input") {
            Some(text @ Value::String(_)) => Transcript {
                system: Vec::new(),
                turns: vec![Turn {
                    role: "user",
                    content: text,
                }],
            },
            Some(_) | None => Transcript::from_array(body, "input", "content", ""),
        };
        transcript.with_system(body, "instructions")
    }

    fn complete(&self, answer: &Answer<'_>) -> Value {
        response_object(answer, "completed", output_items(answer))
    }

    fn stream(&self, answer: &Answer<'_>) -> Vec<SseEvent> {
        let mut events = Events::default();
        let in_progress = response_object(answer, "in_progress", Vec::new());
        events.push(
            "response.created",
            EventRole::Frame,
            json!({"response": in_progress}),
        );
        events.push(
            "response.in_progress",
            EventRole::Frame,
            json!({"response": in_progress}),
        );

        let mut output_index = 0;
        if let Some(text) = answer.text {
            let item_id = message_id(answer);
            let at = json!({"item_id": item_id, "output_index": output_index, "content_index": 0});
            let with = |extra: Value| merge(&at, extra);
            let added = json!({
                "type": "message",
                "id": item_id,
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            });
            events.push(
                "response.output_item.added",
                EventRole::Frame,
                json!({"output_index": output_index, "item": added}),
            );
            events.push(
                "response.content_part.added",
                EventRole::Frame,
                with(json!({"part": text_part("")})),
            );
            for piece in word_pieces(text) {
                events.push(
                    "response.output_text.delta",
                    EventRole::Content,
                    with(json!({"delta": piece})),
                );
            }
            events.push(
                "response.output_text.done",
                EventRole::Frame,
                with(json!({"text": text})),
            );
            events.push(
                "response.content_part.done",
                EventRole::Frame,
                with(json!({"part": text_part(text)})),
            );
            events.push(
                "response.output_item.done",
                EventRole::Frame,
                json!({"output_index": output_index, "item": message_item(answer, text)}),
            );
            output_index += 1;
        }
        for (index, call) in answer.calls.iter().enumerate() {
            let item_id = function_call_id(answer, index);
            let at = json!({"item_id": item_id, "output_index": output_index});
            let added = merge(
                &function_call_item(answer, index, call),
                json!({"arguments": "", "status": "in_progress"}),
            );
            events.push(
                "response.output_item.added",
                EventRole::Frame,
                json!({"output_index": output_index, "item": added}),
            );
            for fragment in argument_fragments(&call.arguments) {
                events.push(
                    "response.function_call_arguments.delta",
                    EventRole::Content,
                    merge(&at, json!({"delta": fragment})),
                );
            }
            events.push(
                "response.function_call_arguments.done",
                EventRole::Frame,
                merge(&at, json!({"arguments": call.arguments})),
            );
            events.push(
                "response.output_item.done",
                EventRole::Frame,
                json!({"output_index": output_index, "item": function_call_item(answer, index, call)}),
            );
            output_index += 1;
        }
        events.push(
            "response.completed",
            EventRole::Terminal,
            json!({"response": self.complete(answer)}),
        );
        events.list
    }

    fn error(&self, status: StatusCode, message: &str) -> Value {
        error_envelope(status, message)
    }
}

/// Builds the event list, numbering events as the real API does.
#[derive(Debug, Default)]
struct Events {
    list: Vec<SseEvent>,
    next_sequence: u64,
}

impl Events {
    fn push(&mut self, kind: &'static str, role: EventRole, fields: Value) {
        let fields = merge(&fields, json!({"sequence_number": self.next_sequence}));
        self.next_sequence += 1;
        self.list.push(SseEvent::typed(kind, role, fields));
    }
}

/// `base` with the fields of `extra` added (both are JSON objects).
fn merge(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    if let (Some(merged), Value::Object(extra)) = (merged.as_object_mut(), extra) {
        merged.extend(extra);
    }
    merged
}

fn response_object(answer: &Answer<'_>, status: &str, output: Vec<Value>) -> Value {
    let completed = status == "completed";
    let usage = completed.then(|| {
        json!({
            "input_tokens": answer.usage.input,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": answer.usage.output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": answer.usage.total(),
        })
    });
    json!({
        "id": format!("resp_{}", answer.seq),
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "model": answer.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": answer.request.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "usage": usage,
    })
}

fn output_items(answer: &Answer<'_>) -> Vec<Value> {
    answer
        .text
        .map(|text| message_item(answer, text))
        .into_iter()
        .chain(
            answer
                .calls
                .iter()
                .enumerate()
                .map(|(index, call)| function_call_item(answer, index, call)),
        )
        .collect()
}

fn message_id(answer: &Answer<'_>) -> String {
    format!("msg_{}", answer.seq)
}

fn function_call_id(answer: &Answer<'_>, index: usize) -> String {
    format!("fc_{}_{index}", answer.seq)
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn message_item(answer: &Answer<'_>, text: &str) -> Value {
    json!({
        "type": "message",
        "id": message_id(answer),
        "role": "assistant",
        "status": "completed",
        "content": [text_part(text)],
    })
}

fn function_call_item(answer: &Answer<'_>, index: usize, call: &ScriptedToolCall) -> Value {
    json!({
        "type": "function_call",
        "id": function_call_id(answer, index),
        "call_id": call_id(answer, index),
        "name": call.name,
        "arguments": call.arguments,
        "status": "completed",
    })
}
