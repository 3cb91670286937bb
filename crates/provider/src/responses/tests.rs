//! Tests of the Responses API wire: request snapshots, chaining,
//! normalisation and streaming at every split point.

use super::*;
use crate::stream_test::{assert_every_split_matches, run_stream};
use std::collections::BTreeMap as Map;
use types::{GenerationSettings, ModelCatalog, ProviderType};

fn model() -> &'static ModelDescriptor {
    ModelCatalog::pinned()
        .get(ProviderType::OpenaiResponses, "gpt-4.1")
        .unwrap()
}

fn tool() -> FunctionDecl {
    FunctionDecl {
        name: "file_read".into(),
        description: "Read a file".into(),
        parameters: JsonSchema::object(
            Map::from([("path".into(), JsonSchema::string())]),
            vec!["path".into()],
        ),
    }
}

fn context(messages: Vec<Message>) -> Context {
    Context {
        provider: "responses".into(),
        model: "gpt-4.1".into(),
        messages,
        tools: vec![tool()],
        settings: None,
    }
}

fn call(id: &str) -> ToolCall {
    ToolCall::new(id, "file_read", "{\"path\":\"/shared/a\"}")
}

fn body(wire: &ResponsesWire, context: &Context, stream: bool) -> serde_json::Value {
    serde_json::to_value(wire.request(context, model(), stream).unwrap().body).unwrap()
}

#[test]
fn full_history_request() {
    let mut context = context(vec![
        Message::system("You are terse."),
        Message::user("Read a"),
        Message::assistant_tool_calls(Some("Reading.".into()), vec![call("call_1")]),
        Message::tool_result("call_1", "contents of a"),
        Message::system("Relevant context from memory:\n- a is small"),
        Message::user("Thanks"),
    ]);
    context.settings = Some(GenerationSettings {
        temperature: Some(0.2),
        top_p: None,
        max_output_tokens: Some(512),
    });
    let wire = ResponsesWire::new();
    let request = wire.request(&context, model(), true).unwrap();
    assert_eq!(request.path, "/responses");
    insta::assert_json_snapshot!(serde_json::to_value(request.body).unwrap());
}

fn completed_body(id: &str, text: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "id": id, "object": "response", "status": "completed", "model": "gpt-4.1",
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12,
                      "input_tokens_details": {"cached_tokens": 4},
                      "output_tokens_details": {"reasoning_tokens": 1}}
        })
        .to_string(),
    )
}

#[test]
fn second_turn_chains_and_sends_only_new_items() {
    let wire = ResponsesWire::new();
    let first = context(vec![Message::system("sys"), Message::user("Hi")]);
    assert!(
        body(&wire, &first, false)
            .get("previous_response_id")
            .is_none()
    );
    let reply = wire
        .parse_response(&first, &completed_body("resp_1", "Hello!"))
        .unwrap();
    assert_eq!(reply.usage.unwrap().cached_input_tokens, Some(4));

    // The runtime appends the reply and a new user message; the system
    // text changed (new retrieval) but the conversation did not.
    let second = context(vec![
        Message::system("sys v2"),
        Message::user("Hi"),
        reply.message.clone(),
        Message::user("How are you?"),
    ]);
    let body = body(&wire, &second, false);
    assert_eq!(body["previous_response_id"], "resp_1");
    assert_eq!(
        body["input"],
        serde_json::json!([{"type": "message", "role": "user", "content": "How are you?"}])
    );
    assert_eq!(body["instructions"], "sys v2");
}

#[test]
fn edited_history_or_another_model_falls_back_to_full_history() {
    let wire = ResponsesWire::new();
    let first = context(vec![Message::user("Hi")]);
    let reply = wire
        .parse_response(&first, &completed_body("resp_1", "Hello!"))
        .unwrap();
    let edited = context(vec![
        Message::user("Hi there"),
        reply.message.clone(),
        Message::user("next"),
    ]);
    assert!(
        body(&wire, &edited, false)
            .get("previous_response_id")
            .is_none()
    );
    let mut other_model = context(vec![Message::user("Hi"), reply.message, Message::user("n")]);
    other_model.model = "gpt-4o".into();
    assert!(
        body(&wire, &other_model, false)
            .get("previous_response_id")
            .is_none()
    );
}

#[test]
fn rejected_chain_is_forgotten_and_retried_in_full() {
    let wire = ResponsesWire::new();
    let first = context(vec![Message::user("Hi")]);
    let reply = wire
        .parse_response(&first, &completed_body("resp_gone", "Hello!"))
        .unwrap();
    let second = context(vec![
        Message::user("Hi"),
        reply.message,
        Message::user("again"),
    ]);
    assert_eq!(
        body(&wire, &second, false)["previous_response_id"],
        "resp_gone"
    );
    let expired = ProviderError::HttpStatus {
        status: 400,
        message: "Previous response with id 'resp_gone' not found.".into(),
    };
    let transient = ProviderError::HttpStatus {
        status: 503,
        message: "busy".into(),
    };
    assert!(!wire.retry_without_state(&second, &transient));
    assert!(wire.retry_without_state(&second, &expired));
    let retry = body(&wire, &second, false);
    assert!(retry.get("previous_response_id").is_none());
    assert_eq!(retry["input"].as_array().unwrap().len(), 3);
    // Without a chain there is nothing to drop, so no second retry.
    assert!(!wire.retry_without_state(&second, &expired));
}

#[test]
fn normalises_function_calls_refusals_and_incomplete_answers() {
    let wire = ResponsesWire::new();
    let ctx = context(vec![Message::user("x")]);
    let body = serde_json::json!({
        "id": "resp_2", "status": "completed",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "file_read",
             "arguments": "{\"path\":\"/shared/a\"}", "status": "completed"}
        ]
    });
    let response = wire
        .parse_response(&ctx, &Bytes::from(body.to_string()))
        .unwrap();
    assert_eq!(response.message.tool_calls, vec![call("call_a")]);
    assert_eq!(response.message.content, None);
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));

    let incomplete = serde_json::json!({
        "id": "resp_3", "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}]
    });
    let response = wire
        .parse_response(&ctx, &Bytes::from(incomplete.to_string()))
        .unwrap();
    assert_eq!(response.finish_reason, Some(FinishReason::Length));
    assert_eq!(response.message.content.as_deref(), Some("No."));

    let failed = serde_json::json!({
        "id": "resp_4", "status": "failed",
        "error": {"code": "server_error", "message": "boom"}, "output": []
    });
    let err = wire
        .parse_response(&ctx, &Bytes::from(failed.to_string()))
        .unwrap_err();
    assert!(err.to_string().contains("server_error") && err.to_string().contains("boom"));
}

/// A recorded-shape stream: text with multi-byte characters, two
/// function calls with interleaved argument deltas, completion.
const STREAM: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_9\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"héllo \"}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"👋 世界\"}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":4,\"output_index\":1,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_a\",\"name\":\"file_read\",\"arguments\":\"\"}}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":5,\"output_index\":2,\"item\":{\"type\":\"function_call\",\"id\":\"fc_2\",\"call_id\":\"call_b\",\"name\":\"file_list\",\"arguments\":\"\"}}\n\n",
    "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":6,\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"{\\\"path\\\":\"}\n\n",
    "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":7,\"item_id\":\"fc_2\",\"output_index\":2,\"delta\":\"{\\\"path\\\":\\\"/tmp\\\"}\"}\n\n",
    "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":8,\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"\\\"/shared/a\\\"}\"}\n\n",
    "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":9,\"output_index\":1,\"item\":{\"type\":\"function_call\"}}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":10,\"response\":{\"id\":\"resp_9\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":7,\"output_tokens\":5,\"total_tokens\":12}}}\n\n",
);

fn run(wire: &ResponsesWire, ctx: &Context, pieces: &[&[u8]]) -> (Vec<StreamItem>, bool) {
    run_stream(wire.stream_parser(ctx), pieces)
}

#[test]
fn stream_reassembles_text_and_interleaved_calls_and_chains() {
    let wire = ResponsesWire::new();
    let ctx = context(vec![Message::user("go")]);
    let (items, done) = run(&wire, &ctx, &[STREAM.as_bytes()]);
    assert!(done);
    let mut collector = StreamCollector::new();
    items.into_iter().for_each(|item| collector.push(item));
    let response = collector.finish().unwrap();
    assert_eq!(response.message.content.as_deref(), Some("héllo 👋 世界"));
    assert_eq!(response.message.tool_calls[0], call("call_a"));
    assert_eq!(
        response.message.tool_calls[1].arguments,
        "{\"path\":\"/tmp\"}"
    );
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(response.usage.unwrap().total_tokens, 12);

    let mut next = ctx.messages.clone();
    next.push(response.message);
    next.push(Message::tool_result("call_a", "A"));
    next.push(Message::tool_result("call_b", "B"));
    let body = body(&wire, &context(next), true);
    assert_eq!(body["previous_response_id"], "resp_9");
    assert_eq!(body["input"].as_array().unwrap().len(), 2);
}

#[test]
fn stream_items_are_identical_at_every_split_point() {
    let wire = ResponsesWire::new();
    let ctx = context(vec![Message::user("go")]);
    assert_every_split_matches(STREAM, |pieces| run(&wire, &ctx, pieces));
}

#[test]
fn stream_failures_are_errors() {
    let wire = ResponsesWire::new();
    let ctx = context(vec![Message::user("go")]);
    for (data, expected) in [
        (
            r#"{"type":"response.failed","response":{"id":"r","status":"failed","output":[],"error":{"code":"rate_limit_exceeded","message":"slow down"}}}"#,
            "slow down",
        ),
        (
            r#"{"type":"error","code":"server_error","message":"oops"}"#,
            "oops",
        ),
        (
            r#"{"type":"response.function_call_arguments.delta","output_index":5,"delta":"x"}"#,
            "not a function call",
        ),
        ("{not json", "parse"),
    ] {
        let mut parser = wire.stream_parser(&ctx);
        let err = parser
            .on_event(
                SseEvent {
                    data: data.into(),
                    ..SseEvent::default()
                },
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{data}: {err}");
    }
}
