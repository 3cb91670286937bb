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

#[tokio::test]
async fn thoughts_signatures_and_cache_reads_are_rendered() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(
        ScriptedReply::tool_calls(vec![
            ScriptedToolCall::new("file_list", r#"{"path": "/shared"}"#).with_signature("c2lnLTE="),
            ScriptedToolCall::new("web_search", r#"{"query": "rust"}"#),
        ])
        .with_reasoning("Look first.")
        .with_cache(100, 7),
    );

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "go").await).unwrap();

    let parts = &body["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0], json!({"text": "Look first.", "thought": true}));
    assert_eq!(parts[1]["thoughtSignature"], "c2lnLTE=");
    assert_eq!(parts[2].get("thoughtSignature"), None);
    // Reads count inside the prompt; Gemini reports no writes.
    assert_eq!(
        body["usageMetadata"],
        json!({"promptTokenCount": 103, "candidatesTokenCount": 6,
               "totalTokenCount": 109, "cachedContentTokenCount": 100})
    );
}

/// The fake holds Gemini 3 models to their rule, so a client that drops a
/// signature fails against it as it would against the real API.
#[tokio::test]
async fn gemini_3_refuses_an_unsigned_call_in_the_current_turn_only() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push_all([ScriptedReply::text("ok"), ScriptedReply::text("ok")]);
    let url = format!(
        "{}/v1beta/models/gemini-3-pro-preview:generateContent",
        fake.base_url()
    );
    let call = json!({"functionCall": {"name": "file_list", "args": {}}});
    let result = json!({"functionResponse": {"name": "file_list", "response": {"content": "a"}}});
    let turn = |signed: bool| {
        let mut call = call.clone();
        if signed {
            call["thoughtSignature"] = json!("c2ln");
        }
        json!({"contents": [
            {"role": "user", "parts": [{"text": "list"}]},
            {"role": "model", "parts": [call]},
            {"role": "user", "parts": [result]},
        ]})
    };

    let refused = client().post(&url).json(&turn(false)).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("missing a thought_signature"), "{message}");
    assert!(message.contains("default_api:file_list"), "{message}");
    assert_eq!(fake.remaining(), 2);

    let accepted = client().post(&url).json(&turn(true)).send().await.unwrap();
    assert_eq!(accepted.status(), 200);

    // An earlier turn's unsigned call is not checked.
    let mut earlier = turn(false);
    earlier["contents"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "parts": [{"text": "thanks"}]}));
    let accepted = client().post(&url).json(&earlier).send().await.unwrap();
    assert_eq!(accepted.status(), 200);
}
