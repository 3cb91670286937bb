//! Gemini generateContent: shapes, streaming, routing and errors.

use serde_json::{Value, json};
use test_support::{FakeLlm, ReplyBody, ScriptedReply, ScriptedToolCall, WireFormat};

use crate::support::{Mode, body_text, client, events, send};

const FORMAT: WireFormat = WireFormat::Gemini;

#[tokio::test]
async fn non_streamed_text_has_the_generate_content_shape() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("Sunny today."));

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "weather please").await)
            .unwrap();

    assert_eq!(
        body["candidates"],
        json!([{
            "content": {"role": "model", "parts": [{"text": "Sunny today."}]},
            "finishReason": "STOP",
            "index": 0,
        }])
    );
    assert_eq!(
        body["usageMetadata"],
        json!({"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6})
    );
    assert_eq!(body["modelVersion"], "gemini-test");
}

#[tokio::test]
async fn streamed_function_calls_arrive_whole_and_the_stream_ends_with_the_finish_chunk() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply {
        body: ReplyBody::ToolCalls {
            text: Some("Two lookups coming.".to_owned()),
            calls: vec![
                ScriptedToolCall::new("file_list", r#"{"path": "/shared"}"#),
                ScriptedToolCall::new("web_search", r#"{"query": "rust"}"#),
            ],
        },
        ..ScriptedReply::text("")
    });

    let raw = body_text(&fake, FORMAT, Mode::Stream, "go").await;

    // Gemini frames events with CRLF and has no [DONE] marker.
    assert!(raw.starts_with("data: {"));
    assert!(raw.ends_with("}\r\n\r\n"));
    assert!(!raw.contains("[DONE]"));
    let chunks: Vec<Value> = events(&raw).iter().map(|event| event.json()).collect();
    assert!(
        chunks.len() >= 4,
        "text across several chunks, calls, finish: {chunks:?}"
    );
    let parts = |chunk: &Value| {
        chunk["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .clone()
    };
    let (last, rest) = chunks.split_last().unwrap();
    let text: String = rest
        .iter()
        .flat_map(&parts)
        .filter_map(|part| part["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Two lookups coming.");
    let calls_chunk = &rest[rest.len() - 1];
    assert_eq!(
        parts(calls_chunk),
        [
            json!({"functionCall": {"name": "file_list", "args": {"path": "/shared"}}}),
            json!({"functionCall": {"name": "web_search", "args": {"query": "rust"}}}),
        ]
    );
    assert!(
        rest.iter()
            .all(|chunk| chunk["candidates"][0].get("finishReason").is_none())
    );
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn requests_record_the_model_action_path_and_key_header() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push_all([ScriptedReply::text("one"), ScriptedReply::text("two")]);

    let _ = body_text(&fake, FORMAT, Mode::Complete, "first").await;
    let _ = body_text(&fake, FORMAT, Mode::Stream, "second").await;

    let requests = fake.requests();
    assert_eq!(
        requests[0].path,
        "/v1beta/models/gemini-test:generateContent"
    );
    assert_eq!(
        requests[1].path,
        "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    );
    assert_eq!(requests[1].headers["x-goog-api-key"], "gm-test");
    assert_eq!(
        requests[1].body["contents"][0]["parts"][0]["text"],
        "second"
    );
    assert_eq!(fake.remaining(), 0);
}

#[tokio::test]
async fn streaming_without_alt_sse_is_rejected_without_consuming_a_reply() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("kept"));
    let url = format!(
        "{}/v1beta/models/gemini-test:streamGenerateContent",
        fake.base_url()
    );

    let response = client()
        .post(url)
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(fake.remaining(), 1);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_error_uses_the_google_envelope() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::error(429, "quota exceeded").with_retry_after(12));

    let response = send(&fake, FORMAT, Mode::Stream, "hi").await;

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "12");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": 429, "message": "quota exceeded", "status": "RESOURCE_EXHAUSTED"}})
    );
}
