//! Tests of the Gemini wire: request snapshots, schema conversion, ids,
//! normalisation and streaming at every split point.

use super::*;
use crate::stream_test::{assert_every_split_matches, run_stream};
use serde_json::json;
use std::collections::BTreeMap;
use types::{JsonSchema, ModelCatalog, ProviderType, ToolCall};

fn model() -> &'static ModelDescriptor {
    ModelCatalog::pinned()
        .get(ProviderType::Gemini, "gemini-2.5-pro")
        .unwrap()
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall::new(id, name, arguments)
}

/// System text, two calls with their results, tools (one without
/// parameters) and every generation setting.
fn context() -> Context {
    serde_json::from_value(json!({
        "provider": "gemini",
        "model": "gemini-2.5-pro",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Read a and list /tmp"},
            {"role": "assistant", "content": "On it.", "tool_calls": [
                {"id": "gemini_call_3_0", "name": "file_read",
                 "arguments": "{\"path\":\"/shared/a\"}"},
                {"id": "gemini_call_3_1", "name": "file_list",
                 "arguments": "{\"path\":\"/tmp\",\"depth\":2}"}]},
            {"role": "tool", "tool_call_id": "gemini_call_3_0", "content": "alpha"},
            {"role": "tool", "tool_call_id": "gemini_call_3_1", "content": "a.txt\nb.txt"},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [
            {"name": "file_read", "description": "Read a file", "parameters": {
                "type": "object", "required": ["path"], "additionalProperties": false,
                "properties": {"path": {"type": "string"}}}},
            {"name": "file_list", "description": "List a directory", "parameters": {
                "type": "object", "required": ["path"], "additionalProperties": false,
                "properties": {"path": {"type": "string"}, "depth": {"type": "integer",
                    "description": "Levels to descend", "minimum": 0, "maximum": 5}}}},
            {"name": "clock", "description": "The time", "parameters": {"type": "object"}}
        ],
        "settings": {"temperature": 0.3, "top_p": 0.9, "max_output_tokens": 256}
    }))
    .unwrap()
}

fn request(context: &Context, stream: bool) -> Result<(String, Value), ProviderError> {
    let wire = GeminiWire::new();
    let request = wire.request(context, model(), stream)?;
    Ok((request.path, serde_json::to_value(&request.body).unwrap()))
}

#[test]
fn full_history_request() {
    let (path, body) = request(&context(), false).unwrap();
    assert_eq!(path, "/v1beta/models/gemini-2.5-pro:generateContent");
    insta::assert_json_snapshot!(body);
}

#[test]
fn streaming_request_without_tools() {
    let context = Context {
        messages: vec![Message::user("Say hi")],
        tools: Vec::new(),
        settings: Some(Default::default()),
        ..context()
    };
    let (path, body) = request(&context, true).unwrap();
    assert_eq!(
        path,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    insta::assert_json_snapshot!(body);
}

#[test]
fn malformed_tool_arguments_are_wrapped() {
    let calls = vec![
        call("c1", "file_list", r#"{"path":"/tmp""#),
        call("c2", "file_list", "[1, 2]"),
        call("c3", "clock", ""),
    ];
    let mut messages = vec![
        Message::user("go"),
        Message::assistant_tool_calls(None, calls),
    ];
    for id in ["c1", "c2", "c3"] {
        messages.push(Message::tool_result(
            id,
            "Tool execution failed: bad arguments",
        ));
    }
    let context = Context {
        messages,
        ..context()
    };
    insta::assert_json_snapshot!(request(&context, false).unwrap().1["contents"]);
}

#[test]
fn schema_conversion_keeps_gemini_subset() {
    let schema: JsonSchema = serde_json::from_value(json!({
        "type": "object", "description": "Arguments", "required": ["edits"],
        "additionalProperties": false,
        "properties": {
            "edits": {"type": "array", "description": "Edits", "items": {
                "type": "object", "required": ["line"], "additionalProperties": false,
                "properties": {"line": {"type": "integer"}, "text": {"type": "string"},
                               "keep": {"type": "boolean"}}}},
            "mode": {"type": "string", "description": "How", "enum": ["fast", "slow"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            "ratio": {"type": "number"},
            "options": {"type": "object", "additionalProperties": false}
        }
    }))
    .unwrap();
    let expected = json!({
        "type": "OBJECT", "description": "Arguments", "required": ["edits"],
        "properties": {
            "edits": {"type": "ARRAY", "description": "Edits", "items": {
                "type": "OBJECT", "required": ["line"],
                "properties": {"line": {"type": "INTEGER"}, "text": {"type": "STRING"},
                               "keep": {"type": "BOOLEAN"}}}},
            "mode": {"type": "STRING", "description": "How", "format": "enum",
                     "enum": ["fast", "slow"]},
            "limit": {"type": "INTEGER", "minimum": 1, "maximum": 50},
            "ratio": {"type": "NUMBER"},
            "options": {"type": "OBJECT"}
        }
    });
    assert_eq!(
        serde_json::to_value(GeminiSchema::from(&schema)).unwrap(),
        expected
    );
    let no_parameters = JsonSchema::object(BTreeMap::new(), Vec::new());
    assert!(GeminiSchema::parameters(&no_parameters).is_none());
}

#[test]
fn unusable_model_ids_and_orphan_tool_results_are_refused() {
    for id in ["tunedModels/x", "gemini?key=1", "gemini#frag"] {
        let context = Context {
            model: id.into(),
            ..context()
        };
        let err = request(&context, false).unwrap_err();
        assert!(matches!(err, ProviderError::Unsupported(_)), "{err}");
    }
    let mut context = context();
    context
        .messages
        .push(Message::tool_result("gemini_call_9_0", "orphan"));
    let err = request(&context, false).unwrap_err().to_string();
    assert!(err.contains("'gemini_call_9_0' does not answer"), "{err}");
    context.messages.last_mut().unwrap().tool_call_id = None;
    let err = request(&context, false).unwrap_err().to_string();
    assert!(err.contains("no tool_call_id"), "{err}");
}

/// A body in the shape gemini-2.5-pro returns with `includeThoughts` on.
const RESPONSE: &str = r#"{
  "candidates": [{
    "content": {"parts": [
      {"text": "The user wants file a.", "thought": true},
      {"text": "Reading the file "},
      {"text": "now."},
      {"functionCall": {"name": "file_read", "args": {"path": "/shared/a"}},
       "thoughtSignature": "CiQB0e2Kb7xq"},
      {"functionCall": {"name": "file_list", "args": {"path": "/tmp", "depth": 1}}}
    ], "role": "model"},
    "finishReason": "STOP", "index": 0
  }],
  "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 18,
    "totalTokenCount": 180, "cachedContentTokenCount": 64, "thoughtsTokenCount": 42,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 120}]},
  "modelVersion": "gemini-2.5-pro",
  "responseId": "mT3aaN7qAbCdpgfP4pXQBA"
}"#;

fn parse(context: &Context, body: &str) -> Result<Response, ProviderError> {
    GeminiWire::new().parse_response(context, &Bytes::copy_from_slice(body.as_bytes()))
}

fn signature(model: &str, value: &str) -> Signature {
    Signature {
        model: model.into(),
        value: value.into(),
    }
}

#[test]
fn normalises_a_recorded_response() {
    let response = parse(&context(), RESPONSE).unwrap();
    let calls = vec![
        // Of parallel calls only the first is signed.
        ToolCall {
            signature: Some(signature("gemini-2.5-pro", "CiQB0e2Kb7xq")),
            ..call("gemini_call_7_0", "file_read", r#"{"path":"/shared/a"}"#)
        },
        call(
            "gemini_call_7_1",
            "file_list",
            r#"{"depth":1,"path":"/tmp"}"#,
        ),
    ];
    let text = Some("Reading the file now.".to_owned());
    assert_eq!(response.message, Message::assistant_tool_calls(text, calls));
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    let usage = UsageUpdate {
        total_tokens: 180,
        cached_input_tokens: Some(64),
        reasoning_tokens: Some(42),
        // 18 candidate tokens plus 42 thinking tokens.
        ..UsageUpdate::new(120, 60)
    };
    assert_eq!(response.usage, Some(usage));
}

#[test]
fn generated_ids_are_stable_and_map_back_to_names() {
    let first = parse(&context(), RESPONSE).unwrap();
    assert_eq!(first, parse(&context(), RESPONSE).unwrap());
    let ids: Vec<_> = first
        .message
        .tool_calls
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let mut next = context();
    next.messages.push(first.message);
    // Answered out of order: the name is found by id, not by position.
    next.messages.push(Message::tool_result(&ids[1], "a.txt"));
    next.messages.push(Message::tool_result(&ids[0], "alpha"));
    let (_, body) = request(&next, false).unwrap();
    let parts = &body["contents"][4]["parts"];
    assert_eq!(parts[0]["functionResponse"]["name"], "file_list");
    assert_eq!(parts[1]["functionResponse"]["name"], "file_read");
    // The next answer's ids cannot collide with the previous ones.
    let later = parse(&next, RESPONSE).unwrap();
    assert_eq!(later.message.tool_calls[0].id, "gemini_call_10_0");
}

/// Gemini 3 rejects a function call of the current turn that comes back
/// without its `thoughtSignature`; the signature goes back on the same
/// part, and only to the model that issued it.
#[test]
fn thought_signatures_go_back_on_their_function_call_to_their_model() {
    let mut context = context();
    let first = parse(&context, RESPONSE).unwrap();
    context.messages.push(first.message.clone());
    context
        .messages
        .push(Message::tool_result("gemini_call_7_0", "alpha"));
    context
        .messages
        .push(Message::tool_result("gemini_call_7_1", "a.txt"));
    let last_model_parts = |body: &Value| {
        let contents = body["contents"].as_array().unwrap();
        let model = contents
            .iter()
            .rev()
            .find(|c| c["role"] == "model")
            .unwrap();
        model["parts"].clone()
    };
    let (_, body) = request(&context, false).unwrap();
    let parts = last_model_parts(&body);
    assert_eq!(parts[0], json!({"text": "Reading the file now."}));
    assert_eq!(
        parts[1],
        json!({"functionCall": {"name": "file_read", "args": {"path": "/shared/a"}},
               "thoughtSignature": "CiQB0e2Kb7xq"})
    );
    assert_eq!(
        parts[2],
        json!({"functionCall": {"name": "file_list", "args": {"depth": 1, "path": "/tmp"}}})
    );
    // Reasoning summaries are never sent back.
    assert!(
        !body.to_string().contains("The user wants file a."),
        "{body}"
    );

    // After a switch to another model the old signature would not verify.
    context.model = "gemini-2.5-flash".into();
    let (_, body) = request(&context, false).unwrap();
    let parts = last_model_parts(&body);
    assert!(parts[1].get("thoughtSignature").is_none(), "{body}");
}

#[test]
fn finish_reasons() {
    assert_eq!(finish_reason("STOP"), FinishReason::Stop);
    assert_eq!(finish_reason("MAX_TOKENS"), FinishReason::Length);
    for filtered in [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
    ] {
        assert_eq!(finish_reason(filtered), FinishReason::ContentFilter);
    }
    let other = finish_reason("MALFORMED_FUNCTION_CALL");
    assert_eq!(other, FinishReason::Other("MALFORMED_FUNCTION_CALL".into()));
    let text_only = r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]},
        "finishReason": "MAX_TOKENS"}]}"#;
    let response = parse(&context(), text_only).unwrap();
    assert_eq!(response.finish_reason, Some(FinishReason::Length));
}

#[test]
fn blocked_prompt_is_a_content_filter_response() {
    let body = r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-pro"}"#;
    let response = parse(&context(), body).unwrap();
    assert_eq!(
        response.message,
        Message::assistant_tool_calls(None, Vec::new())
    );
    assert_eq!(response.finish_reason, Some(FinishReason::ContentFilter));
    assert_eq!(response.usage, Some(UsageUpdate::new(9, 0)));
}

#[test]
fn error_bodies_are_errors() {
    let quota = r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Resource has been exhausted (e.g. check quota)."}}"#;
    let err = parse(&context(), quota).unwrap_err();
    assert!(matches!(err, ProviderError::RateLimited { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("RESOURCE_EXHAUSTED: Resource has been exhausted")
    );
    let err = parse(&context(), r#"{"error": {"message": "odd"}}"#).unwrap_err();
    assert_eq!(
        err,
        ProviderError::ResponseParse("gemini error: odd".into())
    );
    let err = parse(&context(), r#"{"modelVersion": "gemini-2.5-pro"}"#).unwrap_err();
    assert!(err.to_string().contains("no candidate content"), "{err}");
}

/// A `streamGenerateContent?alt=sse` answer in Gemini's shape: a thought,
/// text split inside a sentence, two calls in one chunk (the first with a
/// `thoughtSignature`), and cumulative usage repeated in every chunk.
const STREAM: &str = concat!(
    r#"data: {"candidates": [{"content": {"parts": [{"text": "Greet, then look.","thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 31,"totalTokenCount": 37,"thoughtsTokenCount": 6},"modelVersion": "gemini-2.5-pro","responseId": "r1"}"#,
    "\r\n\r\n",
    r#"data: {"candidates": [{"content": {"parts": [{"text": "héllo "}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 31,"candidatesTokenCount": 2,"totalTokenCount": 39,"thoughtsTokenCount": 6},"modelVersion": "gemini-2.5-pro","responseId": "r1"}"#,
    "\r\n\r\n",
    r#"data: {"candidates": [{"content": {"parts": [{"text": "👋 世界"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 31,"candidatesTokenCount": 5,"totalTokenCount": 42,"thoughtsTokenCount": 6},"modelVersion": "gemini-2.5-pro","responseId": "r1"}"#,
    "\r\n\r\n",
    r#"data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "file_read","args": {"path": "/shared/a"}},"thoughtSignature": "Cp0GAePx/16Pq+7w=="},{"functionCall": {"name": "file_list","args": {"path": "/tmp"}}}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 31,"candidatesTokenCount": 40,"totalTokenCount": 77,"thoughtsTokenCount": 6},"modelVersion": "gemini-2.5-pro","responseId": "r1"}"#,
    "\r\n\r\n",
    r#"data: {"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 31,"candidatesTokenCount": 40,"totalTokenCount": 77,"thoughtsTokenCount": 6},"modelVersion": "gemini-2.5-pro","responseId": "r1"}"#,
    "\r\n\r\n",
);

fn run(pieces: &[&[u8]]) -> (Vec<StreamItem>, bool) {
    run_stream(GeminiWire::new().stream_parser(&context()), pieces)
}

#[test]
fn stream_collects_text_calls_and_usage_once() {
    let (items, done) = run(&[STREAM.as_bytes()]);
    assert!(done);
    let mut collector = StreamCollector::new();
    items.into_iter().for_each(|item| collector.push(item));
    assert_eq!(collector.reasoning(), "Greet, then look.");
    let response = collector.finish().unwrap();
    let calls = vec![
        ToolCall {
            signature: Some(signature("gemini-2.5-pro", "Cp0GAePx/16Pq+7w==")),
            ..call("gemini_call_7_0", "file_read", r#"{"path":"/shared/a"}"#)
        },
        call("gemini_call_7_1", "file_list", r#"{"path":"/tmp"}"#),
    ];
    let text = Some("héllo 👋 世界".to_owned());
    assert_eq!(response.message, Message::assistant_tool_calls(text, calls));
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    // Only the last chunk's cumulative count, not the sum of all chunks.
    let usage = UsageUpdate {
        total_tokens: 77,
        reasoning_tokens: Some(6),
        // 40 candidate tokens plus 6 thinking tokens.
        ..UsageUpdate::new(31, 46)
    };
    assert_eq!(response.usage, Some(usage));
}

#[test]
fn stream_items_are_identical_at_every_split_point() {
    assert_every_split_matches(STREAM, run);
}

fn on_data(data: &str) -> Result<StreamStep, ProviderError> {
    let event = SseEvent {
        data: data.into(),
        ..SseEvent::default()
    };
    let mut parser = GeminiWire::new().stream_parser(&context());
    parser.on_event(event, &mut Vec::new())
}

#[test]
fn error_chunk_ends_the_stream_with_its_message() {
    let err = on_data(
        r#"{"error": {"code": 503, "status": "UNAVAILABLE",
            "message": "The model is overloaded. Please try again later."}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("The model is overloaded"), "{err}");
    assert!(err.is_retriable());
}

#[test]
fn unparseable_chunk_is_an_error() {
    let err = on_data(r#"{"candidates": ["#).unwrap_err();
    assert!(matches!(err, ProviderError::ResponseParse(_)), "{err}");
}
