//! What vendors require back survives the round trip, against the fake
//! servers over real HTTP and SSE: Gemini's thought signatures (also
//! through storage), Anthropic's signed thinking, Anthropic's prompt-cache
//! breakpoints, and cache usage normalised and priced.

use std::collections::BTreeMap;
use std::sync::Arc;

use provider::{build_provider, collect_stream};
use serde_json::{Value, json};
use test_support::{FakeLlm, ScriptedReply, ScriptedToolCall, WireFormat};
use types::config::ProviderEntry;
use types::{
    Context, FunctionDecl, JsonSchema, Message, ModelCatalog, ModelDescriptor, Provider,
    ProviderError, ProviderType, ReasoningBlock, SecretString, Signature,
};

/// A Gemini 3 model: the fake holds it to Gemini 3's signature rule.
const GEMINI_3: &str = "gemini-3-pro-preview";
const CLAUDE: &str = "claude-sonnet-4-5-20250929";

/// The pinned catalog plus `GEMINI_3`, declared as an operator would.
fn catalog() -> ModelCatalog {
    let pinned = ModelCatalog::pinned();
    let gemini_3 = ModelDescriptor {
        id: GEMINI_3.into(),
        display_name: "Gemini 3 Pro (preview)".into(),
        ..pinned
            .get(ProviderType::Gemini, "gemini-2.5-pro")
            .unwrap()
            .clone()
    };
    pinned.with_extra_models([gemini_3]).unwrap()
}

fn provider_for(server: &FakeLlm, kind: ProviderType) -> Arc<dyn Provider> {
    let entry = ProviderEntry {
        base_url: Some(server.base_url()),
        ..ProviderEntry::new(kind)
    };
    build_provider("test", &entry, &catalog(), Some(&SecretString::new("k"))).unwrap()
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

fn context(model: &str, messages: Vec<Message>) -> Context {
    Context {
        provider: "test".into(),
        model: model.into(),
        messages,
        tools: vec![tool("file_read"), tool("file_list")],
        settings: None,
    }
}

/// The parts of the last `model` content of a Gemini request body.
fn last_model_parts(body: &Value) -> Vec<Value> {
    let contents = body["contents"].as_array().unwrap();
    let content = contents
        .iter()
        .rev()
        .find(|c| c["role"] == "model")
        .unwrap();
    content["parts"].as_array().unwrap().clone()
}

/// Gemini 3 rejects tool turns whose function calls come back without
/// their `thoughtSignature`. The signature streamed on a call is kept on
/// its `ToolCall`, survives storage as JSON, and goes back on the same
/// part; dropping it gets the 400 the real API gives.
#[tokio::test]
async fn gemini_thought_signature_round_trips_with_its_function_call() {
    let server = FakeLlm::start(WireFormat::Gemini).await.unwrap();
    server.push_all([
        ScriptedReply::tool_calls(vec![
            ScriptedToolCall::new("file_read", r#"{"path": "/shared/a"}"#)
                .with_signature("CiQB0e2Kb8Tz/Sig=="),
            // Of parallel calls only the first is signed.
            ScriptedToolCall::new("file_read", r#"{"path": "/shared/b"}"#),
        ])
        .with_reasoning("Read both files."),
        ScriptedReply::text("Both read."),
        ScriptedReply::text("Still fine."),
    ]);
    let provider = provider_for(&server, ProviderType::Gemini);
    let mut ctx = context(
        GEMINI_3,
        vec![Message::system("Be brief."), Message::user("read a and b")],
    );

    let answer = collect_stream(provider.stream(&ctx, 8).await.unwrap())
        .await
        .unwrap();
    let calls = &answer.message.tool_calls;
    assert_eq!(
        calls[0].signature,
        Some(Signature {
            model: GEMINI_3.into(),
            value: "CiQB0e2Kb8Tz/Sig==".into(),
        })
    );
    assert_eq!(calls[1].signature, None);
    // Gemini's thought summaries are shown, never kept.
    assert!(answer.message.reasoning.is_empty());
    let results = calls
        .iter()
        .map(|call| Message::tool_result(&call.id, "contents"))
        .collect::<Vec<_>>();
    ctx.messages.push(answer.message.clone());
    ctx.messages.extend(results);

    // The fake refuses this request (like Gemini 3) if the signature is
    // missing from the first call.
    let reply = collect_stream(provider.stream(&ctx, 8).await.unwrap())
        .await
        .unwrap();
    assert_eq!(reply.message.content.as_deref(), Some("Both read."));
    let sent = &server.requests()[1].body;
    let parts = last_model_parts(sent);
    assert_eq!(
        parts[0],
        json!({"functionCall": {"name": "file_read", "args": {"path": "/shared/a"}},
               "thoughtSignature": "CiQB0e2Kb8Tz/Sig=="})
    );
    assert_eq!(parts[1].get("thoughtSignature"), None);
    assert!(!sent.to_string().contains("Read both files."), "{sent}");

    // The runtime stores messages as JSON; restored, they send the same.
    let stored = serde_json::to_string(&ctx.messages).unwrap();
    ctx.messages = serde_json::from_str(&stored).unwrap();
    let again = provider.complete(&ctx).await.unwrap();
    assert_eq!(again.message.content.as_deref(), Some("Still fine."));
    assert_eq!(server.requests()[2].body["contents"], sent["contents"]);

    // Without the signature, the request is refused.
    ctx.messages[2].tool_calls[0].signature = None;
    let refused = provider.complete(&ctx).await.unwrap_err();
    assert!(
        matches!(&refused, ProviderError::HttpStatus { status: 400, message }
            if message.contains("thought_signature")),
        "{refused:?}"
    );
}

/// An Anthropic tool loop: the request carries the four documented cache
/// breakpoints (last tool, system prompt, the user message before the
/// last, the last message), the signed thinking goes back before its
/// tool call, and the cache counts of both answers are normalised and
/// priced without counting any token twice.
#[tokio::test]
async fn anthropic_tool_loop_keeps_thinking_and_caches_its_prefix() {
    let server = FakeLlm::start(WireFormat::Anthropic).await.unwrap();
    server.push_all([
        ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
            "file_read",
            r#"{"path": "/shared/a"}"#,
        )])
        .with_signed_reasoning("Need the file first.", "EqQBCgIYAhIMsig")
        .with_cache(0, 3_000),
        ScriptedReply::text("It says alpha.").with_cache(3_000, 40),
    ]);
    let provider = provider_for(&server, ProviderType::Anthropic);
    let mut ctx = context(
        CLAUDE,
        vec![
            Message::system("You are terse."),
            Message::system("Relevant context from memory:\n- a is small"),
            Message::user("What is in a?"),
        ],
    );

    // Streamed: message_start and message_delta both carry the cache
    // counts (running totals), which must be counted once.
    let first = collect_stream(provider.stream(&ctx, 8).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        first.message.reasoning,
        [ReasoningBlock::Thinking {
            text: "Need the file first.".into(),
            signature: Signature {
                model: CLAUDE.into(),
                value: "EqQBCgIYAhIMsig".into(),
            },
        }]
    );
    let usage = first.usage.unwrap();
    assert_eq!(usage.cache_write_input_tokens, Some(3_000));
    assert_eq!(usage.cached_input_tokens, Some(0));
    let plain = usage.input_tokens - 3_000;
    assert!(plain > 0, "{usage:?}");

    let call_id = first.message.tool_calls[0].id.clone();
    ctx.messages.push(first.message);
    ctx.messages.push(Message::tool_result(call_id, "alpha"));
    let second = provider.complete(&ctx).await.unwrap();
    assert_eq!(second.message.content.as_deref(), Some("It says alpha."));

    let sent = &server.requests()[1].body;
    let ephemeral = json!({"type": "ephemeral"});
    assert_eq!(sent["tools"][1]["cache_control"], ephemeral);
    assert_eq!(sent["tools"][0].get("cache_control"), None);
    assert_eq!(sent["system"][0]["text"], "You are terse.");
    assert_eq!(sent["system"][0]["cache_control"], ephemeral);
    assert_eq!(sent["system"][1].get("cache_control"), None);
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"][0]["text"], "What is in a?");
    assert_eq!(messages[0]["content"][0]["cache_control"], ephemeral);
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "thinking", "thinking": "Need the file first.",
               "signature": "EqQBCgIYAhIMsig"})
    );
    assert_eq!(messages[1]["content"][1]["type"], "tool_use");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["cache_control"], ephemeral);
    assert_eq!(sent.to_string().matches("\"ephemeral\"").count(), 4);

    // Anthropic's input_tokens leaves the cached tokens out; the normalised
    // count puts them back, and the price splits them out again.
    let usage = second.usage.unwrap();
    assert_eq!(usage.cached_input_tokens, Some(3_000));
    assert_eq!(usage.cache_write_input_tokens, Some(40));
    let plain = usage.input_tokens - 3_040;
    // Sonnet 4.5: $3 input, $0.30 cache read, $3.75 cache write, $15
    // output per million tokens.
    let expected =
        (plain as f64 * 3.0 + 3_000.0 * 0.30 + 40.0 * 3.75 + usage.output_tokens as f64 * 15.0)
            / 1_000_000.0;
    let cost = catalog()
        .get(ProviderType::Anthropic, CLAUDE)
        .unwrap()
        .cost_usd(&usage);
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
}

/// OpenAI and Gemini count cache reads inside the prompt; the normalised
/// usage says so without adding them twice.
#[tokio::test]
async fn implicit_cache_reads_stay_inside_the_prompt_count() {
    for (format, kind, model) in [
        (WireFormat::Openai, ProviderType::Openai, "gpt-4.1"),
        (WireFormat::Gemini, ProviderType::Gemini, "gemini-2.5-flash"),
    ] {
        let server = FakeLlm::start(format).await.unwrap();
        server.push(ScriptedReply::text("Cached.").with_cache(5_000, 0));
        let provider = provider_for(&server, kind);
        let ctx = context(model, vec![Message::user("hello there")]);
        let usage = collect_stream(provider.stream(&ctx, 8).await.unwrap())
            .await
            .unwrap()
            .usage
            .unwrap();
        assert_eq!(usage.cached_input_tokens, Some(5_000), "{format:?}");
        assert_eq!(usage.cache_write_input_tokens, None, "{format:?}");
        // "hello there" is two words; the prompt holds them and the reads.
        assert_eq!(usage.input_tokens, 5_002, "{format:?}: {usage:?}");
    }
}
