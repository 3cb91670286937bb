//! Every provider type against the fake LLM servers over real HTTP on
//! 127.0.0.1: streaming, tool calls, error mapping, retries, reconnection,
//! credentials and Responses chaining.

use std::collections::BTreeMap;
use std::sync::Arc;

use provider::{ReliableProvider, RetryPolicy, build_provider, build_selected, collect_stream};
use test_support::{Chunking, FakeLlm, Fault, ScriptedReply, ScriptedToolCall, WireFormat};
use types::config::{ProviderEntry, ReliabilityConfig};
use types::{
    AgentConfig, Context, FinishReason, FunctionDecl, JsonSchema, Message, ModelCatalog, Provider,
    ProviderError, ProviderType, SecretString, StreamItem, ToolCall,
};

const KEY: &str = "test-key-123";

/// Each wire format with its provider type and a catalog model.
const FORMATS: [(WireFormat, ProviderType, &str); 4] = [
    (WireFormat::Openai, ProviderType::Openai, "gpt-4.1"),
    (
        WireFormat::OpenaiResponses,
        ProviderType::OpenaiResponses,
        "gpt-4.1",
    ),
    (
        WireFormat::Anthropic,
        ProviderType::Anthropic,
        "claude-sonnet-4-5-20250929",
    ),
    (WireFormat::Gemini, ProviderType::Gemini, "gemini-2.5-flash"),
];

fn entry(kind: ProviderType, base_url: String) -> ProviderEntry {
    ProviderEntry {
        base_url: Some(base_url),
        ..ProviderEntry::new(kind)
    }
}

fn provider_for(server: &FakeLlm, kind: ProviderType) -> Arc<dyn Provider> {
    build_provider(
        "test",
        &entry(kind, server.base_url()),
        ModelCatalog::pinned(),
        Some(&SecretString::new(KEY)),
    )
    .unwrap()
}

fn tool() -> FunctionDecl {
    FunctionDecl {
        name: "file_read".into(),
        description: "Read a file".into(),
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
        tools: vec![tool()],
        settings: None,
    }
}

fn hello(model: &str) -> Context {
    context(
        model,
        vec![Message::system("Be brief."), Message::user("Say hello")],
    )
}

async fn drain(mut stream: types::ProviderStream) -> Vec<StreamItem> {
    let mut items = Vec::new();
    while let Some(item) = stream.recv().await {
        items.push(item);
    }
    items
}

fn text_of(items: &[StreamItem]) -> String {
    items
        .iter()
        .filter_map(|item| match item {
            StreamItem::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_type_streams_text_token_by_token() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push(ScriptedReply::text("Hello there, friend 👋"));
        let provider = provider_for(&server, kind);
        let items = drain(provider.stream(&hello(model), 8).await.unwrap()).await;
        let texts = items
            .iter()
            .filter(|i| matches!(i, StreamItem::Text(_)))
            .count();
        assert!(
            texts >= 2,
            "{format:?}: not streamed token by token: {items:?}"
        );
        assert_eq!(text_of(&items), "Hello there, friend 👋", "{format:?}");
        assert!(
            !items
                .iter()
                .any(|i| matches!(i, StreamItem::ConnectionLost(_))),
            "{format:?}: {items:?}"
        );
        assert!(
            items
                .iter()
                .any(|i| matches!(i, StreamItem::UsageUpdate(_))),
            "{format:?}: no usage"
        );
        let request = &server.requests()[0];
        let key_header = match kind {
            ProviderType::Openai | ProviderType::OpenaiResponses => (
                request.headers.get("authorization").cloned(),
                format!("Bearer {KEY}"),
            ),
            ProviderType::Anthropic => (request.headers.get("x-api-key").cloned(), KEY.to_owned()),
            ProviderType::Gemini => (
                request.headers.get("x-goog-api-key").cloned(),
                KEY.to_owned(),
            ),
        };
        assert_eq!(key_header.0, Some(key_header.1), "{format:?}");
    }
}

#[tokio::test]
async fn every_type_streams_tool_calls_and_completes_them() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        let calls = vec![
            ScriptedToolCall::new("file_read", "{\"path\":\"/shared/a.txt\"}"),
            ScriptedToolCall::new("file_read", "{\"path\":\"/tmp/b.txt\"}"),
        ];
        server.push(ScriptedReply::tool_calls(calls.clone()));
        server.push(ScriptedReply::tool_calls(calls));
        let provider = provider_for(&server, kind);
        let ctx = context(model, vec![Message::user("read both")]);

        let streamed = collect_stream(provider.stream(&ctx, 4).await.unwrap())
            .await
            .unwrap();
        let completed = provider.complete(&ctx).await.unwrap();
        for response in [&streamed, &completed] {
            let calls = &response.message.tool_calls;
            assert_eq!(calls.len(), 2, "{format:?}: {response:?}");
            let args: Vec<serde_json::Value> = calls
                .iter()
                .map(|c| serde_json::from_str(&c.arguments).unwrap())
                .collect();
            assert_eq!(args[0]["path"], "/shared/a.txt", "{format:?}");
            assert_eq!(args[1]["path"], "/tmp/b.txt", "{format:?}");
            assert!(
                calls
                    .iter()
                    .all(|c| c.name == "file_read" && !c.id.is_empty())
            );
            assert_eq!(
                response.finish_reason,
                Some(FinishReason::ToolCalls),
                "{format:?}"
            );
        }
    }
}

#[tokio::test]
async fn byte_at_a_time_chunking_gives_the_same_answer() {
    for (format, kind, model) in FORMATS {
        let reply = ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
            "file_read",
            "{\"path\":\"/é/👋\"}",
        )]);
        let mut runs = Vec::new();
        // Fresh servers, so both replies carry the same generated ids.
        for chunking in [Chunking::PerEvent, Chunking::Bytes(1)] {
            let server = FakeLlm::start(format).await.unwrap();
            server.push(reply.clone().with_chunking(chunking));
            let provider = provider_for(&server, kind);
            let ctx = context(model, vec![Message::user("go")]);
            runs.push(drain(provider.stream(&ctx, 8).await.unwrap()).await);
        }
        assert_eq!(runs[0], runs[1], "{format:?}");
        assert!(!runs[0].is_empty());
    }
}

#[tokio::test]
async fn error_statuses_map_to_typed_errors() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push_all([
            ScriptedReply::error(401, "bad key"),
            ScriptedReply::error(429, "slow down").with_retry_after(3),
            ScriptedReply::error(503, "overloaded"),
            ScriptedReply::error(400, "context too long"),
        ]);
        let provider = provider_for(&server, kind);
        let ctx = hello(model);
        let unauthorized = provider.complete(&ctx).await.unwrap_err();
        assert!(
            matches!(&unauthorized, ProviderError::Unauthorized(m) if m.contains("bad key")),
            "{format:?}: {unauthorized:?}"
        );
        let limited = provider.stream(&ctx, 8).await.unwrap_err();
        assert!(
            matches!(&limited, ProviderError::RateLimited { retry_after: Some(d), message }
                if d.as_secs() == 3 && message.contains("slow down")),
            "{format:?}: {limited:?}"
        );
        let unavailable = provider.complete(&ctx).await.unwrap_err();
        assert!(unavailable.is_retriable(), "{format:?}: {unavailable:?}");
        let bad = provider.complete(&ctx).await.unwrap_err();
        assert_eq!(
            bad,
            ProviderError::HttpStatus {
                status: 400,
                message: "context too long".into()
            },
            "{format:?}"
        );
        assert!(!bad.is_retriable());
    }
}

#[tokio::test]
async fn unknown_model_fails_before_any_request() {
    for (format, kind, _) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        let provider = provider_for(&server, kind);
        let err = provider
            .complete(&hello("no-such-model"))
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::UnknownModel { .. }), "{err:?}");
        assert!(server.requests().is_empty(), "{format:?} sent a request");
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        backoff_base: std::time::Duration::from_millis(1),
        backoff_max: std::time::Duration::from_millis(5),
    }
}

#[tokio::test]
async fn reliable_provider_retries_a_failing_server_then_succeeds() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push_all([
            ScriptedReply::error(500, "boom"),
            ScriptedReply::error(502, "bad gateway"),
            ScriptedReply::text("finally"),
        ]);
        let reliable = ReliableProvider::new(provider_for(&server, kind), fast_policy());
        let items = drain(reliable.stream(&hello(model), 8).await.unwrap()).await;
        assert_eq!(text_of(&items), "finally", "{format:?}");
        assert_eq!(server.requests().len(), 3, "{format:?}");
    }
}

#[tokio::test]
async fn a_rate_limit_longer_than_backoff_max_is_not_waited_for() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push_all([
            ScriptedReply::error(429, "daily quota").with_retry_after(3600),
            ScriptedReply::text("never asked"),
        ]);
        let reliable = ReliableProvider::new(provider_for(&server, kind), fast_policy());
        let error = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            reliable.complete(&hello(model)),
        )
        .await
        .expect("no hour-long wait")
        .unwrap_err();
        assert!(
            matches!(&error, ProviderError::RateLimited { retry_after: Some(d), .. }
                if d.as_secs() == 3600),
            "{format:?}: {error:?}"
        );
        assert_eq!(server.requests().len(), 1, "{format:?}");
    }
}

#[tokio::test]
async fn stream_cut_before_the_first_token_is_reconnected() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push_all([
            ScriptedReply::text("never seen").with_fault(Fault::CutAfterBytes(5)),
            ScriptedReply::text("second try works"),
        ]);
        let reliable = ReliableProvider::new(provider_for(&server, kind), fast_policy());
        let items = drain(reliable.stream(&hello(model), 8).await.unwrap()).await;
        assert_eq!(text_of(&items), "second try works", "{format:?}: {items:?}");
        assert_eq!(server.requests().len(), 2, "{format:?}");
    }
}

#[tokio::test]
async fn stream_cut_after_tokens_is_reported_without_duplicates() {
    const TEXT: &str = "one two three four five six seven eight";
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push(ScriptedReply::text(TEXT));
        let provider = provider_for(&server, kind);
        let full = drain(provider.stream(&hello(model), 8).await.unwrap()).await;
        assert_eq!(text_of(&full), TEXT);

        // Cut the same reply two thirds of the way through its body.
        server.push(ScriptedReply::text(TEXT));
        let body_len = replay(&server, &server.requests()[0]).await;
        server.push(ScriptedReply::text(TEXT).with_fault(Fault::CutAfterBytes(body_len * 2 / 3)));
        let reliable = ReliableProvider::new(provider, fast_policy());
        let items = drain(reliable.stream(&hello(model), 8).await.unwrap()).await;
        let text = text_of(&items);
        assert!(
            !text.is_empty() && TEXT.starts_with(&text),
            "{format:?}: {items:?}"
        );
        assert!(
            matches!(items.last(), Some(StreamItem::ConnectionLost(_))),
            "{format:?}: {items:?}"
        );
        assert_eq!(
            server.requests().len(),
            3,
            "{format:?}: must not re-request after content"
        );
    }
}

/// Sends a recorded request again with plain reqwest; returns the length
/// of the response body.
async fn replay(server: &FakeLlm, request: &test_support::RecordedRequest) -> usize {
    let url = format!("http://{}{}", server.addr(), request.path);
    let mut builder = reqwest::Client::new().post(url).json(&request.body);
    for (name, value) in &request.headers {
        if !matches!(name.as_str(), "content-length" | "host" | "content-type") {
            builder = builder.header(name, value);
        }
    }
    builder.send().await.unwrap().bytes().await.unwrap().len()
}

#[tokio::test]
async fn invalid_json_in_a_chunk_ends_the_stream_with_a_clear_reason() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push(ScriptedReply::text("alpha beta gamma").with_fault(Fault::InvalidJsonChunk));
        let provider = provider_for(&server, kind);
        let items = drain(provider.stream(&hello(model), 8).await.unwrap()).await;
        match items.last() {
            Some(StreamItem::ConnectionLost(reason)) => {
                assert!(reason.contains("parse"), "{format:?}: {reason}")
            }
            other => panic!("{format:?}: expected ConnectionLost, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn responses_api_chains_the_second_turn() {
    let server = FakeLlm::start(WireFormat::OpenaiResponses).await.unwrap();
    server.push_all([
        ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
            "file_read",
            "{\"path\":\"/shared/a\"}",
        )]),
        ScriptedReply::text("The file says hi."),
    ]);
    let provider = provider_for(&server, ProviderType::OpenaiResponses);
    let mut ctx = context(
        "gpt-4.1",
        vec![Message::system("sys"), Message::user("read a")],
    );
    let first = collect_stream(provider.stream(&ctx, 8).await.unwrap())
        .await
        .unwrap();
    let call: ToolCall = first.message.tool_calls[0].clone();
    ctx.messages.push(first.message);
    ctx.messages
        .push(Message::tool_result(call.id.clone(), "hi"));
    let second = provider.complete(&ctx).await.unwrap();
    assert_eq!(second.message.content.as_deref(), Some("The file says hi."));

    let requests = server.requests();
    assert!(requests[0].body.get("previous_response_id").is_none());
    let chained = &requests[1].body;
    assert!(
        chained["previous_response_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_")),
        "{chained}"
    );
    let input = chained["input"].as_array().unwrap();
    assert_eq!(
        input.len(),
        1,
        "only the new tool output is sent: {chained}"
    );
    assert_eq!(input[0]["type"], "function_call_output");
    assert_eq!(input[0]["call_id"], call.id.as_str());
}

/// A restarted agent chains from the history it restored: each answer
/// carries its response reference, stored with the message as JSON, and a
/// new provider (empty chain memory) learns it from the context — but only
/// for exactly the conversation it ended.
#[tokio::test]
async fn responses_chains_survive_a_restart_through_the_stored_messages() {
    let server = FakeLlm::start(WireFormat::OpenaiResponses).await.unwrap();
    server.push_all([
        ScriptedReply::text("Noted: the deploy is on Friday."),
        ScriptedReply::text("Friday."),
        ScriptedReply::text("Friday, as before."),
    ]);
    let before = provider_for(&server, ProviderType::OpenaiResponses);
    let mut ctx = context(
        "gpt-4.1",
        vec![Message::system("sys"), Message::user("we deploy on friday")],
    );
    let first = collect_stream(before.stream(&ctx, 8).await.unwrap())
        .await
        .unwrap();
    let reference = first
        .message
        .response_ref
        .clone()
        .expect("a response reference");
    assert!(reference.id.starts_with("resp_"), "{reference:?}");
    ctx.messages.push(first.message);
    drop(before);

    // What storage keeps and a restart restores: the messages' JSON.
    let stored = serde_json::to_string(&ctx.messages).unwrap();
    let mut restored = context("gpt-4.1", serde_json::from_str(&stored).unwrap());
    restored.messages.push(Message::user("when do we deploy?"));
    let after = provider_for(&server, ProviderType::OpenaiResponses);
    let second = after.complete(&restored).await.unwrap();
    assert_eq!(second.message.content.as_deref(), Some("Friday."));
    let chained = &server.requests()[1].body;
    assert_eq!(
        chained["previous_response_id"],
        reference.id.as_str(),
        "{chained}"
    );
    let input = chained["input"].as_array().unwrap();
    assert_eq!(input.len(), 1, "only the new prompt is sent: {chained}");
    assert_eq!(input[0]["content"], "when do we deploy?");

    // An edited history no longer matches the reference: the full history
    // goes, with no chain.
    let mut edited = restored.clone();
    edited.messages[2].content = Some("Noted: the deploy is on Monday.".into());
    let fresh = provider_for(&server, ProviderType::OpenaiResponses);
    fresh.complete(&edited).await.unwrap();
    let unchained = &server.requests()[2].body;
    assert!(
        unchained.get("previous_response_id").is_none(),
        "{unchained}"
    );
    assert_eq!(
        unchained["input"].as_array().unwrap().len(),
        3,
        "{unchained}"
    );
}

#[tokio::test]
async fn selected_provider_resolves_credentials_by_precedence() {
    let server = FakeLlm::start(WireFormat::Anthropic).await.unwrap();
    let mut config = AgentConfig::default();
    let mut anthropic = entry(ProviderType::Anthropic, server.base_url());
    anthropic.api_key_env = Some("MY_ANTHROPIC".into());
    config.providers.insert("claude".into(), anthropic);
    config.selection.provider = Some("claude".into());
    config.selection.model = Some("claude-haiku-4-5".into());
    config.reliability = ReliabilityConfig {
        backoff_base_ms: 1,
        backoff_max_ms: 2,
        ..ReliabilityConfig::default()
    };
    config.validate(ModelCatalog::pinned()).unwrap();

    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    for (lookup_pairs, expected) in [
        (
            &[("MY_ANTHROPIC", "from-entry-env"), ("API_KEY", "generic")][..],
            "from-entry-env",
        ),
        (
            &[("ANTHROPIC_API_KEY", "ignored"), ("API_KEY", "generic")][..],
            "generic",
        ),
    ] {
        server.push(ScriptedReply::text("ok"));
        let provider = build_selected(&config, ModelCatalog::pinned(), env(lookup_pairs)).unwrap();
        provider.complete(&hello("claude-haiku-4-5")).await.unwrap();
        let headers = server.requests().pop().unwrap().headers;
        assert_eq!(headers.get("x-api-key").map(String::as_str), Some(expected));
        assert_eq!(
            headers.get("anthropic-version").map(String::as_str),
            Some("2023-06-01")
        );
    }

    config.providers.get_mut("claude").unwrap().api_key = Some("explicit".into());
    server.push(ScriptedReply::text("ok"));
    let provider = build_selected(
        &config,
        ModelCatalog::pinned(),
        env(&[("MY_ANTHROPIC", "env")]),
    )
    .unwrap();
    provider.complete(&hello("claude-haiku-4-5")).await.unwrap();
    let headers = server.requests().pop().unwrap().headers;
    assert_eq!(
        headers.get("x-api-key").map(String::as_str),
        Some("explicit")
    );
}

#[tokio::test]
async fn fallback_chain_reaches_a_second_server() {
    let broken = FakeLlm::start(WireFormat::Openai).await.unwrap();
    broken.push_all((0..3).map(|_| ScriptedReply::error(503, "down")));
    let backup = FakeLlm::start(WireFormat::Gemini).await.unwrap();
    backup.push(ScriptedReply::text("backup answer"));
    let mut config = AgentConfig::default();
    config.providers.insert(
        "main".into(),
        entry(ProviderType::Openai, broken.base_url()),
    );
    config.providers.insert(
        "spare".into(),
        entry(ProviderType::Gemini, backup.base_url()),
    );
    config.selection.provider = Some("main".into());
    config.selection.model = Some("gpt-4.1".into());
    config.reliability.backoff_base_ms = 1;
    config.reliability.backoff_max_ms = 2;
    config.reliability.fallbacks = vec![types::config::FallbackSelection {
        provider: "spare".into(),
        model: "gemini-2.5-flash".into(),
    }];
    config.validate(ModelCatalog::pinned()).unwrap();
    let provider = build_selected(&config, ModelCatalog::pinned(), |_| Some("k".into())).unwrap();
    let response = provider.complete(&hello("gpt-4.1")).await.unwrap();
    assert_eq!(response.message.content.as_deref(), Some("backup answer"));
    assert_eq!(broken.requests().len(), 3);
    assert!(backup.requests()[0].path.contains("gemini-2.5-flash"));
}

#[tokio::test]
async fn missing_key_for_a_vendor_url_is_a_configuration_error() {
    let Err(err) = build_provider(
        "openai",
        &ProviderEntry::new(ProviderType::Openai),
        ModelCatalog::pinned(),
        None,
    ) else {
        panic!("a vendor URL without a key must be refused");
    };
    assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
    // A local server needs no key, and no Authorization header is sent.
    let server = FakeLlm::start(WireFormat::Openai).await.unwrap();
    server.push(ScriptedReply::text("local"));
    let local = build_provider(
        "local",
        &entry(ProviderType::Openai, server.base_url()),
        ModelCatalog::pinned(),
        None,
    )
    .unwrap();
    local.complete(&hello("gpt-4.1")).await.unwrap();
    assert!(!server.requests()[0].headers.contains_key("authorization"));
}

/// A provider for `server` whose streams may go `idle_secs` without a byte
/// and `first_token_secs` without content.
fn provider_with_timeouts(
    server: &FakeLlm,
    kind: ProviderType,
    idle_secs: u64,
    first_token_secs: u64,
) -> Arc<dyn Provider> {
    let entry = ProviderEntry {
        stream_idle_timeout_secs: idle_secs,
        first_token_timeout_secs: first_token_secs,
        ..entry(kind, server.base_url())
    };
    build_provider(
        "slowpoke",
        &entry,
        ModelCatalog::pinned(),
        Some(&SecretString::new(KEY)),
    )
    .unwrap()
}

/// A model that keeps writing is never cut off: the idle timeout measures
/// the gap between bytes, not the age of the stream (which once ended every
/// answer at 60 s).
#[tokio::test]
async fn a_stream_that_keeps_sending_outlives_its_idle_timeout() {
    let words: Vec<String> = (1..=7).map(|n| format!("w{n} ")).collect();
    let text = words.concat();
    let server = FakeLlm::start(WireFormat::Openai).await.unwrap();
    // One event per write, 500 ms apart: ~4 s in all, against a 1 s idle
    // limit and a 2 s first-token limit.
    server.push(ScriptedReply::text(text.clone()).with_chunk_delay_ms(500));
    let provider = provider_with_timeouts(&server, ProviderType::Openai, 1, 2);
    let started = std::time::Instant::now();
    let items = drain(provider.stream(&hello("gpt-4.1"), 8).await.unwrap()).await;
    assert!(started.elapsed() > std::time::Duration::from_secs(3));
    assert_eq!(text_of(&items), text, "{items:?}");
    assert!(
        !items
            .iter()
            .any(|item| matches!(item, StreamItem::ConnectionLost(_))),
        "{items:?}"
    );
}

/// A stream that goes silent after its first tokens ends at the idle
/// timeout with a reason naming the setting to raise.
#[tokio::test]
async fn a_silent_stream_is_ended_by_the_idle_timeout_naming_the_setting() {
    for (format, kind, model) in FORMATS {
        let server = FakeLlm::start(format).await.unwrap();
        server.push(ScriptedReply::text("half an answer").with_fault(Fault::NeverEnd));
        let provider = provider_with_timeouts(&server, kind, 1, 30);
        let items = drain(provider.stream(&hello(model), 8).await.unwrap()).await;
        assert_eq!(text_of(&items), "half an answer", "{format:?}");
        match items.last() {
            Some(StreamItem::ConnectionLost(reason)) => assert!(
                reason.contains("providers.slowpoke.stream_idle_timeout_secs"),
                "{format:?}: {reason}"
            ),
            other => panic!("{format:?}: expected ConnectionLost, got {other:?}"),
        }
    }
}

/// A server that takes the request but sends nothing is given up on at
/// the first-token timeout, as a dropped connection: the reliability layer
/// retries it, and `complete()` is bounded the same way.
#[tokio::test]
async fn a_request_without_an_answer_ends_at_the_first_token_timeout() {
    let server = FakeLlm::start(WireFormat::Anthropic).await.unwrap();
    server.push_all([
        ScriptedReply::text("too late").with_delay_ms(5_000),
        ScriptedReply::text("too late").with_delay_ms(5_000),
        ScriptedReply::text("in time"),
    ]);
    let provider = provider_with_timeouts(&server, ProviderType::Anthropic, 30, 1);
    let model = "claude-sonnet-4-5-20250929";
    let error = provider.stream(&hello(model), 8).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::ConnectionLost(reason)
            if reason.contains("providers.slowpoke.first_token_timeout_secs")),
        "{error:?}"
    );
    assert!(error.is_retriable());
    let error = provider.complete(&hello(model)).await.unwrap_err();
    assert!(
        error.to_string().contains("first_token_timeout_secs"),
        "{error}"
    );
    let reliable = ReliableProvider::new(provider, fast_policy());
    let response = reliable.complete(&hello(model)).await.unwrap();
    assert_eq!(response.message.content.as_deref(), Some("in time"));
}
