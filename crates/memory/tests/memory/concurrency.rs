//! Concurrent writers: separate `LibsqlMemory` instances on one file (so
//! the database's own locking is exercised, not just the in-process writer
//! lock) and many tasks on one instance.

use std::sync::Arc;

use serde_json::json;
use types::{Memory, MemoryRetrieval, MemorySummaryState, SummaryWriteOutcome};

use crate::open;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_concurrent_summary_write_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    open(&path)
        .await
        .store("s", 1, json!("seed"))
        .await
        .unwrap();
    for round in 0..3_u64 {
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..8 {
            let path = path.clone();
            tasks.spawn(async move {
                // Each writer has its own instance and connections.
                let memory = open(&path).await;
                let state = MemorySummaryState {
                    summary_text: format!("round {round} writer {writer}"),
                    upper_sequence: 1,
                    epoch: round + 1,
                };
                memory
                    .write_summary_state("s", &state, round)
                    .await
                    .unwrap()
            });
        }
        let outcomes = tasks.join_all().await;
        let applied: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, SummaryWriteOutcome::Applied { .. }))
            .collect();
        assert_eq!(applied.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(
            applied[0],
            &SummaryWriteOutcome::Applied {
                new_epoch: round + 1
            }
        );
        // Every loser saw the winner's epoch.
        for outcome in &outcomes {
            match outcome {
                SummaryWriteOutcome::Applied { new_epoch }
                | SummaryWriteOutcome::Stale {
                    current_epoch: new_epoch,
                } => {
                    assert_eq!(*new_epoch, round + 1, "{outcomes:?}");
                }
            }
        }
    }
    let memory = open(&path).await;
    assert_eq!(
        memory.read_summary_state("s").await.unwrap().unwrap().epoch,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_writers_lose_no_event() {
    const WRITERS: usize = 20;
    const EVENTS: i64 = 15;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let shared = Arc::new(open(&path).await);
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let path = path.clone();
        let shared = shared.clone();
        tasks.spawn(async move {
            // Even writers open their own instance (own connections); odd
            // ones share one instance.
            let own = if writer % 2 == 0 { Some(open(&path).await) } else { None };
            let memory: &dyn Memory = match &own {
                Some(memory) => memory,
                None => shared.as_ref(),
            };
            let session = format!("session-{writer}");
            for seq in 1..=EVENTS {
                memory
                    .store(
                        &session,
                        seq,
                        json!({"role": "user", "content": format!("writer {writer} event {seq} with some words to index")}),
                    )
                    .await
                    .unwrap();
            }
        });
    }
    tasks.join_all().await;
    let memory = open(&path).await;
    for writer in 0..WRITERS {
        let records = memory
            .recall(&format!("session-{writer}"), None)
            .await
            .unwrap();
        let sequences: Vec<i64> = records.iter().map(|r| r.sequence).collect();
        assert_eq!(
            sequences,
            (1..=EVENTS).collect::<Vec<_>>(),
            "writer {writer}"
        );
    }
    assert_eq!(memory.list_sessions().await.unwrap().len(), WRITERS);
    assert_eq!(memory.integrity_check().await.unwrap(), "ok");
}
