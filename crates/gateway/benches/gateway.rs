//! Gateway benchmarks (spec 09 B1 and B5, issue 8):
//!
//! - turn round trip over a real WebSocket, `SendTurn` → `TurnCompleted`,
//!   with an instant in-process provider (the gateway's and runtime's own
//!   cost) and with the fake LLM server over HTTP (adds the provider's
//!   HTTP/SSE path);
//! - how many sessions one gateway holds with a turn streaming in each at
//!   once, errors, and the RSS each one costs (client sockets included);
//! - thousands of conversations one after another, each left idle: the
//!   gateway unloads them and the runtime releases their history, so RSS
//!   stays bounded (memory on a real libSQL file).
//!
//! `cargo bench -p gateway --bench gateway`; under `cargo test` (no
//! `--bench` argument) one quick pass only.

use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::bench::{full_run, percentile};

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use gateway::{
    Gateway, GatewayApprovalGate, GatewayLimits, GatewayParts, InMemorySessionDirectory,
    LOCALHOST_ANY_PORT, RunningGateway, generate_token,
};
use memory::{LexicalEmbedder, LibsqlMemory, MemoryOptions};
use runtime::{AgentRuntime, MemoryParts, RuntimeLimits, RuntimeParts};
use sandbox::scrub::Scrubber;
use serde::Serialize;
use test_support::{FakeLlm, Script, WhenExhausted, WireFormat};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tools::ToolRegistry;
use types::config::ProviderEntry;
use types::protocol::bootstrap::ApprovalPolicy;
use types::protocol::gateway::{GatewayClientFrame, GatewayServerFrame, GatewayServerMessage};
use types::runner::SandboxTier;
use types::{
    Context, FinishReason, ModelCatalog, ModelDescriptor, ModelId, Provider, ProviderCaps,
    ProviderError, ProviderId, ProviderStream, ProviderType, Response, SecretString, StreamItem,
    UsageUpdate, UserId,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Streams a fixed answer, word by word, `pause` apart (zero: at once).
struct ScriptedProvider {
    id: ProviderId,
    words: usize,
    pause: Duration,
}

#[async_trait]
impl Provider for ScriptedProvider {
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
        _context: &Context,
        buffer_size: usize,
    ) -> Result<ProviderStream, ProviderError> {
        let mut items: Vec<StreamItem> = (0..self.words)
            .map(|n| StreamItem::Text(format!("word{n} ")))
            .collect();
        items.push(StreamItem::UsageUpdate(UsageUpdate::new(100, 10)));
        items.push(StreamItem::FinishReason(FinishReason::Stop));
        let (tx, rx) = mpsc::channel(buffer_size.max(items.len()));
        let pause = self.pause;
        if pause.is_zero() {
            for item in items {
                // The channel is sized for every item.
                let _ = tx.try_send(item);
            }
        } else {
            tokio::spawn(async move {
                for item in items {
                    tokio::time::sleep(pause).await;
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(rx)
    }
}

fn model() -> ModelDescriptor {
    match ModelCatalog::pinned().get(ProviderType::Openai, "gpt-4.1") {
        Some(model) => model.clone(),
        None => panic!("gpt-4.1 must be in the pinned catalog"),
    }
}

fn runtime(provider: Arc<dyn Provider>) -> Arc<AgentRuntime> {
    Arc::new(agent(provider))
}

fn agent(provider: Arc<dyn Provider>) -> AgentRuntime {
    let scrubber = Arc::new(Scrubber::new());
    let registry = ToolRegistry::new(
        scrubber.clone(),
        GatewayApprovalGate::new(ApprovalPolicy::Ask),
    );
    AgentRuntime::new(RuntimeParts {
        provider,
        provider_id: "bench".into(),
        model: model(),
        tools: Arc::new(registry),
        scrubber,
        limits: RuntimeLimits::default(),
        system_prompt: "You are a benchmark agent.".into(),
    })
}

async fn start(runtime: Arc<AgentRuntime>, max_connections: usize) -> RunningGateway {
    start_with(
        runtime,
        GatewayLimits {
            max_connections,
            ..GatewayLimits::default()
        },
    )
    .await
}

async fn start_with(runtime: Arc<AgentRuntime>, limits: GatewayLimits) -> RunningGateway {
    let gateway = Gateway::new(GatewayParts {
        runtime,
        tier: SandboxTier::Process,
        degraded_reasons: Vec::new(),
        model: model().id,
        token: generate_token(),
        directory: Arc::new(InMemorySessionDirectory::new()),
        limits,
    });
    match gateway {
        Ok(gateway) => match gateway.start(LOCALHOST_ANY_PORT).await {
            Ok(running) => running,
            Err(error) => panic!("gateway did not start: {error}"),
        },
        Err(error) => panic!("gateway parts rejected: {error}"),
    }
}

async fn send(ws: &mut Ws, frame: &GatewayClientFrame) -> anyhow::Result<()> {
    ws.send(Message::text(serde_json::to_string(frame)?))
        .await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> anyhow::Result<GatewayServerMessage> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str())?),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(other)) => anyhow::bail!("unexpected message {other:?}"),
            Some(Err(error)) => return Err(error.into()),
            None => anyhow::bail!("connection closed"),
        }
    }
}

/// Connects and attaches as `user`.
async fn attach(running: &RunningGateway, user: &str) -> anyhow::Result<Ws> {
    let endpoint = running.endpoint();
    // The client's buffers are sized like the server's, so the memory per
    // session is not dominated by the client's 128 KiB default.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(endpoint.url.as_str(), Some(config), true)
            .await?;
    send(
        &mut ws,
        &GatewayClientFrame::Hello {
            user_id: UserId::parse(user)?,
            session_id: None,
            token: endpoint.token.clone(),
            resume_from: None,
            new_session: false,
        },
    )
    .await?;
    match recv(&mut ws).await?.frame {
        GatewayServerFrame::HelloAck { .. } => Ok(ws),
        other => anyhow::bail!("expected hello ack, got {other:?}"),
    }
}

/// Sends a turn and reads until it ends; the number of deltas seen.
async fn round_trip(ws: &mut Ws, prompt: &str) -> anyhow::Result<usize> {
    send(
        ws,
        &GatewayClientFrame::SendTurn {
            content: prompt.into(),
            client_turn_id: None,
        },
    )
    .await?;
    let mut deltas = 0;
    loop {
        match recv(ws).await?.frame {
            GatewayServerFrame::AssistantDelta { .. } => deltas += 1,
            GatewayServerFrame::TurnCompleted { .. } => return Ok(deltas),
            frame if frame.is_turn_terminal() => anyhow::bail!("turn failed: {frame:?}"),
            _ => {}
        }
    }
}

#[derive(Debug, Serialize)]
struct LatencyResult {
    name: &'static str,
    p50_us: f64,
    p99_us: f64,
    turns_per_sec: f64,
    runs: usize,
}

#[derive(Debug, Serialize)]
struct ConcurrencyResult {
    name: &'static str,
    sessions: usize,
    streaming_at_once: usize,
    errors: usize,
    rss_before_kib: u64,
    rss_streaming_kib: u64,
    kib_per_session: f64,
    wall_secs: f64,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum BenchResult {
    Latency(LatencyResult),
    Concurrency(ConcurrencyResult),
    Released(ReleaseResult),
}

#[derive(Debug, Serialize)]
struct ReleaseResult {
    name: &'static str,
    sessions: usize,
    /// Sessions whose history the runtime still held at the end.
    cached_at_end: usize,
    /// The history one session held: its prompt and answer.
    history_bytes: usize,
    /// Anonymous memory (`RssAnon`: heap and stacks, not the memory-mapped
    /// database file, whose pages the kernel reclaims at will).
    anon_before_kib: u64,
    anon_after_kib: u64,
    anon_kib_per_session: f64,
    database_kib: u64,
}

/// `count` conversations one after another, each a turn with a 4 KiB
/// prompt on a new connection and session, then left. With `unload`, the
/// gateway unloads each after `idle_session` (50 ms) and the runtime drops
/// its history; without, every session stays loaded (the comparison).
/// Memory is a real libSQL file, so the history stays restorable.
async fn released(count: usize, unload: bool) -> anyhow::Result<ReleaseResult> {
    let dir = tempfile::tempdir()?;
    let memory = Arc::new(
        LibsqlMemory::open(
            MemoryOptions::local(dir.path().join("memory.db")),
            Arc::new(LexicalEmbedder::new()),
        )
        .await?,
    );
    let provider = Arc::new(ScriptedProvider {
        id: "instant".into(),
        words: 200,
        pause: Duration::ZERO,
    });
    let runtime = Arc::new(agent(provider).with_memory(MemoryParts {
        memory: memory.clone(),
        retrieval: None,
        max_results: 0,
    }));
    let idle = Duration::from_millis(50);
    let running = start_with(
        runtime.clone(),
        GatewayLimits {
            idle_session: if unload {
                idle
            } else {
                Duration::from_secs(3600)
            },
            ..GatewayLimits::default()
        },
    )
    .await;
    let prompt = "a long prompt with many words ".repeat(140);
    let mut warm = attach(&running, "warm").await?;
    round_trip(&mut warm, &prompt).await?;
    warm.close(None).await?;
    tokio::time::sleep(idle * 4).await;
    let anon_before = status_kib("RssAnon:");
    let started = Instant::now();
    for n in 0..count {
        let mut ws = attach(&running, &format!("user{n}")).await?;
        round_trip(&mut ws, &prompt).await?;
        ws.close(None).await?;
    }
    // Every session is idle now: the sweeper checks four times per
    // `idle_session`.
    tokio::time::sleep(idle * 4).await;
    let anon_after = status_kib("RssAnon:");
    let cached_at_end = runtime.cached_sessions();
    running.shutdown().await?;
    // The database file and its write-ahead log.
    let mut database = 0;
    for entry in std::fs::read_dir(dir.path())? {
        database += entry?.metadata()?.len();
    }
    let result = ReleaseResult {
        name: if unload {
            "idle_sessions_released"
        } else {
            "idle_sessions_kept"
        },
        sessions: count,
        cached_at_end,
        history_bytes: prompt.len() + (0..200).map(|n| format!("word{n} ").len()).sum::<usize>(),
        anon_before_kib: anon_before,
        anon_after_kib: anon_after,
        anon_kib_per_session: anon_after.saturating_sub(anon_before) as f64 / count.max(1) as f64,
        database_kib: database / 1024,
    };
    println!(
        "{count} conversations left idle, {} ({:.1} s): {} still cached, anonymous RSS {} → {} KiB ({:.2} KiB per session; each held {} B of history; database {} KiB)",
        if unload { "unloaded" } else { "kept loaded" },
        started.elapsed().as_secs_f64(),
        result.cached_at_end,
        result.anon_before_kib,
        result.anon_after_kib,
        result.anon_kib_per_session,
        result.history_bytes,
        result.database_kib
    );
    Ok(result)
}

/// Sequential round trips on one connection (a session grows by one
/// exchange per turn, as in a real conversation; a fresh session every
/// 100 turns keeps the history short).
async fn latency(
    name: &'static str,
    provider: Arc<dyn Provider>,
    runs: usize,
) -> anyhow::Result<LatencyResult> {
    let running = start(runtime(provider), 16).await;
    let mut ws = attach(&running, "bench").await?;
    for _ in 0..20 {
        round_trip(&mut ws, "warm up").await?;
    }
    let mut times = Vec::with_capacity(runs);
    let all = Instant::now();
    for i in 0..runs {
        if i % 100 == 0 {
            send(&mut ws, &GatewayClientFrame::NewSession).await?;
            recv(&mut ws).await?;
        }
        let start = Instant::now();
        round_trip(&mut ws, "say something").await?;
        times.push(start.elapsed());
    }
    let total = all.elapsed().as_secs_f64();
    times.sort();
    running.shutdown().await?;
    let result = LatencyResult {
        name,
        p50_us: percentile(&times, 0.5).as_secs_f64() * 1e6,
        p99_us: percentile(&times, 0.99).as_secs_f64() * 1e6,
        turns_per_sec: runs as f64 / total,
        runs,
    };
    println!(
        "{:<34} {:>9.0} {:>9.0} {:>9.0} {:>6}",
        result.name, result.p50_us, result.p99_us, result.turns_per_sec, result.runs
    );
    Ok(result)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// A `/proc/self/status` figure in KiB (`VmRSS:`, `RssAnon:`), 0 if absent.
fn status_kib(field: &str) -> u64 {
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

/// `count` clients, each its own user and session, all with a turn
/// streaming at the same moment (20 words, 100 ms apart).
async fn concurrent(count: usize) -> anyhow::Result<ConcurrencyResult> {
    let provider = Arc::new(ScriptedProvider {
        id: "slow".into(),
        words: 20,
        pause: Duration::from_millis(100),
    });
    let running = Arc::new(start(runtime(provider), count + 8).await);
    let rss_before = rss_kib();
    let started = Instant::now();
    let (first_delta_tx, mut first_delta_rx) = mpsc::channel::<()>(count);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..count {
        let running = Arc::clone(&running);
        let first_delta = first_delta_tx.clone();
        clients.spawn(async move {
            let mut ws = attach(&running, &format!("user{i}")).await?;
            send(
                &mut ws,
                &GatewayClientFrame::SendTurn {
                    content: "stream please".into(),
                    client_turn_id: None,
                },
            )
            .await?;
            let mut announced = false;
            loop {
                match recv(&mut ws).await?.frame {
                    GatewayServerFrame::AssistantDelta { .. } if !announced => {
                        announced = true;
                        let _ = first_delta.send(()).await;
                    }
                    GatewayServerFrame::TurnCompleted { .. } => return anyhow::Ok(ws),
                    frame if frame.is_turn_terminal() => anyhow::bail!("turn failed: {frame:?}"),
                    _ => {}
                }
            }
        });
    }
    drop(first_delta_tx);
    // Every session streaming at once: each has seen its first delta, and
    // none can finish before ~2 s.
    let mut streaming = 0;
    let mut rss_streaming = 0;
    while first_delta_rx.recv().await.is_some() {
        streaming += 1;
        rss_streaming = rss_streaming.max(rss_kib());
        if streaming == count {
            break;
        }
    }
    let mut errors = 0;
    let mut sockets = Vec::with_capacity(count);
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(Ok(ws)) => sockets.push(ws),
            Ok(Err(error)) => {
                errors += 1;
                eprintln!("session failed: {error}");
            }
            Err(error) => {
                errors += 1;
                eprintln!("client task failed: {error}");
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    drop(sockets);
    let held = Arc::try_unwrap(running).map_err(|_| anyhow::anyhow!("gateway still shared"))?;
    held.shutdown().await?;
    let delta = rss_streaming.saturating_sub(rss_before);
    let result = ConcurrencyResult {
        name: "concurrent_streaming_sessions",
        sessions: count,
        streaming_at_once: streaming,
        errors,
        rss_before_kib: rss_before,
        rss_streaming_kib: rss_streaming,
        kib_per_session: delta as f64 / count as f64,
        wall_secs: wall,
    };
    println!(
        "{count} sessions: {streaming} streaming at once, {errors} errors, RSS +{delta} KiB \
         ({:.1} KiB per session, client side included), {wall:.1} s",
        result.kib_per_session
    );
    Ok(result)
}

async fn run(full: bool) -> anyhow::Result<Vec<BenchResult>> {
    // First, while the process is small: memory freed by the other runs
    // would otherwise be reused and hide what the sessions cost. The
    // comparison, every session kept loaded, runs last for the same reason.
    let idle_sessions = if full { 5_000 } else { 5 };
    let mut results = vec![BenchResult::Released(released(idle_sessions, true).await?)];
    results.push(BenchResult::Concurrency(
        concurrent(if full { 1_000 } else { 4 }).await?,
    ));
    let runs = if full { 2_000 } else { 5 };
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>6}",
        "SendTurn → TurnCompleted (µs)", "p50", "p99", "turns/s", "runs"
    );
    let instant = Arc::new(ScriptedProvider {
        id: "instant".into(),
        words: 8,
        pause: Duration::ZERO,
    });
    results.push(BenchResult::Latency(
        latency("ws_round_trip_instant_provider", instant, runs).await?,
    ));

    let llm = FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: Vec::new(),
    })
    .await?;
    let mut entry = ProviderEntry::new(ProviderType::Openai);
    entry.base_url = Some(llm.base_url());
    let http = provider::build_provider(
        "fake",
        &entry,
        ModelCatalog::pinned(),
        Some(&SecretString::new("k")),
    )?;
    results.push(BenchResult::Latency(
        latency("ws_round_trip_fake_llm_http", http, runs).await?,
    ));
    drop(llm);
    results.push(BenchResult::Released(released(idle_sessions, false).await?));

    Ok(results)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let full = full_run();
    let results = run(full).await?;
    println!("{}", serde_json::to_string(&results)?);
    Ok(())
}
