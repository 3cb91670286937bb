//! Tests of the Anthropic messages wire: request snapshots, normalisation,
//! and streaming at every split point.

use super::*;
use crate::StreamCollector;
use crate::stream_test::{assert_every_split_matches, run_stream};
use serde_json::json;
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

fn signed(value: &str) -> Signature {
    Signature {
        model: MODEL.into(),
        value: value.into(),
    }
}

#[test]
fn parse_response_with_thinking_text_tool_use_and_usage() {
    let context = context(vec![], vec![]);
    let response = MessagesWire::new()
        .parse_response(&context, &Bytes::from_static(RESPONSE.as_bytes()))
        .unwrap();
    assert_eq!(
        response.message,
        Message {
            reasoning: vec![ReasoningBlock::Thinking {
                text: "The user wants a file.".into(),
                signature: signed("EqQBCgIYAhIM"),
            }],
            ..Message::assistant_tool_calls(
                Some("I'll read the file.".into()),
                vec![call(
                    "toolu_01A09q90qw90lq917835lq9",
                    "file_read",
                    r#"{"path":"/shared/a","start_line":3}"#
                )],
            )
        }
    );
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    // Anthropic's input_tokens (2095) leaves out the 1024 read from the
    // cache; the normalised input includes them.
    assert_eq!(
        response.usage,
        Some(UsageUpdate {
            cached_input_tokens: Some(1024),
            cache_write_input_tokens: Some(0),
            ..UsageUpdate::new(2095 + 1024, 503)
        })
    );
}

#[test]
fn redacted_thinking_is_kept_and_unsigned_thinking_is_not() {
    let body = r#"{"content": [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"},
        {"type": "thinking", "thinking": "no signature"},
        {"type": "text", "text": "Done."}
    ], "stop_reason": "end_turn"}"#;
    let response = MessagesWire::new()
        .parse_response(&context(vec![], vec![]), &Bytes::from(body))
        .unwrap();
    assert_eq!(
        response.message.reasoning,
        [ReasoningBlock::Redacted {
            data: signed("EmwKAhgBEgy3va")
        }]
    );
}

/// A tool loop as the runtime sends it: the system prompt, a memory
/// snippet, the prompt, a tool call with its signed thinking, its result.
fn tool_loop() -> Context {
    let mut thinking = Message::assistant_tool_calls(
        None,
        vec![call("toolu_01", "file_read", r#"{"path":"/shared/a"}"#)],
    );
    thinking.reasoning = vec![
        ReasoningBlock::Thinking {
            text: "Read a first.".into(),
            signature: signed("EqQBCgIYAhIM"),
        },
        ReasoningBlock::Redacted {
            data: signed("EmwKAhgB"),
        },
    ];
    context(
        vec![
            Message::system("You are terse."),
            Message::system("Relevant context from memory:\n- a is small"),
            Message::user("What is in a?"),
            thinking,
            Message::tool_result("toolu_01", "alpha"),
        ],
        vec![tool("file_read"), tool("file_list")],
    )
}

/// Where the cache breakpoints go: the last tool, the system prompt (not
/// the per-turn system text after it), the user message before the last
/// message, and the last message. Never more than four.
#[test]
fn cache_breakpoints_follow_the_documented_scheme() {
    let body = body(&tool_loop(), true);
    let ephemeral = json!({"type": "ephemeral"});
    assert_eq!(body["tools"][0].get("cache_control"), None);
    assert_eq!(body["tools"][1]["cache_control"], ephemeral);
    assert_eq!(body["system"][0]["text"], "You are terse.");
    assert_eq!(body["system"][0]["cache_control"], ephemeral);
    assert_eq!(
        body["system"][1]["text"],
        "\n\nRelevant context from memory:\n- a is small"
    );
    assert_eq!(body["system"][1].get("cache_control"), None);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["content"][0]["cache_control"], ephemeral);
    assert!(
        messages[1]["content"]
            .as_array()
            .unwrap()
            .iter()
            .all(|block| block.get("cache_control").is_none()),
        "{body}"
    );
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["cache_control"], ephemeral);
    assert_eq!(body.to_string().matches("\"ephemeral\"").count(), 4);

    // A first request: no earlier user message to mark.
    let first = context(
        vec![Message::system("You are terse."), Message::user("hi")],
        vec![],
    );
    assert_eq!(
        body_of(&first).to_string().matches("\"ephemeral\"").count(),
        2
    );
}

fn body_of(context: &Context) -> Value {
    body(context, false)
}

/// With extended thinking, Anthropic rejects tool results whose calls
/// come back without the thinking that led to them: signed blocks go back
/// first, verbatim, and only to the model that signed them.
#[test]
fn signed_thinking_goes_back_first_to_its_model_only() {
    let mut context = tool_loop();
    let body = body(&context, false);
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "Read a first.", "signature": "EqQBCgIYAhIM"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "tool_use", "id": "toolu_01", "name": "file_read",
             "input": {"path": "/shared/a"}},
        ])
    );
    context.model = "claude-opus-4-1".into();
    let body = body_of(&context);
    let content = body["messages"][1]["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{body}");
    assert_eq!(content[0]["type"], "tool_use");
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
        Message {
            reasoning: vec![ReasoningBlock::Thinking {
                text: "Two files → two calls.".into(),
                signature: signed("EqQBCgIYAhIM1gbcDa9GJwZA"),
            }],
            ..Message::assistant_tool_calls(
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
        }
    );
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    // 472 uncached + 128 read from the cache; 2 output tokens at the
    // start, 89 in all at the end.
    assert_eq!(
        response.usage,
        Some(UsageUpdate {
            cached_input_tokens: Some(128),
            cache_write_input_tokens: Some(0),
            ..UsageUpdate::new(600, 89)
        })
    );
}

/// Recent API versions repeat the input counts in `message_delta`: they
/// are running totals, so only what grew is reported again.
#[test]
fn usage_totals_repeated_in_message_delta_are_not_counted_twice() {
    let stream = r#"data: {"type":"message_start","message":{"usage":{"input_tokens":12,"cache_creation_input_tokens":3000,"cache_read_input_tokens":9000,"output_tokens":1}}}

data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":12,"cache_creation_input_tokens":3000,"cache_read_input_tokens":9000,"output_tokens":40}}

data: {"type":"message_stop"}

"#;
    let mut collector = StreamCollector::new();
    run(&[stream.as_bytes()])
        .0
        .into_iter()
        .for_each(|item| collector.push(item));
    assert_eq!(
        collector.finish().unwrap().usage,
        Some(UsageUpdate {
            cached_input_tokens: Some(9000),
            cache_write_input_tokens: Some(3000),
            ..UsageUpdate::new(12 + 3000 + 9000, 40)
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
        MessagesStreamParser::new(&context(vec![], vec![])).on_event(event, &mut items),
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
        // A signature for a block that is not a thinking block.
        r#"{"type":"content_block_delta","index":5,"delta":{"type":"signature_delta","signature":"x"}}"#,
    ] {
        let (result, items) = on_data(data);
        assert_eq!(result, Ok(StreamStep::Continue), "{data}");
        assert!(items.is_empty(), "{data}");
    }
}

#[test]
fn redacted_thinking_streams_as_kept_reasoning() {
    let (result, items) = on_data(
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}}"#,
    );
    assert_eq!(result, Ok(StreamStep::Continue));
    assert_eq!(items, [StreamItem::RedactedReasoning(signed("EmwKAhgB"))]);
}
