//! Crash consistency: `oxydra-vm` is killed with SIGKILL at pseudo-random
//! points of streamed turns with tool calls, again and again, in the same
//! workspace. After every kill the database passes `PRAGMA
//! integrity_check` and holds every turn the client saw completed; the
//! restarted guest restores the session and a last turn completes.
//!
//! Each kill lands at a phase picked at random (after the send, after the
//! tool call, inside the streamed answer, after completion) plus a little
//! jitter, so every phase is covered whatever the machine's speed.
//! `OXYDRA_CRASH_ITERATIONS` sets the number of kills (default 8, fast
//! enough for CI; `scripts/crash-test` runs 50).

use std::collections::HashSet;
use std::time::Duration;

use channels::ClientEvent;
use memory::{LibsqlMemory, MemoryOptions, build_embedder};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use test_support::{
    Chunking, FakeLlm, Script, ScriptedReply, ScriptedToolCall, WhenExhausted, WireFormat,
};
use tokio::process::Child;
use types::protocol::gateway::{GatewayClientFrame, GatewayServerFrame};
use types::{AgentConfig, MessageRole, SessionId};

use crate::{PATIENCE, agent_config, connect, envelope, frame, spawn_vm, turn, wait_for_endpoint};

const DEFAULT_ITERATIONS: usize = 8;

/// Jitter added after a kill point is reached, below this many ms.
const MAX_JITTER_MS: u64 = 25;

fn iterations() -> usize {
    std::env::var("OXYDRA_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_ITERATIONS)
}

/// A reproducible pseudo-random sequence (xorshift; the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Where in a turn the guest is killed (then after a little jitter), so
/// the kills cover every phase whatever the machine's speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// Right after the turn was sent.
    Sent,
    /// Once the tool call finished (its result is being stored).
    ToolFinished,
    /// After this many deltas of the streamed answer.
    Streaming(usize),
    /// Once the turn completed.
    Completed,
}

impl KillPoint {
    fn pick(rng: &mut Rng) -> Self {
        match rng.below(4) {
            0 => Self::Sent,
            1 => Self::ToolFinished,
            2 => Self::Streaming(1 + usize::try_from(rng.below(30)).unwrap_or(0)),
            _ => Self::Completed,
        }
    }
}

/// Per turn: a `file_write` call, then a long answer streamed in small
/// chunks with a delay between them, unique per turn (`answer #n`).
fn script(turns: usize) -> Script {
    let mut replies = Vec::new();
    for n in 0..turns {
        let arguments = serde_json::json!({
            "path": format!("/shared/turn-{n}.txt"),
            "content": format!("written by turn {n}"),
        })
        .to_string();
        replies.push(ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
            "file_write",
            arguments,
        )]));
        let text = format!("answer #{n}: {}", "streamed words ".repeat(40));
        replies.push(
            ScriptedReply::text(text)
                .with_chunking(Chunking::Bytes(16))
                .with_chunk_delay_ms(5),
        );
    }
    Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies,
    }
}

/// Opens the guest's database the way the guest does.
async fn open_memory(workspace: &std::path::Path, config: &AgentConfig) -> LibsqlMemory {
    let embedder = build_embedder(&config.memory.embedding, None).unwrap();
    LibsqlMemory::open(
        MemoryOptions::local(workspace.join("oxydra_memory.db")),
        embedder,
    )
    .await
    .unwrap()
}

/// The database is intact and holds every acknowledged answer.
async fn check_database(
    workspace: &std::path::Path,
    config: &AgentConfig,
    session: &SessionId,
    acknowledged: &HashSet<String>,
    after: &str,
) {
    let memory = open_memory(workspace, config).await;
    assert_eq!(
        memory.integrity_check().await.unwrap(),
        "ok",
        "integrity after {after}"
    );
    let stored: HashSet<String> = memory
        .restore(session.as_str())
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == MessageRole::Assistant)
        .filter_map(|m| m.content)
        .collect();
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "after {after}: acknowledged answers missing from memory: {missing:?}"
    );
}

/// SIGKILL, and what the runner does after a crash: remove the endpoint
/// file the guest could not remove.
async fn sigkill(mut child: Child, workspace: &std::path::Path) {
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGKILL).unwrap();
    child.wait().await.unwrap();
    let _ = std::fs::remove_file(channels::endpoint_file_in(workspace));
}

#[tokio::test]
async fn sigkill_during_streamed_turns_never_loses_acknowledged_events() {
    let kills = iterations();
    let llm = FakeLlm::start_script(script(kills + 2)).await.unwrap();
    let config = agent_config(&llm);
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let bootstrap = frame(&envelope(&workspace, config.clone()));
    let seed = 0x5eed_u64 ^ u64::from(std::process::id());
    eprintln!("crash test: {kills} kills, seed {seed:#x}");
    let mut rng = Rng(seed | 1);
    let mut points = Vec::new();
    let mut session: Option<SessionId> = None;
    let mut acknowledged = HashSet::new();

    for kill_no in 0..kills {
        let mut guest = spawn_vm(home.path(), &bootstrap).await;
        let endpoint = wait_for_endpoint(&workspace, &mut guest).await;
        let (client, mut events, attached) = connect(endpoint, session.clone()).await;
        session = Some(attached);
        client
            .send_frame(GatewayClientFrame::SendTurn {
                content: format!("turn before kill {kill_no}"),
                client_turn_id: None,
            })
            .await
            .unwrap();
        let point = KillPoint::pick(&mut rng);
        let mut deltas = 0;
        let mut reached = point == KillPoint::Sent;
        while !reached {
            let event = tokio::time::timeout(PATIENCE, events.recv())
                .await
                .unwrap_or_else(|_| panic!("kill {kill_no}: {point:?} never came"))
                .expect("the client stays open while the guest runs");
            let ClientEvent::Frame(message) = event else {
                continue;
            };
            match message.frame {
                GatewayServerFrame::ApprovalRequest { request_id, .. } => {
                    let approve = GatewayClientFrame::ApprovalResponse {
                        request_id,
                        approved: true,
                    };
                    client.send_frame(approve).await.unwrap();
                }
                GatewayServerFrame::ToolCallFinished { .. } => {
                    reached = point == KillPoint::ToolFinished;
                }
                GatewayServerFrame::AssistantDelta { .. } => {
                    deltas += 1;
                    reached = point == KillPoint::Streaming(deltas);
                }
                GatewayServerFrame::TurnCompleted { final_message, .. } => {
                    acknowledged.insert(final_message);
                    // A turn shorter than the chosen point ends it too.
                    reached = true;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(MAX_JITTER_MS))).await;
        // Whatever completed during the jitter was acknowledged as well.
        while let Ok(event) = events.try_recv() {
            if let ClientEvent::Frame(message) = event
                && let GatewayServerFrame::TurnCompleted { final_message, .. } = message.frame
            {
                acknowledged.insert(final_message);
            }
        }
        points.push(point);
        sigkill(guest, &workspace).await;
        drop(client);
        check_database(
            &workspace,
            &config,
            session.as_ref().unwrap(),
            &acknowledged,
            &format!("kill {kill_no}"),
        )
        .await;
    }

    // The session restores in a fresh guest and a turn completes.
    let mut guest = spawn_vm(home.path(), &bootstrap).await;
    let endpoint = wait_for_endpoint(&workspace, &mut guest).await;
    let (client, mut events, attached) = connect(endpoint, session.clone()).await;
    assert_eq!(Some(&attached), session.as_ref(), "the session is restored");
    let started = std::time::Instant::now();
    let (reply, _) = turn(&client, &mut events, "after all the kills").await;
    eprintln!("crash test: the last turn took {:?}", started.elapsed());
    assert!(!reply.is_empty());
    acknowledged.insert(reply);
    client.shutdown().await;
    kill(
        Pid::from_raw(i32::try_from(guest.id().unwrap()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    guest.wait().await.unwrap();
    check_database(
        &workspace,
        &config,
        &attached,
        &acknowledged,
        "the clean stop",
    )
    .await;
    eprintln!(
        "crash test: {} answers acknowledged and kept across kills at {points:?}",
        acknowledged.len()
    );
}
