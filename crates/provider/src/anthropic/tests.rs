//! Tests of the Anthropic messages wire: request snapshots, normalisation,
//! and streaming at every split point.

use super::*;
use crate::StreamCollector;
use crate::stream_test::{assert_every_split_matches, run_stream};
use std::collections::BTreeMap;
use types::{FunctionDecl, GenerationSettings, ModelCatalog, ProviderType};

const MODEL: &str = "claude-sonnet-4-5-20250929";

fn model() -> &'static ModelDescriptor {
    ModelCatalog::pinned()
        .get(ProviderType::Anthropic, MODEL)
        .unwrap()
}

fn tool(name: &str) -> FunctionDecl {
    FunctionDecl {
        name: name.into(),
        description: format!("The {name} tool"),
        parameters: JsonSchema::object(
            BTreeMap::from([("path".into(), JsonSchema::string())]),
            vec!["path".into()],
        ),
    }
}

fn context(messages: Vec<Message>, tools: Vec<FunctionDecl>) -> Context {
    Context {
        provider: "anthropic".into(),
        model: MODEL.into(),
        messages,
        tools,
        settings: None,
    }
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall::new(id, name, arguments)
}

fn body(context: &Context, stream: bool) -> Value {
    let wire = MessagesWire::new();
    let request = wire.request(context, model(), stream).unwrap();
    assert_eq!(request.path, "/v1/messages");
    serde_json::to_value(request.body).unwrap()
}

/// System text is lifted out; consecutive tool results and the user
/// message after them merge into one user message.
#[test]
fn full_history_request() {
    let mut context = context(
        vec![
            Message::system("You are terse."),
            Message::user("Read a and list /tmp"),
            Message::assistant_tool_calls(
                Some("Reading both.".into()),
                vec![
                    call("toolu_01", "file_read", r#"{"path":"/shared/a"}"#),
                    call("toolu_02", "file_list", r#"{"path":"/tmp"}"#),
                ],
            ),
            Message::tool_result("toolu_01", "contents of a"),
            Message::tool_result("toolu_02", "x.txt\ny.txt"),
            Message::system("Relevant context from memory:\n- a is small"),
            Message::user("Thanks, summarise"),
        ],
        vec![tool("file_read"), tool("file_list")],
    );
    context.settings = Some(GenerationSettings {
        temperature: Some(0.2),
        top_p: None,
        max_output_tokens: Some(1024),
    });
    insta::assert_json_snapshot!(body(&context, false));
}

#[test]
fn streaming_request_without_tools() {
    let context = context(vec![Message::user("héllo 👋")], vec![]);
    let body = body(&context, true);
    assert_eq!(body["max_tokens"], model().max_output_tokens);
    insta::assert_json_snapshot!(body);
}

#[test]
fn malformed_tool_arguments_are_sent_raw() {
    let context = context(
        vec![
            Message::user("Read a"),
            Message::assistant_tool_calls(
                None,
                vec![
                    call("toolu_01", "file_read", r#"{"path": "/shared/a""#),
                    call("toolu_02", "file_read", r#"["not", "an", "object"]"#),
                ],
            ),
            Message::tool_result("toolu_01", "Tool execution failed: invalid arguments"),
            Message::tool_result("toolu_02", "Tool execution failed: invalid arguments"),
        ],
        vec![tool("file_read")],
    );
    insta::assert_json_snapshot!(body(&context, false));
}

#[test]
fn tool_result_without_id_is_unsupported() {
    let mut result = Message::tool_result("x", "ok");
    result.tool_call_id = None;
    let context = context(vec![Message::user("hi"), result], vec![]);
    let err = MessagesWire::new()
        .request(&context, model(), false)
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unsupported(m) if m.contains("tool_call_id")),
        "{err}"
    );
}

const RESPONSE: &str = r#"{
  "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "thinking", "thinking": "The user wants a file.", "signature": "EqQBCgIYAhIM"},
    {"type": "text", "text": "I'll read "},
    {"type": "text", "text": "the file."},
    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "file_read", "input": {"path": "/shared/a", "start_line": 3}}
  ],
  "stop_reason": "tool_use", "stop_sequence": null,
  "usage": {"input_tokens": 2095, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 503}
}"#;

#[test]
fn parse_response_with_text_tool_use_and_usage() {
    let context = context(vec![], vec![]);
    let response = MessagesWire::new()
        .parse_response(&context, &Bytes::from_static(RESPONSE.as_bytes()))
        .unwrap();
    assert_eq!(
        response.message,
        Message::assistant_tool_calls(
            Some("I'll read the file.".into()),
            vec![call(
                "toolu_01A09q90qw90lq917835lq9",
                "file_read",
                r#"{"path":"/shared/a","start_line":3}"#
            )],
        )
    );
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        response.usage,
        Some(UsageUpdate {
            cached_input_tokens: Some(1024),
            ..UsageUpdate::new(2095, 503)
        })
    );
}

#[test]
fn stop_reasons() {
    for (wire, expected) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("tool_use", FinishReason::ToolCalls),
        ("max_tokens", FinishReason::Length),
        ("refusal", FinishReason::ContentFilter),
        ("pause_turn", FinishReason::Other("pause_turn".into())),
    ] {
        let body = format!(r#"{{"content":[],"stop_reason":"{wire}"}}"#);
        let response = MessagesWire::new()
            .parse_response(&context(vec![], vec![]), &Bytes::from(body))
            .unwrap();
        assert_eq!(response.finish_reason, Some(expected), "{wire}");
        assert_eq!(response.message.content, None);
    }
}

/// A recorded stream: thinking, text with multi-byte characters, then
/// two tool calls whose content block indices (2, 3) differ from their
/// tool ordinals (0, 1).
const TRANSCRIPT: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":128,"output_tokens":2}}}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Two files → two calls."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"héllo 👋"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":", reading both — 世界."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qA","name":"file_read","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"/sha"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"red/é.txt\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01SbTZxHvYDd","name":"file_list","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"path\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":" \"/tmp\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

fn run(pieces: &[&[u8]]) -> (Vec<StreamItem>, bool) {
    run_stream(
        MessagesWire::new().stream_parser(&context(vec![], vec![])),
        pieces,
    )
}

#[test]
fn recorded_stream_reassembles_the_answer() {
    // `run` also proves that only the last event, message_stop, is Done.
    let (items, done) = run(&[TRANSCRIPT.as_bytes()]);
    assert!(done);
    let mut collector = StreamCollector::new();
    items.into_iter().for_each(|item| collector.push(item));
    assert_eq!(collector.reasoning(), "Two files → two calls.");
    let response = collector.finish().unwrap();
    assert_eq!(
        response.message,
        Message::assistant_tool_calls(
            Some("héllo 👋, reading both — 世界.".into()),
            vec![
                call(
                    "toolu_01T1x1fJ34qA",
                    "file_read",
                    r#"{"path": "/shared/é.txt"}"#
                ),
                call("toolu_01SbTZxHvYDd", "file_list", r#"{"path": "/tmp"}"#),
            ],
        )
    );
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        response.usage,
        Some(UsageUpdate {
            cached_input_tokens: Some(128),
            ..UsageUpdate::new(472, 89)
        })
    );
}

#[test]
fn every_split_point_gives_identical_items() {
    assert_every_split_matches(TRANSCRIPT, run);
}

/// Regression: a call to a tool without parameters streams only an
/// empty `partial_json`; its arguments must still be a JSON object.
#[test]
fn tool_call_without_arguments_gets_an_empty_object() {
    let stream = r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01","name":"clock","input":{}}}

data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}

data: {"type":"content_block_stop","index":0}

data: {"type":"message_stop"}

"#;
    let mut collector = StreamCollector::new();
    run(&[stream.as_bytes()])
        .0
        .into_iter()
        .for_each(|item| collector.push(item));
    let calls = collector.finish().unwrap().message.tool_calls;
    assert_eq!(calls, [call("toolu_01", "clock", "{}")]);
}

fn on_data(data: &str) -> (Result<StreamStep, ProviderError>, Vec<StreamItem>) {
    let mut items = Vec::new();
    let event = SseEvent {
        data: data.into(),
        ..SseEvent::default()
    };
    (
        MessagesStreamParser::default().on_event(event, &mut items),
        items,
    )
}

#[test]
fn error_event_names_its_type_and_message() {
    let (result, items) =
        on_data(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .contains("anthropic stream error overloaded_error: Overloaded"),
        "{err}"
    );
    assert!(err.is_retriable());
    assert!(items.is_empty());
    let (result, _) = on_data(
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}"#,
    );
    assert!(!result.unwrap_err().is_retriable());
}

#[test]
fn invalid_json_is_a_parse_error() {
    let (result, _) = on_data(r#"{"type":"content_block_delta","index":0,"#);
    assert!(
        matches!(result, Err(ProviderError::ResponseParse(_))),
        "{result:?}"
    );
}

#[test]
fn unknown_events_and_deltas_are_skipped() {
    for data in [
        r#"{"type":"message_annotation","annotation":{"kind":"new"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}}"#,
    ] {
        let (result, items) = on_data(data);
        assert_eq!(result, Ok(StreamStep::Continue), "{data}");
        assert!(items.is_empty(), "{data}");
    }
}
