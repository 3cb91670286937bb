//! Timeouts that fit what they guard, on an in-process model under paused
//! time (so minutes pass in milliseconds, deterministically): a long
//! stream finishes with the default limits, a shell command may run past
//! the old 60 s deadline, and only the turn's wall-clock cap ends a turn
//! that goes on for too long — saying which setting to raise.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use runtime::{AgentRuntime, RuntimeLimits, RuntimeParts};
use sandbox::scrub::Scrubber;
use sandbox::shell_policy::ShellPolicy;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tools::shell::{
    MAX_COMMAND_TIMEOUT, ShellBackend, ShellOutput, ShellSession, register_shell_tool,
};
use tools::{StaticApproval, ToolRegistry};
use types::error::BudgetKind;
use types::protocol::bootstrap::ApprovalPolicy;
use types::{
    Context, FinishReason, Message, MessageRole, ModelCatalog, ModelId, Provider, ProviderCaps,
    ProviderError, ProviderId, ProviderStream, ProviderType, Response, RuntimeError, SessionId,
    StreamItem, ToolError, UsageUpdate,
};

/// One scripted answer: items sent `gap` apart.
struct Answer {
    items: Vec<StreamItem>,
    gap: Duration,
}

impl Answer {
    /// `words` text tokens, one every `gap`, then the end of the answer
    /// (`None` words: it never ends).
    fn words(words: Option<usize>, gap: Duration) -> Self {
        let mut items: Vec<StreamItem> = (0..words.unwrap_or(usize::MAX / 2).min(100_000))
            .map(|n| StreamItem::Text(format!("w{n} ")))
            .collect();
        if words.is_some() {
            items.push(StreamItem::UsageUpdate(UsageUpdate::new(10, 10)));
            items.push(StreamItem::FinishReason(FinishReason::Stop));
        }
        Self { items, gap }
    }

    fn tool_call(name: &str, arguments: &str) -> Self {
        Self {
            items: vec![
                StreamItem::ToolCallDelta {
                    index: 0,
                    id: Some("call_1".into()),
                    name: Some(name.into()),
                    arguments_fragment: arguments.into(),
                },
                StreamItem::FinishReason(FinishReason::ToolCalls),
            ],
            gap: Duration::ZERO,
        }
    }
}

/// A model in the test process whose answers trickle out on tokio's clock.
struct Trickle {
    id: ProviderId,
    answers: Mutex<VecDeque<Answer>>,
    /// The messages of every request, in order.
    requests: Mutex<Vec<Vec<Message>>>,
}

#[async_trait]
impl Provider for Trickle {
    fn provider_id(&self) -> &ProviderId {
        &self.id
    }

    fn model_catalog(&self) -> &ModelCatalog {
        ModelCatalog::pinned()
    }

    fn capabilities(&self, model: &ModelId) -> Result<ProviderCaps, ProviderError> {
        ModelCatalog::pinned().caps(ProviderType::Openai, model)
    }

    async fn complete(&self, context: &Context) -> Result<Response, ProviderError> {
        provider::collect_stream(self.stream(context, 64).await?).await
    }

    async fn stream(
        &self,
        context: &Context,
        buffer: usize,
    ) -> Result<ProviderStream, ProviderError> {
        self.requests.lock().unwrap().push(context.messages.clone());
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("a scripted answer for every call");
        let (tx, rx) = mpsc::channel(buffer.max(1));
        tokio::spawn(async move {
            for item in answer.items {
                tokio::time::sleep(answer.gap).await;
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

fn runtime(answers: Vec<Answer>, registry: ToolRegistry, limits: RuntimeLimits) -> AgentRuntime {
    runtime_with(trickle(answers), registry, limits)
}

fn trickle(answers: Vec<Answer>) -> Arc<Trickle> {
    Arc::new(Trickle {
        id: "trickle".into(),
        answers: Mutex::new(answers.into()),
        requests: Mutex::new(Vec::new()),
    })
}

fn runtime_with(
    model: Arc<Trickle>,
    registry: ToolRegistry,
    limits: RuntimeLimits,
) -> AgentRuntime {
    AgentRuntime::new(RuntimeParts {
        provider: model,
        provider_id: "trickle".into(),
        model: ModelCatalog::pinned()
            .get(ProviderType::Openai, "gpt-4.1")
            .cloned()
            .unwrap(),
        tools: Arc::new(registry),
        scrubber: Arc::new(Scrubber::new()),
        limits,
        system_prompt: "test".into(),
    })
}

fn registry() -> ToolRegistry {
    ToolRegistry::new(
        Arc::new(Scrubber::new()),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    )
}

async fn run(runtime: &AgentRuntime, prompt: &str) -> Result<runtime::TurnOutcome, RuntimeError> {
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let result = runtime
        .run_session(&SessionId::new("s"), prompt, &CancellationToken::new(), &tx)
        .await;
    drop(tx);
    drain.await.unwrap();
    result
}

/// Five minutes of steady writing, one token every 500 ms: longer than the
/// old 60 s per-call deadline, and fine with the default configuration.
#[tokio::test(start_paused = true)]
async fn a_model_streaming_for_five_minutes_finishes_with_the_default_limits() {
    let started = tokio::time::Instant::now();
    let runtime = runtime(
        vec![Answer::words(Some(600), Duration::from_millis(500))],
        registry(),
        RuntimeLimits::default(),
    );
    let outcome = run(&runtime, "write a long essay").await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(300));
    let text = outcome.final_message.content.unwrap();
    assert!(text.starts_with("w0 ") && text.ends_with("w599 "), "{text}");
}

/// The turn's wall clock is the only cap on a model that never stops; it
/// ends the turn with the setting named, and what was written is kept.
#[tokio::test(start_paused = true)]
async fn the_turn_wall_clock_ends_an_endless_answer_naming_its_setting() {
    let limits = RuntimeLimits {
        turn_timeout: Duration::from_secs(90),
        ..RuntimeLimits::default()
    };
    let runtime = runtime(
        vec![Answer::words(None, Duration::from_millis(500))],
        registry(),
        limits,
    );
    let error = run(&runtime, "never stop").await.unwrap_err();
    assert_eq!(
        error,
        RuntimeError::BudgetExceeded {
            kind: BudgetKind::Timeout
        }
    );
    assert!(
        error.to_string().contains("runtime.turn_timeout_secs"),
        "{error}"
    );
}

/// A shell session whose commands take `takes` (on tokio's clock) and that
/// records the time limit each was given.
#[derive(Debug)]
struct SlowShell {
    takes: Duration,
    limits: Mutex<Vec<Duration>>,
}

#[async_trait]
impl ShellSession for SlowShell {
    async fn exec(
        &self,
        _conversation: &SessionId,
        _command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ToolError> {
        self.limits.lock().unwrap().push(timeout);
        tokio::time::sleep(self.takes.min(timeout)).await;
        Ok(ShellOutput {
            stdout: "built".into(),
            stderr: String::new(),
            exit_code: 0,
            timed_out: self.takes > timeout,
            truncated: false,
        })
    }
}

/// `timeout_secs` 120 on a command that takes 90 s: the tool's own limit
/// governs it, not the turn (whose old per-call deadline was 60 s).
#[tokio::test(start_paused = true)]
async fn a_shell_command_longer_than_the_old_turn_deadline_runs_to_completion() {
    let shell = Arc::new(SlowShell {
        takes: Duration::from_secs(90),
        limits: Mutex::new(Vec::new()),
    });
    let mut registry = registry();
    register_shell_tool(
        &mut registry,
        ShellBackend::Session(shell.clone()),
        ShellPolicy::default(),
        MAX_COMMAND_TIMEOUT,
    )
    .unwrap();
    let model = trickle(vec![
        Answer::tool_call("shell_exec", r#"{"command": "make", "timeout_secs": 120}"#),
        Answer::words(Some(1), Duration::ZERO),
    ]);
    let runtime = runtime_with(model.clone(), registry, RuntimeLimits::default());
    let started = tokio::time::Instant::now();
    run(&runtime, "build it").await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(90));
    assert_eq!(*shell.limits.lock().unwrap(), [Duration::from_secs(120)]);
    let requests = model.requests.lock().unwrap();
    let result = requests[1]
        .iter()
        .find(|m| m.role == MessageRole::Tool)
        .and_then(|m| m.content.clone())
        .unwrap();
    assert!(
        result.starts_with("exit code: 0\nstdout:\nbuilt"),
        "{result}"
    );
}
