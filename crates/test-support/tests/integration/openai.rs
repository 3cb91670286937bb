//! OpenAI chat completions: shapes, streaming, recording and errors.

use serde_json::{Value, json};
use test_support::{FakeLlm, ScriptedReply, ScriptedToolCall, WireFormat};

use crate::support::{Mode, body_text, client, events, send};

const FORMAT: WireFormat = WireFormat::Openai;

#[tokio::test]
async fn non_streamed_text_has_the_chat_completion_shape() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("Hello there, friend."));

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "hi you").await).unwrap();

    assert_eq!(body["id"], "chatcmpl-1");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-test");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello there, friend.");
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    // "Be brief." + "hi you" in, three words out.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );
}

#[tokio::test]
async fn non_streamed_tool_calls_carry_raw_arguments() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
        "file_list",
        "{\"path\": ",
    )]));

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "list").await).unwrap();

    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "call_1_0", "type": "function", "function": {"name": "file_list", "arguments": "{\"path\": "}}])
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn streamed_tool_calls_interleave_and_reassemble() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    let first = r#"{"path": "/shared/notes"}"#;
    let second = r#"{"query": "weather in Zürich"}"#;
    fake.push(ScriptedReply {
        body: test_support::ReplyBody::ToolCalls {
            text: Some("Checking two things.".to_owned()),
            calls: vec![
                ScriptedToolCall::new("file_list", first),
                ScriptedToolCall::new("web_search", second),
            ],
        },
        ..ScriptedReply::text("")
    });

    let events = events(&body_text(&fake, FORMAT, Mode::Stream, "go").await);

    assert!(events.iter().all(|event| event.name.is_none()));
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|event| event.json())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["object"] == "chat.completion.chunk" && chunk["id"] == "chatcmpl-1")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    let mut text = String::new();
    let mut names = [String::new(), String::new()];
    let mut arguments = [String::new(), String::new()];
    let mut fragment_order = Vec::new();
    for chunk in &chunks {
        let Some(delta) = chunk["choices"].get(0).map(|choice| &choice["delta"]) else {
            continue;
        };
        if let Some(piece) = delta["content"].as_str() {
            text.push_str(piece);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(name) = call["function"]["name"].as_str() {
                assert_eq!(call["id"], format!("call_1_{index}"));
                names[index] = name.to_owned();
            } else {
                fragment_order.push(index);
            }
            arguments[index].push_str(call["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(text, "Checking two things.");
    assert_eq!(names, ["file_list", "web_search"]);
    assert_eq!(arguments, [first, second]);
    // Fragments alternate between the two calls while both have some left.
    assert_eq!(&fragment_order[..4], &[0, 1, 0, 1]);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn usage_chunk_is_sent_only_when_asked_for() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("short"));
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = client()
        .post(format!("{}/chat/completions", fake.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();

    let events = events(&response.text().await.unwrap());

    assert_eq!(events.len(), 4, "role, text, finish, [DONE]: {events:?}");
    assert!(
        events[..3]
            .iter()
            .all(|event| event.json().get("usage").is_none())
    );
}

#[tokio::test]
async fn requests_are_recorded_with_lowercase_headers() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("ok"));
    let (_, sent) = crate::support::generation_request(&fake, FORMAT, Mode::Stream, "record me");

    let _ = body_text(&fake, FORMAT, Mode::Stream, "record me").await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body, sent);
    assert_eq!(request.headers["authorization"], "Bearer sk-test");
    assert_eq!(request.headers["content-type"], "application/json");
}

#[tokio::test]
async fn rate_limit_error_carries_envelope_and_retry_after() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::error(429, "slow down").with_retry_after(7));

    let response = send(&fake, FORMAT, Mode::Stream, "hi").await;

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "slow down");
    assert_eq!(body["error"]["code"], Value::Null);
    assert!(body["error"]["type"].is_string());
}
