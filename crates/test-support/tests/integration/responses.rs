//! The OpenAI Responses API: shapes, streaming, chaining and errors.

use serde_json::{Value, json};
use test_support::{FakeLlm, ReplyBody, ScriptedReply, ScriptedToolCall, WireFormat};

use crate::support::{Mode, assert_in_order, body_text, client, events, names, send};

const FORMAT: WireFormat = WireFormat::OpenaiResponses;

#[tokio::test]
async fn non_streamed_text_has_the_response_object_shape() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::text("All good."));

    let body: Value =
        serde_json::from_str(&body_text(&fake, FORMAT, Mode::Complete, "status?").await).unwrap();

    assert_eq!(body["id"], "resp_1");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(
        body["output"],
        json!([{
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "All good.", "annotations": []}],
        }])
    );
    assert_eq!(body["usage"]["input_tokens"], 3);
    assert_eq!(body["usage"]["output_tokens"], 2);
    assert_eq!(body["usage"]["total_tokens"], 5);
}

#[tokio::test]
async fn streamed_tool_calls_emit_typed_events_in_order() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    let arguments = r#"{"path": "/shared"}"#;
    fake.push(ScriptedReply {
        body: ReplyBody::ToolCalls {
            text: Some("Looking.".to_owned()),
            calls: vec![ScriptedToolCall::new("file_list", arguments)],
        },
        ..ScriptedReply::text("")
    });

    let events = events(&body_text(&fake, FORMAT, Mode::Stream, "look").await);

    let names = names(&events);
    assert_in_order(
        &names,
        &[
            "response.created",
            "response.output_item.added",
            "response.output_text.delta",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.output_item.done",
            "response.completed",
        ],
    );
    assert_eq!(names.last(), Some(&"response.completed"));
    assert!(!events.iter().any(|event| event.data == "[DONE]"));
    let payloads: Vec<Value> = events.iter().map(|event| event.json()).collect();
    for (sequence, (payload, name)) in payloads.iter().zip(&names).enumerate() {
        assert_eq!(payload["type"], *name);
        assert_eq!(payload["sequence_number"], sequence);
    }
    let text: String = payloads
        .iter()
        .filter(|p| p["type"] == "response.output_text.delta")
        .map(|p| {
            assert_eq!(p["item_id"], "msg_1");
            assert_eq!(p["output_index"], 0);
            assert_eq!(p["content_index"], 0);
            p["delta"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Looking.");
    let streamed_arguments: String = payloads
        .iter()
        .filter(|p| p["type"] == "response.function_call_arguments.delta")
        .map(|p| {
            assert_eq!(p["item_id"], "fc_1_0");
            assert_eq!(p["output_index"], 1);
            p["delta"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(streamed_arguments, arguments);
    let added_call = payloads
        .iter()
        .find(|p| p["type"] == "response.output_item.added" && p["output_index"] == 1)
        .unwrap();
    assert_eq!(added_call["item"]["type"], "function_call");
    assert_eq!(added_call["item"]["call_id"], "call_1_0");
    assert_eq!(added_call["item"]["name"], "file_list");
    let completed = &payloads.last().unwrap()["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][1]["arguments"], arguments);
    assert!(completed["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn response_ids_increase_and_previous_response_id_is_recorded() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push_all([ScriptedReply::text("one"), ScriptedReply::text("two")]);
    let url = format!("{}/responses", fake.base_url());

    let first: Value = client()
        .post(&url)
        .json(&json!({"model": "m", "input": "first"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chained = json!({
        "model": "m",
        "previous_response_id": first["id"],
        "input": [{"type": "function_call_output", "call_id": "call_1_0", "output": "done"}],
    });
    let second: Value = client()
        .post(&url)
        .json(&chained)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(first["id"], "resp_1");
    assert_eq!(second["id"], "resp_2");
    assert_eq!(second["previous_response_id"], "resp_1");
    assert_eq!(fake.requests()[1].body["previous_response_id"], "resp_1");
}

#[tokio::test]
async fn server_error_uses_the_openai_envelope() {
    let fake = FakeLlm::start(FORMAT).await.unwrap();
    fake.push(ScriptedReply::error(503, "overloaded").with_retry_after(2));

    let response = send(&fake, FORMAT, Mode::Complete, "hi").await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "overloaded");
    assert_eq!(body["error"]["type"], "server_error");
}
