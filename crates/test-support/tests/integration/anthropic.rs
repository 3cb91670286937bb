//! Anthropic messages: shapes, streaming, recording and errors.

use serde_json::{Value, json};
use test_support::{FakeLlm, ScriptedReply, ScriptedToolCall, WireFormat};

use crate::support::{Mode, assert_in_order, body_text, events, names, send};

const FORMAT: WireFormat = WireFormat::Anthropic;

#[tokio::test]
async fn non_streamed_text_has_the_message_shape() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("Hi, human."));

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "hello").await).unwrap();

    assert_eq!(body["id"], "msg_1");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-test");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "Hi, human."}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 3, "output_tokens": 2})
    );
}

#[tokio::test]
async fn non_streamed_tool_use_parses_arguments_or_keeps_them_raw() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::tool_calls(vec![
        ScriptedToolCall::new("file_list", r#"{"path": "/shared"}"#),
        ScriptedToolCall::new("broken", r#"{"path": "#),
    ]));

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "go").await).unwrap();

    assert_eq!(
        body["content"],
        json!([
            {"type": "tool_use", "id": "toolu_1_0", "name": "file_list", "input": {"path": "/shared"}},
            {"type": "tool_use", "id": "toolu_1_1", "name": "broken", "input": {"_raw": "{\"path\": "}},
        ])
    );
    assert_eq!(body["stop_reason"], "tool_use");
}

#[tokio::test]
async fn streamed_tool_use_emits_events_in_order() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    let arguments = r#"{"path": "/shared", "depth": 2}"#;
    fake.push(ScriptedReply {
        body: test_support::ReplyBody::ToolCalls {
            text: Some("Let me see.".to_owned()),
            calls: vec![ScriptedToolCall::new("file_list", arguments)],
        },
        ..ScriptedReply::text("")
    });

    let events = events(&body_text(&fake, FORMAT, Mode::Stream, "files?").await);

    let names = names(&events);
    assert_in_order(
        &names,
        &[
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ],
    );
    assert_eq!(names.last(), Some(&"message_stop"));
    let payloads: Vec<Value> = events.iter().map(|event| event.json()).collect();
    for (payload, name) in payloads.iter().zip(&names) {
        assert_eq!(payload["type"], *name);
    }
    assert_eq!(payloads[0]["message"]["id"], "msg_1");
    assert_eq!(payloads[0]["message"]["usage"]["input_tokens"], 3);
    let tool_start = payloads
        .iter()
        .find(|p| p["type"] == "content_block_start" && p["index"] == 1)
        .unwrap();
    assert_eq!(
        tool_start["content_block"],
        json!({"type": "tool_use", "id": "toolu_1_0", "name": "file_list", "input": {}})
    );
    let deltas = |index: u64, kind: &str, field: &str| -> String {
        payloads
            .iter()
            .filter(|p| p["type"] == "content_block_delta" && p["index"] == index)
            .map(|p| {
                assert_eq!(p["delta"]["type"], kind);
                p["delta"][field].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(deltas(0, "text_delta", "text"), "Let me see.");
    assert_eq!(deltas(1, "input_json_delta", "partial_json"), arguments);
    let message_delta = &payloads[payloads.len() - 2];
    assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");
    assert!(message_delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn requests_are_recorded_with_the_anthropic_headers() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("ok"));

    let _ = body_text(&fake, FORMAT, Mode::Complete, "record").await;

    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], "sk-ant-test");
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert_eq!(request.body["system"], "Be brief.");
    assert_eq!(request.body["max_tokens"], 1024);
}

#[tokio::test]
async fn errors_use_the_anthropic_envelope_and_types() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push_all([
        ScriptedReply::error(429, "too many").with_retry_after(30),
        ScriptedReply::error(401, "bad key"),
        ScriptedReply::error(529, "overloaded"),
    ]);

    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = send(&fake, FORMAT, Mode::Stream, "hi").await;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        seen.push((
            status,
            retry_after,
            body["error"]["type"].clone(),
            body["error"]["message"].clone(),
        ));
    }

    assert_eq!(
        seen,
        [
            (
                429,
                Some("30".to_owned()),
                json!("rate_limit_error"),
                json!("too many")
            ),
            (401, None, json!("authentication_error"), json!("bad key")),
            (529, None, json!("overloaded_error"), json!("overloaded")),
        ]
    );
}

#[tokio::test]
async fn signed_thinking_and_cache_counts_are_rendered() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(
        ScriptedReply::text("Done.")
            .with_signed_reasoning("Think first.", "EqQBCgIY")
            .with_cache(900, 40),
    );
    fake.push(
        ScriptedReply::text("Done.")
            .with_signed_reasoning("Think first.", "EqQBCgIY")
            .with_cache(900, 40),
    );

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "go").await).unwrap();
    assert_eq!(
        body["content"][0],
        json!({"type": "thinking", "thinking": "Think first.", "signature": "EqQBCgIY"})
    );
    // Anthropic's input_tokens leaves the cached tokens out.
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 3, "output_tokens": 1,
               "cache_creation_input_tokens": 40, "cache_read_input_tokens": 900})
    );

    let events = events(&body_text(&fake, FORMAT, Mode::Stream, "go").await);
    let data: Vec<Value> = events.iter().map(|event| event.json()).collect();
    assert_eq!(data[0]["message"]["usage"]["cache_read_input_tokens"], 900);
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    let signature = data
        .iter()
        .find(|d| d["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(signature["index"], 0);
    assert_eq!(signature["delta"]["signature"], "EqQBCgIY");
    let delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["usage"]["cache_creation_input_tokens"], 40);
}

/// Like the real API, the fake refuses more than four cache breakpoints.
#[tokio::test]
async fn more_than_four_cache_breakpoints_are_refused() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("ok"));
    let marked =
        |text: &str| json!({"type": "text", "text": text, "cache_control": {"type": "ephemeral"}});
    let body = json!({
        "model": "claude-test", "max_tokens": 10,
        "system": [marked("a"), marked("b")],
        "messages": [{"role": "user", "content": [marked("c"), marked("d"), marked("e")]}],
    });
    let response = crate::support::client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Found 5"),
        "{error}"
    );
    assert_eq!(fake.remaining(), 1);
}
