//! Script behaviour shared by every format: order, exhaustion, echo,
//! unknown routes, shutdown and the script file's JSON shape.

use serde_json::{Value, json};
use test_support::{
    Chunking, FakeLlm, Fault, ReplyBody, Script, ScriptedReply, WhenExhausted, WireFormat,
};

use crate::support::{ALL_FORMATS, Mode, body_text, client, send};

#[tokio::test]
async fn an_exhausted_script_answers_500_in_the_format_envelope() {
    for format in ALL_FORMATS {
        let fake = FakeLlm::start(format).await.unwrap();

        let response = send(&fake, format, Mode::Stream, "anyone?").await;

        assert_eq!(response.status(), 500, "{format:?}");
        let body: Value = response.json().await.unwrap();
        let message = match format {
            WireFormat::Openai | WireFormat::OpenaiResponses | WireFormat::Gemini => {
                &body["error"]["message"]
            }
            WireFormat::Anthropic => {
                assert_eq!(body["type"], "error");
                assert_eq!(body["error"]["type"], "api_error");
                &body["error"]["message"]
            }
        };
        assert_eq!(message, "fake LLM script exhausted", "{format:?}");
        assert_eq!(
            fake.requests().len(),
            1,
            "exhausted requests are recorded too"
        );
    }
}

#[tokio::test]
async fn echo_mode_answers_with_the_last_user_text() {
    for format in ALL_FORMATS {
        let fake = FakeLlm::start_script(Script {
            format,
            when_exhausted: WhenExhausted::Echo,
            replies: vec![ScriptedReply::text("scripted first")],
        })
        .await
        .unwrap();

        let first = body_text(&fake, format, Mode::Complete, "hello").await;
        let echoed = body_text(&fake, format, Mode::Complete, "what is up").await;
        let streamed = body_text(&fake, format, Mode::Stream, "again").await;

        assert!(first.contains("scripted first"), "{format:?}: {first}");
        assert!(
            echoed.contains("You said: what is up"),
            "{format:?}: {echoed}"
        );
        assert!(streamed.contains("said:"), "{format:?}: {streamed}");
        assert!(streamed.contains("again"), "{format:?}: {streamed}");
    }
}

#[tokio::test]
async fn echo_skips_tool_results_and_reads_text_parts() {
    let fake = FakeLlm::start_script(Script {
        format: WireFormat::Anthropic,
        when_exhausted: WhenExhausted::Echo,
        replies: Vec::new(),
    })
    .await
    .unwrap();
    let body = json!({
        "model": "claude-test",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "list my files"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "file_list", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}]},
        ],
    });

    let answer: Value = client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(answer["content"][0]["text"], "You said: list my files");
}

#[tokio::test]
async fn unknown_routes_get_a_404_envelope_and_consume_nothing() {
    for format in ALL_FORMATS {
        let fake = FakeLlm::start(format).await.unwrap();
        fake.push(ScriptedReply::text("kept"));

        let missing = client()
            .post(format!("{}/nope?x=1", fake.base_url()))
            .body("not json")
            .send()
            .await
            .unwrap();
        let status = missing.status();
        let body: Value = missing.json().await.unwrap();

        assert_eq!(status, 404, "{format:?}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("/nope"),
            "{format:?}: {body}"
        );
        assert_eq!(fake.remaining(), 1);
        let recorded = &fake.requests()[0];
        assert!(recorded.path.ends_with("/nope?x=1"), "{}", recorded.path);
        assert_eq!(recorded.body, Value::Null);
    }
}

#[tokio::test]
async fn the_wrong_method_on_an_endpoint_is_refused() {
    let fake = FakeLlm::start(WireFormat::Openai).await.unwrap();
    fake.push(ScriptedReply::text("kept"));

    let response = client()
        .get(format!("{}/chat/completions", fake.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 405);
    assert_eq!(fake.remaining(), 1);
    assert_eq!(fake.requests()[0].method, "GET");
}

#[tokio::test]
async fn replies_are_consumed_in_order_and_counted() {
    let fake = FakeLlm::start(WireFormat::Openai).await.unwrap();
    fake.push_all([
        ScriptedReply::text("first"),
        ScriptedReply::error(400, "second"),
    ]);
    fake.push(ScriptedReply::text("third"));
    assert_eq!(fake.remaining(), 3);

    let first = send(&fake, WireFormat::Openai, Mode::Complete, "a").await;
    let second = send(&fake, WireFormat::Openai, Mode::Complete, "b").await;
    let third = body_text(&fake, WireFormat::Openai, Mode::Stream, "c").await;

    assert_eq!(first.status(), 200);
    assert!(first.text().await.unwrap().contains("first"));
    assert_eq!(second.status(), 400);
    assert!(third.contains("third"));
    assert!(
        third.contains("chatcmpl-3"),
        "ids number the generation requests"
    );
    assert_eq!(fake.remaining(), 0);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_dropped_server_answers_no_more_requests() {
    let fake = FakeLlm::start(WireFormat::Openai).await.unwrap();
    let url = format!("{}/chat/completions", fake.base_url());

    drop(fake);
    let response = client()
        .post(url)
        .json(&json!({"messages": []}))
        .send()
        .await;

    assert!(response.is_err(), "{response:?}");
}

#[test]
fn the_example_script_parses() {
    let script: Script =
        serde_json::from_str(include_str!("../../examples/conversation.json")).unwrap();

    assert_eq!(script.format, WireFormat::Openai);
    assert_eq!(script.when_exhausted, WhenExhausted::Echo);
    assert_eq!(script.replies.len(), 3);
    let ReplyBody::ToolCalls { calls, .. } = &script.replies[1].body else {
        panic!("the second reply is a tool call: {:?}", script.replies[1]);
    };
    assert_eq!(calls[0].name, "file_list");
    let arguments: Value = serde_json::from_str(&calls[0].arguments).unwrap();
    assert_eq!(arguments, json!({"path": "/shared"}));
}

#[test]
fn script_json_names_every_option() {
    let script: Script = serde_json::from_value(json!({
        "format": "openai_responses",
        "replies": [
            {"kind": "text", "text": "hi"},
            {
                "kind": "error",
                "status": 429,
                "message": "slow",
                "retry_after_secs": 3,
                "chunking": {"mode": "bytes", "value": 1},
                "delay_ms": 5,
                "chunk_delay_ms": 2,
                "fault": {"fault": "cut_after_bytes", "value": 10},
            },
            {"kind": "tool_calls", "calls": [{"name": "t", "arguments": "{"}], "chunking": {"mode": "split_at", "value": [1, 2]}, "fault": {"fault": "never_end"}},
        ],
    }))
    .unwrap();

    assert_eq!(script.format, WireFormat::OpenaiResponses);
    assert_eq!(script.when_exhausted, WhenExhausted::Error);
    let [text, error, calls] = script.replies.as_slice() else {
        panic!("three replies: {script:?}");
    };
    assert!(matches!(&text.body, ReplyBody::Text { text } if text == "hi"));
    assert!(matches!(text.chunking, Chunking::PerEvent));
    assert!(matches!(
        error.body,
        ReplyBody::Error {
            status: 429,
            retry_after_secs: Some(3),
            ..
        }
    ));
    assert!(matches!(error.chunking, Chunking::Bytes(1)));
    assert_eq!((error.delay_ms, error.chunk_delay_ms), (5, 2));
    assert!(matches!(error.fault, Some(Fault::CutAfterBytes(10))));
    assert!(
        matches!(&calls.body, ReplyBody::ToolCalls { text: None, calls } if calls[0].arguments == "{")
    );
    assert!(matches!(&calls.chunking, Chunking::SplitAt(offsets) if offsets == &[1, 2]));
    assert!(matches!(calls.fault, Some(Fault::NeverEnd)));

    // What is written back reads the same.
    let again: Script = serde_json::from_str(&serde_json::to_string(&script).unwrap()).unwrap();
    assert_eq!(format!("{again:?}"), format!("{script:?}"));
}
