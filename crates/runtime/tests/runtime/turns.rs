//! The turn loop end to end against the fake LLM server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{Harness, Options, roles};
use async_trait::async_trait;
use runtime::{CANCELLED_MARKER, RuntimeEvent, RuntimeLimits, TurnState};
use test_support::{Chunking, Fault, MemoryOp, ScriptedReply, ScriptedToolCall};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use types::error::BudgetKind;
use types::{
    ChunkInput, FunctionDecl, JsonSchema, MemoryRetrieval, MessageRole, RuntimeError, SafetyTier,
    Tool, ToolContext, ToolError,
};

fn call(name: &str, arguments: &str) -> ScriptedToolCall {
    ScriptedToolCall::new(name, arguments)
}

#[tokio::test]
async fn a_turn_with_streamed_tool_calls_runs_to_the_answer() {
    let harness = Harness::new(
        vec![
            ScriptedReply::tool_calls(vec![call("file_list", r#"{"path": "/shared"}"#)]),
            ScriptedReply::text("The workspace holds notes.md."),
        ],
        Options::default(),
    )
    .await;
    std::fs::write(harness.host("shared/notes.md"), "hi").unwrap();
    let (result, events) = harness.turn("What is in my workspace?").await;
    let outcome = result.unwrap();
    assert_eq!(
        outcome.final_message.content.as_deref(),
        Some("The workspace holds notes.md.")
    );
    assert_eq!(outcome.provider_calls, 2);
    assert!(outcome.usage.total_tokens > 0 && outcome.cost_usd > 0.0);

    // The second request carries the tool call and its result.
    let bodies = harness.bodies();
    assert_eq!(roles(&bodies[1]), ["system", "user", "assistant", "tool"]);
    assert_eq!(bodies[1]["messages"][3]["content"], "notes.md (2 bytes)");
    assert!(bodies[0]["tools"].as_array().is_some_and(|t| t.len() == 6));

    // Everything was stored, in order, as it happened.
    let stored = harness.memory.messages("session-1");
    let stored_roles: Vec<MessageRole> = stored.iter().map(|m| m.role).collect();
    use MessageRole::*;
    assert_eq!(stored_roles, [User, Assistant, Tool, Assistant]);
    let sequences: Vec<i64> = harness
        .memory
        .events("session-1")
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4]);

    // Events: streaming, the tool, streaming again with text, yielding.
    let states: Vec<TurnState> = events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::State(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            TurnState::Streaming,
            TurnState::ToolExecution,
            TurnState::Streaming,
            TurnState::Yielding
        ]
    );
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "The workspace holds notes.md.");
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::ToolCallFinished { name, ok: true, .. } if name == "file_list")));
}

#[tokio::test]
async fn malformed_arguments_are_fed_back_for_self_correction() {
    let harness = Harness::new(
        vec![
            ScriptedReply::tool_calls(vec![call("file_read", r#"{"path": "#)]),
            ScriptedReply::tool_calls(vec![call("file_read", r#"{"nope": 1}"#)]),
            ScriptedReply::text("Sorry, fixed."),
        ],
        Options::default(),
    )
    .await;
    let (result, events) = harness.turn("read it").await;
    assert_eq!(
        result.unwrap().final_message.content.as_deref(),
        Some("Sorry, fixed.")
    );
    let bodies = harness.bodies();
    let first_error = bodies[1]["messages"][3]["content"].as_str().unwrap();
    assert!(
        first_error.starts_with("Tool execution failed: invalid arguments"),
        "{first_error}"
    );
    let second_error = bodies[2]["messages"][5]["content"].as_str().unwrap();
    assert!(
        second_error.contains("missing required field 'path'"),
        "{second_error}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RuntimeEvent::ToolCallFinished { ok: false, .. }))
    );
}

/// When each timed tool ran: (name, start, end).
type RunLog = Arc<Mutex<Vec<(&'static str, Instant, Instant)>>>;

/// A tool that records when it ran.
#[derive(Debug)]
struct Timed {
    name: &'static str,
    tier: SafetyTier,
    delay: Duration,
    log: RunLog,
}

#[async_trait]
impl Tool for Timed {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: self.name.into(),
            description: "timed test tool".into(),
            parameters: JsonSchema::object(BTreeMap::new(), vec![]),
        }
    }

    async fn execute(&self, _args: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let start = Instant::now();
        tokio::time::sleep(self.delay).await;
        self.log
            .lock()
            .unwrap()
            .push((self.name, start, Instant::now()));
        Ok(format!("{} done", self.name))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn safety_tier(&self) -> SafetyTier {
        self.tier
    }
}

#[tokio::test]
async fn read_only_calls_overlap_and_side_effects_run_alone_in_order() {
    let log = RunLog::default();
    let tool = |name, tier| -> Arc<dyn Tool> {
        Arc::new(Timed {
            name,
            tier,
            delay: Duration::from_millis(300),
            log: log.clone(),
        })
    };
    let options = Options {
        extra_tools: vec![
            tool("ro_a", SafetyTier::ReadOnly),
            tool("ro_b", SafetyTier::ReadOnly),
            tool("write_c", SafetyTier::SideEffecting),
            tool("ro_d", SafetyTier::ReadOnly),
        ],
        ..Options::default()
    };
    let harness = Harness::new(
        vec![
            ScriptedReply::tool_calls(vec![
                call("ro_a", "{}"),
                call("ro_b", "{}"),
                call("write_c", "{}"),
                call("ro_d", "{}"),
            ]),
            ScriptedReply::text("ok"),
        ],
        options,
    )
    .await;
    harness.turn("go").await.0.unwrap();
    let log = log.lock().unwrap().clone();
    let span = |name: &str| {
        log.iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, s, e)| (*s, *e))
            .unwrap()
    };
    let (a, b, c, d) = (span("ro_a"), span("ro_b"), span("write_c"), span("ro_d"));
    assert!(a.0 < b.1 && b.0 < a.1, "ro_a and ro_b must overlap");
    assert!(c.0 >= a.1.max(b.1), "write_c starts after the read batch");
    assert!(d.0 >= c.1, "ro_d starts after write_c");
    // Results are appended in the model's order.
    let body = &harness.bodies()[1];
    let results: Vec<&str> = body["messages"].as_array().unwrap()[3..]
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["ro_a done", "ro_b done", "write_c done", "ro_d done"]
    );
}

#[tokio::test]
async fn the_turn_limit_stops_a_looping_model_and_keeps_everything() {
    let options = Options {
        limits: RuntimeLimits {
            max_turns: 2,
            ..RuntimeLimits::default()
        },
        ..Options::default()
    };
    let harness = Harness::new(
        (0..2)
            .map(|_| ScriptedReply::tool_calls(vec![call("file_list", r#"{"path": "/tmp"}"#)]))
            .collect(),
        options,
    )
    .await;
    let (result, _) = harness.turn("loop").await;
    assert_eq!(
        result.unwrap_err(),
        RuntimeError::BudgetExceeded {
            kind: BudgetKind::Turns
        }
    );
    assert_eq!(
        harness.memory.messages("session-1").len(),
        5,
        "user + 2 × (call + result)"
    );
}

#[tokio::test]
async fn the_cost_limit_stops_after_the_call_that_crossed_it() {
    let options = Options {
        limits: RuntimeLimits {
            max_cost: Some(1e-9),
            ..RuntimeLimits::default()
        },
        ..Options::default()
    };
    let harness = Harness::new(
        vec![
            ScriptedReply::tool_calls(vec![call("file_list", r#"{"path": "/tmp"}"#)]),
            ScriptedReply::text("never asked"),
        ],
        options,
    )
    .await;
    let (result, _) = harness.turn("spend").await;
    assert_eq!(
        result.unwrap_err(),
        RuntimeError::BudgetExceeded {
            kind: BudgetKind::Cost
        }
    );
    assert_eq!(harness.server.requests().len(), 1);
    // The call that was bought and its result are kept.
    assert_eq!(harness.memory.messages("session-1").len(), 3);
}

#[tokio::test]
async fn a_slow_provider_hits_the_turn_timeout() {
    let options = Options {
        limits: RuntimeLimits {
            turn_timeout: Duration::from_millis(300),
            ..RuntimeLimits::default()
        },
        ..Options::default()
    };
    let harness = Harness::new(
        vec![ScriptedReply::text("late").with_delay_ms(5_000)],
        options,
    )
    .await;
    let started = Instant::now();
    let (result, _) = harness.turn("hurry").await;
    assert_eq!(
        result.unwrap_err(),
        RuntimeError::BudgetExceeded {
            kind: BudgetKind::Timeout
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn cancelling_a_slow_stream_returns_fast_and_keeps_the_partial_answer() {
    let words: String = (0..50).map(|i| format!("word{i} ")).collect();
    let harness = Harness::new(
        vec![ScriptedReply::text(words).with_chunk_delay_ms(200)],
        Options::default(),
    )
    .await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        trigger.cancel();
        Instant::now()
    });
    let (result, events) = harness.turn_with("talk", &cancel).await;
    let returned = Instant::now();
    let cancelled_at = canceller.await.unwrap();
    assert_eq!(result.unwrap_err(), RuntimeError::Cancelled);
    let latency = returned - cancelled_at;
    assert!(
        latency < Duration::from_millis(100),
        "returned {latency:?} after the cancel"
    );
    assert!(events.contains(&RuntimeEvent::State(TurnState::Cancelled)));
    let stored = harness.memory.messages("session-1");
    let partial = stored.last().unwrap().content.clone().unwrap();
    assert!(
        partial.starts_with("word0 ") && partial.ends_with(CANCELLED_MARKER),
        "{partial}"
    );
    let (_, payload) = harness.memory.events("session-1").pop().unwrap();
    assert_eq!(payload["cancelled"], true);
}

#[tokio::test]
async fn cancelling_a_slow_tool_returns_fast_and_answers_the_call() {
    let log = RunLog::default();
    let options = Options {
        extra_tools: vec![Arc::new(Timed {
            name: "slow",
            tier: SafetyTier::SideEffecting,
            delay: Duration::from_secs(30),
            log,
        })],
        ..Options::default()
    };
    let harness = Harness::new(
        vec![ScriptedReply::tool_calls(vec![call("slow", "{}")])],
        options,
    )
    .await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
        Instant::now()
    });
    let (result, _) = harness.turn_with("wait", &cancel).await;
    let latency = Instant::now() - canceller.await.unwrap();
    assert_eq!(result.unwrap_err(), RuntimeError::Cancelled);
    assert!(
        latency < Duration::from_millis(100),
        "returned {latency:?} after the cancel"
    );
    let stored = harness.memory.messages("session-1");
    assert_eq!(
        stored.last().unwrap().role,
        MessageRole::Tool,
        "the call has an answer"
    );
    assert!(
        stored
            .last()
            .unwrap()
            .content
            .as_deref()
            .unwrap()
            .contains("interrupted")
    );
}

#[tokio::test]
async fn a_stream_that_fails_before_content_falls_back_to_complete() {
    let harness = Harness::new(
        vec![
            ScriptedReply::text("lost").with_fault(Fault::CutAfterBytes(3)),
            ScriptedReply::text("from complete()"),
        ],
        Options::default(),
    )
    .await;
    let (result, events) = harness.turn("hi").await;
    assert_eq!(
        result.unwrap().final_message.content.as_deref(),
        Some("from complete()")
    );
    let bodies = harness.bodies();
    assert_eq!(bodies[0]["stream"], true);
    assert_eq!(bodies[1]["stream"], false);
    assert!(events.contains(&RuntimeEvent::TextDelta("from complete()".into())));
}

#[tokio::test]
async fn a_secret_returned_by_a_tool_is_scrubbed_before_model_and_memory() {
    let harness = Harness::new(
        vec![
            ScriptedReply::tool_calls(vec![call("file_read", r#"{"path": "/shared/.env"}"#)]),
            ScriptedReply::text("I read it."),
        ],
        Options::default(),
    )
    .await;
    let secret = "AKIAQWERTYUIOPASDFGH";
    std::fs::write(
        harness.host("shared/.env"),
        format!("AWS_ACCESS_KEY_ID={secret}\n"),
    )
    .unwrap();
    harness.turn("read .env").await.0.unwrap();
    let sent = harness.bodies()[1].to_string();
    assert!(
        !sent.contains(secret) && sent.contains("[REDACTED]"),
        "{sent}"
    );
    let stored = serde_json::to_string(&harness.memory.events("session-1")).unwrap();
    assert!(!stored.contains(secret));
}

/// A document in memory that a question about the deploy key finds.
async fn remember_deploy_key(harness: &Harness) {
    harness
        .memory
        .upsert_chunks(
            "session-1",
            vec![ChunkInput {
                text: "The deploy key is stored at /vault/deploy.key".into(),
                source_uri: Some("file:///shared/ops.md".into()),
                sequence_start: 0,
                sequence_end: 0,
                metadata: serde_json::Value::Null,
            }],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn relevant_memory_is_injected_before_the_call() {
    let harness = Harness::new(
        vec![ScriptedReply::text("It is in the vault.")],
        Options::default(),
    )
    .await;
    remember_deploy_key(&harness).await;
    harness.turn("Where is the deploy key?").await.0.unwrap();
    let body = &harness.bodies()[0];
    assert_eq!(roles(body), ["system", "system", "user"]);
    assert_eq!(
        body["messages"][1]["content"],
        "Relevant context from memory:\n- The deploy key is stored at /vault/deploy.key"
    );
}

#[tokio::test]
async fn memory_is_searched_once_per_turn_and_every_call_sends_the_same_snippets() {
    let harness = Harness::new(
        vec![
            ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
                "file_list",
                r#"{"path": "/shared"}"#,
            )]),
            ScriptedReply::text("It is in the vault."),
        ],
        Options::default(),
    )
    .await;
    remember_deploy_key(&harness).await;
    harness.turn("Where is the deploy key?").await.0.unwrap();
    let bodies = harness.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["messages"][1], bodies[1]["messages"][1]);
    let queries = harness
        .memory
        .operations()
        .into_iter()
        .filter(|op| matches!(op, MemoryOp::Query { .. }))
        .count();
    assert_eq!(queries, 1);
}

#[tokio::test]
async fn a_session_continues_after_a_restart_from_stored_events() {
    let harness = Harness::new(
        vec![
            ScriptedReply::text("First answer."),
            ScriptedReply::text("Second answer."),
        ],
        Options::default(),
    )
    .await;
    harness.turn("first").await.0.unwrap();
    // A new runtime over the same memory (as after a process restart).
    let (provider, model) = {
        let mut entry = types::config::ProviderEntry::new(types::ProviderType::Openai);
        entry.base_url = Some(harness.server.base_url());
        let provider = provider::build_provider(
            "fake",
            &entry,
            types::ModelCatalog::pinned(),
            Some(&types::SecretString::new("k")),
        )
        .unwrap();
        (provider, Options::default().model)
    };
    let scrubber = Arc::new(sandbox::scrub::Scrubber::new());
    let registry = tools::ToolRegistry::new(
        scrubber.clone(),
        Arc::new(tools::StaticApproval(
            types::protocol::bootstrap::ApprovalPolicy::Allow,
        )),
    );
    let restarted = crate::support::runtime(
        provider,
        model,
        registry,
        scrubber,
        RuntimeLimits::default(),
        &harness.memory,
    );
    assert_eq!(
        restarted.restore_session(&harness.session).await.unwrap(),
        2
    );
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    restarted
        .run_session(&harness.session, "second", &CancellationToken::new(), &tx)
        .await
        .unwrap();
    let body = &harness.bodies()[1];
    assert_eq!(roles(body), ["system", "user", "assistant", "user"]);
    assert_eq!(body["messages"][2]["content"], "First answer.");
    let sequences: Vec<i64> = harness
        .memory
        .events("session-1")
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
}

#[tokio::test]
async fn byte_chunked_streams_forward_every_character() {
    let harness = Harness::new(
        vec![ScriptedReply::text("héllo wörld 👋").with_chunking(Chunking::Bytes(1))],
        Options::default(),
    )
    .await;
    let (result, events) = harness.turn("hi").await;
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "héllo wörld 👋");
    assert_eq!(
        result.unwrap().final_message.content.as_deref(),
        Some("héllo wörld 👋")
    );
}
