//! The whole guest under load, through its real WebSocket gateway: the
//! `oxydra-vm` binary (lexical embedder) with the fake LLM answering
//! instantly, every turn making one `file_list` call in the WASM sandbox
//! before its answer — measured with memory on and, in a second guest,
//! with `memory.enabled = false`, so memory's share is its own figure.
//!
//! - B1: one client, turns one after another: `SendTurn` → `TurnCompleted`
//!   p50/p99 and turns/s; the same for text-only turns (a third and fourth
//!   guest whose fake LLM only echoes). Before them, the fresh guest's
//!   first turn and its file call (`ToolCallStarted` → `ToolCallFinished`,
//!   which loads the WASM module the runner's `--compile-wasm` step
//!   compiled), and the RSS after the first turn and after the others.
//! - B5 / load: N clients at once (100, 500, 1,000), each on its own session
//!   running several turns: turns/s, round-trip p50/p99, errors (every turn
//!   must complete or fail loudly: a turn that never answers counts as an
//!   error), the guest's peak RSS (and its private part, `RssAnon`) and
//!   RSS per session.
//!
//! `cargo bench -p runner --bench system` measures; under `cargo test` it
//! makes one quick smoke pass. Prints a table and one JSON line.

#[path = "common/guest.rs"]
mod guest;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use channels::{ClientEvent, ClientEvents, EndpointSource, GatewayClient, GatewayClientConfig};
use guest::{Guest, envelope_frame, resident_kib, status_kib};
use serde_json::json;
use test_support::bench::{Timings, full_run};
use test_support::{FakeLlm, Script, WhenExhausted, WireFormat, openai_agent_config};
use types::UserId;
use types::protocol::gateway::{GatewayClientFrame, GatewayServerFrame};

const SEQUENTIAL_TURNS: usize = 300;
/// The guest's RSS is also read after this many sequential turns.
const RSS_SAMPLE_TURNS: usize = 100;
const LOAD_LEVELS: [usize; 3] = [100, 500, 1_000];
const TURNS_PER_CLIENT: usize = 3;
const SMOKE_TURNS: usize = 3;
const SMOKE_LEVELS: [usize; 1] = [4];
/// A turn that takes longer than this counts as dropped.
const TURN_PATIENCE: Duration = Duration::from_secs(120);

/// A client on a session of its own.
async fn client_on_new_session(workspace: &Path) -> Result<(GatewayClient, ClientEvents), String> {
    let config = GatewayClientConfig::new(
        EndpointSource::File(channels::endpoint_file_in(workspace)),
        UserId::parse("bench").expect("valid user id"),
    );
    let (client, mut events) = GatewayClient::connect(config)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let first = client.session_id();
    client
        .send_frame(GatewayClientFrame::NewSession)
        .await
        .map_err(|e| format!("new session: {e}"))?;
    loop {
        match tokio::time::timeout(TURN_PATIENCE, events.recv()).await {
            Ok(Some(ClientEvent::Frame(message))) => match message.frame {
                GatewayServerFrame::HelloAck {
                    runtime_session_id, ..
                } if Some(&runtime_session_id) != first.as_ref() => {
                    return Ok((client, events));
                }
                GatewayServerFrame::Error { message, .. } => return Err(message),
                _ => {}
            },
            Ok(Some(_)) => {}
            Ok(None) => return Err("the connection closed".into()),
            Err(_) => return Err("no new session in time".into()),
        }
    }
}

/// What the client saw of one turn.
#[derive(Debug, Clone, Copy)]
struct Turn {
    round_trip: Duration,
    /// `ToolCallStarted` → `ToolCallFinished` of its file call.
    file_call: Option<Duration>,
}

/// One turn: its timings, or why it failed.
async fn one_turn(
    client: &GatewayClient,
    events: &mut ClientEvents,
    text: &str,
    with_tool: bool,
) -> Result<Turn, String> {
    let started = Instant::now();
    let mut call_started = None;
    let mut file_call = None;
    client
        .send_frame(GatewayClientFrame::SendTurn {
            content: text.to_owned(),
            client_turn_id: None,
        })
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut tool_ran = false;
    loop {
        let event = tokio::time::timeout(TURN_PATIENCE, events.recv())
            .await
            .map_err(|_| format!("dropped: no answer within {TURN_PATIENCE:?}"))?
            .ok_or("the connection closed")?;
        let ClientEvent::Frame(message) = event else {
            continue;
        };
        match message.frame {
            GatewayServerFrame::ToolCallStarted { .. } => call_started = Some(Instant::now()),
            GatewayServerFrame::ToolCallFinished { ok, name, .. } => {
                if !ok {
                    return Err(format!("tool {name} failed"));
                }
                file_call = call_started.map(|at| at.elapsed());
                tool_ran = true;
            }
            GatewayServerFrame::TurnCompleted { final_message, .. } => {
                if tool_ran != with_tool || !final_message.contains(text) {
                    return Err(format!("wrong turn: {final_message:?}"));
                }
                return Ok(Turn {
                    round_trip: started.elapsed(),
                    file_call,
                });
            }
            GatewayServerFrame::Error { message, .. } => return Err(message),
            _ => {}
        }
    }
}

/// The results of one load level.
#[derive(Debug)]
struct Level {
    clients: usize,
    turns: usize,
    errors: Vec<String>,
    round_trips: Option<Timings>,
    wall: Duration,
    peak_rss_kib: u64,
    peak_anon_kib: u64,
}

async fn load_level(workspace: &Path, pid: u32, clients: usize) -> Level {
    let peak = Arc::new(AtomicU64::new(resident_kib(pid)));
    let peak_anon = Arc::new(AtomicU64::new(status_kib(pid, "RssAnon:")));
    let sampler = {
        let (peak, peak_anon) = (Arc::clone(&peak), Arc::clone(&peak_anon));
        tokio::spawn(async move {
            loop {
                peak.fetch_max(resident_kib(pid), Ordering::Relaxed);
                peak_anon.fetch_max(status_kib(pid, "RssAnon:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let workspace = workspace.to_owned();
        tasks.spawn(async move {
            let mut results = Vec::new();
            match client_on_new_session(&workspace).await {
                Ok((client, mut events)) => {
                    for t in 0..TURNS_PER_CLIENT {
                        let text = format!("client {c} turn {t}");
                        results.push(
                            one_turn(&client, &mut events, &text, true)
                                .await
                                .map(|turn| turn.round_trip),
                        );
                    }
                    client.shutdown().await;
                }
                Err(error) => results.push(Err(error)),
            }
            results
        });
    }
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        for result in joined.expect("client task") {
            match result {
                Ok(took) => samples.push(took),
                Err(error) => errors.push(error),
            }
        }
    }
    let wall = started.elapsed();
    sampler.abort();
    let turns = samples.len();
    Level {
        clients,
        turns,
        errors,
        round_trips: (!samples.is_empty()).then(|| Timings::of(samples)),
        wall,
        peak_rss_kib: peak.load(Ordering::Relaxed),
        peak_anon_kib: peak_anon.load(Ordering::Relaxed),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Turns one after another on one client.
struct Sequential {
    turns: usize,
    timings: Timings,
    wall: Duration,
}

impl Sequential {
    fn rate(&self) -> f64 {
        self.turns as f64 / self.wall.as_secs_f64()
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "turns": self.turns,
            "round_trip_ms": {"p50": ms(self.timings.p50), "p99": ms(self.timings.p99)},
            "turns_per_sec": self.rate(),
        })
    }
}

/// Everything measured on one guest.
struct GuestRun {
    memory: bool,
    first_turn: Turn,
    idle_rss_kib: u64,
    /// After the sequential turns.
    /// After `RSS_SAMPLE_TURNS` of the sequential turns (when there are
    /// that many).
    rss_after_sample_kib: Option<u64>,
    rss_after_turns_kib: u64,
    sequential: Sequential,
    load: Vec<Level>,
}

/// Starts a guest (memory on or off) answered by `llm`, warms it up with
/// one turn, times `turns` sequential turns, then runs each load level.
async fn measure(
    llm: &FakeLlm,
    memory: bool,
    with_tool: bool,
    turns: usize,
    levels: &[usize],
) -> GuestRun {
    let home = tempfile::tempdir().expect("temporary directory");
    let workspace = home.path().join("bench");
    let mut config = openai_agent_config(llm.base_url());
    config.gateway.max_connections = 2 * LOAD_LEVELS[2];
    config.memory.enabled = memory;
    Guest::compile_ahead(home.path());
    let guest = Guest::start(home.path(), &envelope_frame(&workspace, config));
    let pid = guest.pid();
    // The first turn sets up the WASM sandbox (loading the module the
    // runner's `--compile-wasm` step compiled) and is not timed with the
    // others.
    let (client, mut events) = client_on_new_session(&workspace)
        .await
        .expect("first client");
    let first_turn = one_turn(&client, &mut events, "warm up", with_tool)
        .await
        .expect("warm-up turn");
    let idle_rss_kib = resident_kib(pid);
    let started = Instant::now();
    let mut sequential = Vec::with_capacity(turns);
    let mut rss_after_sample_kib = None;
    for t in 0..turns {
        let took = one_turn(
            &client,
            &mut events,
            &format!("sequential turn {t}"),
            with_tool,
        )
        .await
        .expect("a sequential turn completes");
        sequential.push(took.round_trip);
        if t + 1 == RSS_SAMPLE_TURNS {
            rss_after_sample_kib = Some(resident_kib(pid));
        }
    }
    let wall = started.elapsed();
    let rss_after_turns_kib = resident_kib(pid);
    client.shutdown().await;
    let mut load = Vec::new();
    for &clients in levels {
        load.push(load_level(&workspace, pid, clients).await);
    }
    guest.stop();
    GuestRun {
        memory,
        first_turn,
        idle_rss_kib,
        rss_after_sample_kib,
        rss_after_turns_kib,
        sequential: Sequential {
            turns,
            timings: Timings::of(sequential),
            wall,
        },
        load,
    }
}

fn memory_label(on: bool) -> &'static str {
    if on { "memory on" } else { "memory off" }
}

#[tokio::main]
async fn main() {
    let full = full_run();
    let script = |when_exhausted| Script {
        format: WireFormat::Openai,
        when_exhausted,
        replies: Vec::new(),
    };
    let file_llm = FakeLlm::start_script(script(WhenExhausted::ToolThenEcho))
        .await
        .expect("fake LLM starts");
    let text_llm = FakeLlm::start_script(script(WhenExhausted::Echo))
        .await
        .expect("fake LLM starts");
    let turns = if full { SEQUENTIAL_TURNS } else { SMOKE_TURNS };
    let levels: &[usize] = if full { &LOAD_LEVELS } else { &SMOKE_LEVELS };
    let mut file_runs = Vec::new();
    let mut text_runs = Vec::new();
    for memory in [true, false] {
        file_runs.push(measure(&file_llm, memory, true, turns, levels).await);
        text_runs.push(measure(&text_llm, memory, false, turns, &[]).await);
    }

    println!(
        "whole guest through the gateway (fake LLM answering instantly){}",
        if full { "" } else { " (smoke pass)" }
    );
    for (kind, runs) in [("file call", &file_runs), ("text", &text_runs)] {
        for run in runs.iter() {
            println!(
                "  B1 {kind} turns, {:<10}: {} turns  p50 {:>7.2} ms  p99 {:>7.2} ms  {:>6.0} turns/s",
                memory_label(run.memory),
                run.sequential.turns,
                ms(run.sequential.timings.p50),
                ms(run.sequential.timings.p99),
                run.sequential.rate()
            );
        }
        println!(
            "  B1 {kind} turns, memory on / off: p50 {:.2}x",
            runs[0].sequential.timings.p50.as_secs_f64()
                / runs[1].sequential.timings.p50.as_secs_f64()
        );
    }
    for run in &file_runs {
        println!(
            "  {}: first turn {:.1} ms, its file call (loads the compiled WASM guest) {:.1} ms; \
             RSS after it {:.1} MiB, after {RSS_SAMPLE_TURNS} more turns {:.1} MiB, \
             after {} {:.1} MiB",
            memory_label(run.memory),
            ms(run.first_turn.round_trip),
            run.first_turn.file_call.map_or(f64::NAN, ms),
            run.idle_rss_kib as f64 / 1024.0,
            run.rss_after_sample_kib
                .map_or(f64::NAN, |kib| kib as f64 / 1024.0),
            run.sequential.turns,
            run.rss_after_turns_kib as f64 / 1024.0
        );
    }
    println!(
        "  {:>10} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "memory",
        "clients",
        "turns",
        "errors",
        "turns/s",
        "p50 ms",
        "p99 ms",
        "peak MiB",
        "KiB/sess",
        "anon MiB"
    );
    let mut json_runs = Vec::new();
    for run in &file_runs {
        let mut json_levels = Vec::new();
        for level in &run.load {
            let (p50, p99) = level
                .round_trips
                .map_or((f64::NAN, f64::NAN), |t| (ms(t.p50), ms(t.p99)));
            let per_session =
                level.peak_rss_kib.saturating_sub(run.idle_rss_kib) as f64 / level.clients as f64;
            let rate = level.turns as f64 / level.wall.as_secs_f64();
            println!(
                "  {:>10} {:>7} {:>7} {:>7} {:>9.0} {:>9.2} {:>9.2} {:>10.1} {:>10.1} {:>10.1}",
                memory_label(run.memory),
                level.clients,
                level.turns,
                level.errors.len(),
                rate,
                p50,
                p99,
                level.peak_rss_kib as f64 / 1024.0,
                per_session,
                level.peak_anon_kib as f64 / 1024.0
            );
            for error in level.errors.iter().take(5) {
                println!("    error: {error}");
            }
            json_levels.push(json!({
                "clients": level.clients,
                "turns": level.turns,
                "errors": level.errors.len(),
                "turns_per_sec": rate,
                "round_trip_ms": {"p50": p50, "p99": p99},
                "peak_rss_mib": level.peak_rss_kib as f64 / 1024.0,
                "peak_anon_rss_mib": level.peak_anon_kib as f64 / 1024.0,
                "rss_per_session_kib": per_session,
            }));
        }
        json_runs.push(json!({
            "memory": run.memory,
            "b1": run.sequential.json(),
            "first_turn_ms": ms(run.first_turn.round_trip),
            "first_file_call_ms": run.first_turn.file_call.map(ms),
            "idle_rss_mib": run.idle_rss_kib as f64 / 1024.0,
            "rss_after_100_turns_mib": run.rss_after_sample_kib.map(|kib| kib as f64 / 1024.0),
            "rss_after_turns_mib": run.rss_after_turns_kib as f64 / 1024.0,
            "load": json_levels,
        }));
    }
    let text_json: Vec<_> = text_runs
        .iter()
        .map(|run| json!({"memory": run.memory, "b1": run.sequential.json()}))
        .collect();
    println!(
        "{}",
        json!({
            "bench": "system",
            "smoke": !full,
            "file_call_turns": json_runs,
            "text_turns": text_json,
        })
    );
    let failed: usize = file_runs
        .iter()
        .flat_map(|run| &run.load)
        .map(|level| level.errors.len())
        .sum();
    assert_eq!(failed, 0, "every turn must complete");
}
