//! Orchestration overhead of one user turn (issue 6 benchmark): an
//! instant in-process provider, no storage, so the figures are the
//! runtime's own cost — context preparation, streaming, tool dispatch
//! through the registry pipeline, accounting. Also the memory held per
//! session with 100 sessions running at once.
//!
//! `cargo bench -p runtime --bench turn_overhead`; under `cargo test` (no
//! `--bench` argument) one quick pass only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::bench::{full_run, percentile};

use async_trait::async_trait;
use runtime::{AgentRuntime, RuntimeLimits, RuntimeParts};
use sandbox::scrub::Scrubber;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tools::{StaticApproval, ToolRegistry};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{
    Context, FinishReason, FunctionDecl, JsonSchema, MessageRole, ModelCatalog, ModelDescriptor,
    ModelId, Provider, ProviderCaps, ProviderError, ProviderId, ProviderStream, ProviderType,
    Response, SafetyTier, SessionId, StreamItem, Tool, ToolContext, ToolError, UsageUpdate,
};

/// Answers at once: a tool call for a prompt that asks for one (when the
/// last message is the user's), text otherwise.
struct InstantProvider {
    id: ProviderId,
    delay: Duration,
}

impl InstantProvider {
    fn items(&self, context: &Context) -> Vec<StreamItem> {
        let last = context.messages.last();
        let wants_tool = last.is_some_and(|m| {
            m.role == MessageRole::User && m.content.as_deref().is_some_and(|c| c.contains("tool"))
        });
        let mut items = if wants_tool {
            vec![StreamItem::ToolCallDelta {
                index: 0,
                id: Some("call_1".into()),
                name: Some("echo".into()),
                arguments_fragment: "{\"text\":\"hi\"}".into(),
            }]
        } else {
            "The answer is forty-two, as usual."
                .split_inclusive(' ')
                .map(|w| StreamItem::Text(w.to_owned()))
                .collect()
        };
        items.push(StreamItem::UsageUpdate(UsageUpdate::new(100, 10)));
        items.push(StreamItem::FinishReason(FinishReason::Stop));
        items
    }
}

#[async_trait]
impl Provider for InstantProvider {
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
        buffer_size: usize,
    ) -> Result<ProviderStream, ProviderError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let items = self.items(context);
        let (tx, rx) = mpsc::channel(buffer_size.max(items.len()));
        for item in items {
            // The channel is sized for every item.
            let _ = tx.try_send(item);
        }
        Ok(rx)
    }
}

#[derive(Debug)]
struct Echo;

#[async_trait]
impl Tool for Echo {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "echo".into(),
            description: "Echo text".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([("text".to_owned(), JsonSchema::string())]),
                vec!["text".into()],
            ),
        }
    }

    async fn execute(&self, args: &str, _context: &ToolContext) -> Result<String, ToolError> {
        Ok(args.to_owned())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::ReadOnly
    }
}

fn runtime(delay: Duration) -> Arc<AgentRuntime> {
    let scrubber = Arc::new(Scrubber::new());
    let mut registry = ToolRegistry::new(
        scrubber.clone(),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    );
    let _ = registry.register(Arc::new(Echo));
    let model: ModelDescriptor = ModelCatalog::pinned()
        .get(ProviderType::Openai, "gpt-4.1")
        .cloned()
        .unwrap_or_else(unreachable_model);
    Arc::new(AgentRuntime::new(RuntimeParts {
        provider: Arc::new(InstantProvider {
            id: "instant".into(),
            delay,
        }),
        provider_id: "instant".into(),
        model,
        tools: Arc::new(registry),
        scrubber,
        limits: RuntimeLimits::default(),
        system_prompt: "You are a benchmark agent.".into(),
    }))
}

fn unreachable_model() -> ModelDescriptor {
    panic!("gpt-4.1 must be in the pinned catalog")
}

async fn turn(runtime: &AgentRuntime, session: &str, prompt: &str) {
    let (tx, mut rx) = mpsc::channel(256);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let result = runtime
        .run_session(
            &SessionId::new(session),
            prompt,
            &CancellationToken::new(),
            &tx,
        )
        .await;
    drop(tx);
    let _ = drain.await;
    if let Err(error) = result {
        panic!("benchmark turn failed: {error}");
    }
}

async fn measure(name: &'static str, prompt: &str, runs: usize) -> serde_json::Value {
    let runtime = runtime(Duration::ZERO);
    // Warm up: token tables, allocator.
    for i in 0..20 {
        turn(&runtime, &format!("warm-{i}"), prompt).await;
    }
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let session = format!("{name}-{i}");
        let start = Instant::now();
        turn(&runtime, &session, prompt).await;
        times.push(start.elapsed());
    }
    times.sort();
    let micros = |q: f64| percentile(&times, q).as_secs_f64() * 1e6;
    let (p50, p99) = (micros(0.5), micros(0.99));
    println!("{name:<28} {p50:>10.1} {p99:>10.1} {runs:>6}");
    serde_json::json!({"name": name, "p50_us": p50, "p99_us": p99, "runs": runs})
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

async fn concurrent_sessions(count: usize) -> serde_json::Value {
    let runtime = runtime(Duration::from_millis(200));
    let before = rss_kib("VmRSS:");
    let handles: Vec<_> = (0..count)
        .map(|i| {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                turn(&runtime, &format!("concurrent-{i}"), "use a tool please").await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = rss_kib("VmRSS:");
    for handle in handles {
        let _ = handle.await;
    }
    let per_session = during.saturating_sub(before) as f64 / count as f64;
    println!(
        "{count} concurrent sessions: RSS +{} KiB while running, {per_session:.1} KiB per session",
        during.saturating_sub(before)
    );
    serde_json::json!({"name": "concurrent_sessions", "sessions": count, "rss_delta_kib": during.saturating_sub(before), "kib_per_session": per_session})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = full_run();
    let runs = if full { 2_000 } else { 5 };
    println!(
        "{:<28} {:>10} {:>10} {:>6}",
        "turn (µs)", "p50", "p99", "runs"
    );
    let results = vec![
        measure("text_only_turn", "say something", runs).await,
        measure("turn_with_one_tool_call", "use a tool please", runs).await,
        concurrent_sessions(if full { 100 } else { 3 }).await,
    ];
    println!("{}", serde_json::Value::Array(results));
}
