//! The append path and the background indexer: a store returns once the
//! event is durable, indexing follows off the turn path, a burst of
//! writes is held back by the indexer's backlog limit instead of growing
//! a queue, and nothing stored is lost on the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memory::{LibsqlMemory, MemoryOptions};
use serde_json::json;
use types::config::IndexingConfig;
use types::{Memory, MemoryRetrieval};

use crate::{SlowEmbedder, count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_returns_before_indexing_and_retrieval_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = LibsqlMemory::open(
        MemoryOptions::local(&path),
        Arc::new(SlowEmbedder(Duration::from_millis(300))),
    )
    .await
    .unwrap();
    memory
        .store(
            "s",
            1,
            json!({"role": "user", "content": "the vault key is under the doormat"}),
        )
        .await
        .unwrap();
    // Durable and restorable at once; indexed a little later.
    assert_eq!(memory.recall("s", None).await.unwrap().len(), 1);
    assert_eq!(count(&path, "SELECT count(*) FROM index_queue").await, 1);
    assert_eq!(count(&path, "SELECT count(*) FROM chunks").await, 0);
    // Events without text are stored but never queued.
    memory
        .store("s", 2, json!({"role": "assistant"}))
        .await
        .unwrap();
    assert_eq!(count(&path, "SELECT count(*) FROM index_queue").await, 1);

    memory.wait_indexed().await;
    assert_eq!(memory.index_backlog(), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM index_queue").await, 0);
    let hits = memory
        .hybrid_query("s", "where is the vault key", 1)
        .await
        .unwrap();
    assert_eq!(hits[0].text, "the vault key is under the doormat");
    assert!(hits[0].vector_score > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_burst_waits_for_the_indexer_and_loses_nothing() {
    const SESSIONS: usize = 10;
    const EVENTS: i64 = 20;
    const MAX_BACKLOG: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut options = MemoryOptions::local(&path);
    options.indexing = IndexingConfig {
        max_backlog: MAX_BACKLOG,
        batch_events: 4,
    };
    let memory = Arc::new(
        LibsqlMemory::open(options, Arc::new(SlowEmbedder(Duration::from_millis(20))))
            .await
            .unwrap(),
    );
    // Watch the queue while the burst runs: it never outgrows the limit.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (memory, done, path) = (Arc::clone(&memory), Arc::clone(&done), path.clone());
        async move {
            let mut largest = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let queued = count(&path, "SELECT count(*) FROM index_queue").await;
                largest = (largest.0.max(queued), largest.1.max(memory.index_backlog()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            largest
        }
    });
    let mut writers = tokio::task::JoinSet::new();
    for session in 0..SESSIONS {
        let memory = Arc::clone(&memory);
        writers.spawn(async move {
            for seq in 1..=EVENTS {
                memory
                    .store(
                        &format!("burst-{session}"),
                        seq,
                        json!({"role": "user", "content": format!("burst {session} message {seq} zebra{seq}")}),
                    )
                    .await
                    .unwrap();
            }
        });
    }
    writers.join_all().await;
    done.store(true, Ordering::Relaxed);
    let (largest_queue, largest_backlog) = watcher.await.unwrap();
    assert!(
        largest_queue <= MAX_BACKLOG as i64 && largest_backlog <= MAX_BACKLOG,
        "queue {largest_queue}, backlog {largest_backlog}, limit {MAX_BACKLOG}"
    );
    assert!(
        largest_backlog > 0,
        "the burst never got ahead of the indexer"
    );

    memory.wait_indexed().await;
    assert_eq!(count(&path, "SELECT count(*) FROM index_queue").await, 0);
    for session in 0..SESSIONS {
        let id = format!("burst-{session}");
        let sequences: Vec<i64> = memory
            .recall(&id, None)
            .await
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect();
        assert_eq!(sequences, (1..=EVENTS).collect::<Vec<_>>());
        let indexed = count(
            &path,
            &format!("SELECT count(DISTINCT sequence_start) FROM chunks WHERE session_id = '{id}'"),
        )
        .await;
        assert_eq!(indexed, EVENTS, "{id}");
    }
    assert_eq!(memory.integrity_check().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_share_a_commit_and_a_refused_one_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = Arc::new(crate::open(&path).await);
    memory.store("s", 5, json!("five")).await.unwrap();
    let mut stores = tokio::task::JoinSet::new();
    for (session, seq) in [("s", 3), ("a", 1), ("b", 1), ("s", 6), ("c", 1)] {
        let memory = Arc::clone(&memory);
        stores.spawn(async move { (session, seq, memory.store(session, seq, json!("x")).await) });
    }
    for (session, seq, result) in stores.join_all().await {
        match (session, seq) {
            ("s", 3) => assert!(
                result.unwrap_err().to_string().contains("sequence"),
                "the stale sequence is refused"
            ),
            _ => result.unwrap(),
        }
    }
    for session in ["a", "b", "c"] {
        assert_eq!(memory.recall(session, None).await.unwrap().len(), 1);
    }
    let sequences: Vec<i64> = memory
        .recall("s", None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(sequences, [5, 6]);
}
