//! Crash safety: a child process storing events is killed with SIGKILL
//! mid-write; the database must pass `PRAGMA integrity_check`, hold every
//! event the child reported as acknowledged, and, after a restart, index
//! the acknowledged events the child's indexer had not reached.

use std::io::Write;
use std::process::Stdio;

use std::sync::Arc;
use std::time::Duration;

use memory::{LibsqlMemory, MemoryOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use types::Memory;

use crate::{SlowEmbedder, count, open};

/// Set in the child: the database to write to and the session to use.
const CHILD_DB_ENV: &str = "OXYDRA_MEMORY_CRASH_CHILD_DB";
const CHILD_SESSION_ENV: &str = "OXYDRA_MEMORY_CRASH_CHILD_SESSION";

/// A long payload, so each store writes several chunks and vectors.
fn payload(seq: i64) -> serde_json::Value {
    let text = (0..120)
        .map(|i| format!("event{seq} word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    json!({"role": "assistant", "content": text})
}

/// In the child (env set): stores events forever, printing `ACK <seq>`
/// after each store returns. Run normally, it stores a few events and
/// checks them, so the writer loop itself is tested too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_writer_child() {
    let Ok(db) = std::env::var(CHILD_DB_ENV) else {
        let dir = tempfile::tempdir().unwrap();
        let memory = open(&dir.path().join("m.db")).await;
        for seq in 1..=5 {
            memory.store("s", seq, payload(seq)).await.unwrap();
        }
        assert_eq!(memory.recall("s", None).await.unwrap().len(), 5);
        return;
    };
    let session = std::env::var(CHILD_SESSION_ENV).unwrap();
    // An indexer slower than the writer, so the kill finds acknowledged
    // events not yet indexed.
    let memory = LibsqlMemory::open(
        MemoryOptions::local(&db),
        Arc::new(SlowEmbedder(Duration::from_millis(200))),
    )
    .await
    .unwrap();
    let mut stdout = std::io::stdout();
    for seq in 1.. {
        memory.store(&session, seq, payload(seq)).await.unwrap();
        writeln!(stdout, "ACK {seq}").unwrap();
        stdout.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    // Make sure the schema exists before the first child races to it.
    drop(open(&path).await);
    let exe = std::env::current_exe().unwrap();
    for (round, kill_after) in [7_usize, 23, 41].into_iter().enumerate() {
        let session = format!("round-{round}");
        let mut child = tokio::process::Command::new(&exe)
            .args([
                "crash::crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DB_ENV, &path)
            .env(CHILD_SESSION_ENV, &session)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acknowledged = Vec::new();
        while acknowledged.len() < kill_after {
            let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
                .await
                .expect("the child stopped acknowledging")
                .unwrap()
                .expect("the child exited early");
            if let Some(seq) = line.strip_prefix("ACK ") {
                acknowledged.push(seq.parse::<i64>().unwrap());
            }
        }
        // SIGKILL while the child is in the middle of its next writes.
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success());
        // Acknowledgements already in the pipe count too.
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(seq) = line.strip_prefix("ACK ") {
                acknowledged.push(seq.parse::<i64>().unwrap());
            }
        }
        let unindexed = count(
            &path,
            &format!("SELECT count(*) FROM index_queue WHERE session_id = '{session}'"),
        )
        .await;
        assert!(
            unindexed > 0,
            "round {round}: the kill found everything indexed"
        );
        let memory = open(&path).await;
        assert_eq!(
            memory.integrity_check().await.unwrap(),
            "ok",
            "round {round}"
        );
        // The restarted indexer indexes what was acknowledged but not
        // indexed: every stored event has its chunks.
        memory.wait_indexed().await;
        assert_eq!(count(&path, "SELECT count(*) FROM index_queue").await, 0);
        let stored: Vec<i64> = memory
            .recall(&session, None)
            .await
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect();
        for seq in &acknowledged {
            assert!(
                stored.contains(seq),
                "round {round}: acknowledged event {seq} lost"
            );
        }
        // Whatever is stored is a gap-free prefix (nothing half-written).
        assert_eq!(
            stored,
            (1..=i64::try_from(stored.len()).unwrap()).collect::<Vec<_>>()
        );
        for seq in &stored {
            let chunks = count(
                &path,
                &format!(
                    "SELECT count(*) FROM chunks WHERE session_id = '{session}' AND sequence_start = {seq}"
                ),
            )
            .await;
            assert!(chunks > 0, "round {round}: event {seq} was never indexed");
        }
        // The session continues where it stopped.
        let next = stored.len() as i64 + 1;
        memory.store(&session, next, payload(next)).await.unwrap();
    }
}
