//! Store, recall, forget, restore and list, across closing and reopening.

use serde_json::json;
use types::{Memory, MemoryError, MemoryRetrieval, MemorySummaryState, Message};

use crate::{assert_fts_matches_chunks, count, open};

#[tokio::test]
async fn events_survive_reopening_and_forget_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/memory.db");
    {
        let memory = open(&path).await;
        for (seq, text) in [(1, "first"), (2, "second"), (5, "fifth")] {
            memory
                .store("s1", seq, json!({"role": "user", "content": text}))
                .await
                .unwrap();
        }
        memory.store("s2", 1, json!("other session")).await.unwrap();
    }
    let memory = open(&path).await;
    let records = memory.recall("s1", None).await.unwrap();
    let sequences: Vec<i64> = records.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, [1, 2, 5]);
    assert_eq!(records[2].payload["content"], "fifth");
    let newest = memory.recall("s1", Some(2)).await.unwrap();
    assert_eq!(
        newest.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [2, 5]
    );
    assert!(memory.recall("nobody", None).await.unwrap().is_empty());
    // The next sequence continues after the stored one.
    memory.store("s1", 6, json!("sixth")).await.unwrap();

    memory.forget("s1").await.unwrap();
    memory.forget("never-existed").await.unwrap();
    drop(memory);
    let memory = open(&path).await;
    assert!(memory.recall("s1", None).await.unwrap().is_empty());
    assert_eq!(memory.recall("s2", None).await.unwrap().len(), 1);
    // A forgotten session starts again from sequence 1.
    memory.store("s1", 1, json!("again")).await.unwrap();
    assert_eq!(memory.integrity_check().await.unwrap(), "ok");
}

#[tokio::test]
async fn a_sequence_not_after_the_last_is_rejected_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    memory.store("s", 3, json!("three")).await.unwrap();
    for bad in [3, 2, 0, -1] {
        let err = memory.store("s", bad, json!("bad")).await.unwrap_err();
        assert_eq!(
            err,
            MemoryError::NonMonotonicSequence {
                session_id: "s".into(),
                sequence: bad,
                last_sequence: 3
            }
        );
    }
    assert_eq!(
        memory
            .store("s", 3, json!("x"))
            .await
            .unwrap_err()
            .to_string(),
        "sequence 3 for session 's' is not after the last stored sequence 3"
    );
    let records = memory.recall("s", None).await.unwrap();
    assert_eq!(records.len(), 1);
    // The rejected event's text was not indexed either.
    assert!(
        memory
            .hybrid_query("s", "bad", 5)
            .await
            .unwrap()
            .iter()
            .all(|r| r.text != "bad")
    );
    assert!(memory.store("", 1, json!("x")).await.is_err());
    memory.store("s", 4, json!("four")).await.unwrap();
}

#[tokio::test]
async fn forget_cascades_to_every_dependent_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    for session in ["doomed", "kept"] {
        memory
            .store(
                session,
                1,
                json!({"role": "user", "content": format!("{session} alpha beta")}),
            )
            .await
            .unwrap();
        memory
            .upsert_chunks(
                session,
                vec![types::ChunkInput {
                    text: format!("{session} document about gamma rays"),
                    source_uri: Some("file:///shared/doc.md".into()),
                    sequence_start: 1,
                    sequence_end: 1,
                    metadata: json!({"page": 1}),
                }],
            )
            .await
            .unwrap();
        memory
            .write_summary_state(
                session,
                &MemorySummaryState {
                    summary_text: "s".into(),
                    upper_sequence: 1,
                    epoch: 1,
                },
                0,
            )
            .await
            .unwrap();
    }
    memory.wait_indexed().await;
    let tables = [
        "sessions",
        "conversation_events",
        "session_state",
        "files",
        "chunks",
        "chunks_vec",
    ];
    for table in tables {
        let n = count(&path, &format!("SELECT count(*) FROM {table}")).await;
        assert!(n >= 2, "{table} has {n} rows");
    }
    let fts_before = count(
        &path,
        "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'doomed'",
    )
    .await;
    assert_eq!(fts_before, 2);
    memory.forget("doomed").await.unwrap();
    for table in tables {
        let sql = match table {
            "chunks_vec" => "SELECT count(*) FROM chunks_vec v JOIN chunks c ON c.chunk_id = v.chunk_id WHERE c.session_id = 'doomed'".to_owned(),
            _ => format!("SELECT count(*) FROM {table} WHERE session_id = 'doomed'"),
        };
        assert_eq!(count(&path, &sql).await, 0, "{table} kept rows");
    }
    // No orphan vectors, and the FTS index forgot the text too.
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM chunks_vec WHERE chunk_id NOT IN (SELECT chunk_id FROM chunks)"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'doomed'"
        )
        .await,
        0
    );
    assert!(
        memory
            .hybrid_query("doomed", "gamma alpha", 5)
            .await
            .unwrap()
            .is_empty()
    );
    let kept = memory.hybrid_query("kept", "gamma", 5).await.unwrap();
    assert!(kept[0].text.contains("gamma"), "{kept:#?}");
    assert!(kept.iter().all(|h| h.session_id == "kept"));
    assert_eq!(memory.read_summary_state("doomed").await.unwrap(), None);
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'kept'"
        )
        .await,
        2
    );
    let mut integrity = memory.integrity_check().await.unwrap();
    integrity.make_ascii_lowercase();
    assert_eq!(integrity, "ok");
    assert_fts_matches_chunks(&path).await;
}

#[tokio::test]
async fn restore_returns_messages_in_order_and_sessions_list_recent_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    {
        let memory = open(&path).await;
        let messages = [
            Message::user("hello"),
            Message::assistant_tool_calls(
                None,
                vec![types::ToolCall {
                    id: "c1".into(),
                    name: "file_read".into(),
                    arguments: r#"{"path":"/shared/a.md"}"#.into(),
                    signature: None,
                }],
            ),
            Message::tool_result("c1", "contents"),
            Message::assistant("done"),
        ];
        // Stored out of insertion order of sequence gaps is fine.
        for (i, message) in messages.iter().enumerate() {
            let seq = i64::try_from(i).unwrap() * 10 + 1;
            memory
                .store("older", seq, serde_json::to_value(message).unwrap())
                .await
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        memory
            .store("newer", 1, json!({"role": "user", "content": "hi"}))
            .await
            .unwrap();
    }
    let memory = open(&path).await;
    let restored = memory.restore("older").await.unwrap();
    assert_eq!(restored.len(), 4);
    assert_eq!(restored[0], Message::user("hello"));
    assert_eq!(restored[1].tool_calls[0].id, "c1");
    assert_eq!(restored[3], Message::assistant("done"));
    assert_eq!(
        memory.restore("missing").await.unwrap_err(),
        MemoryError::SessionNotFound("missing".into())
    );
    let sessions = memory.list_sessions().await.unwrap();
    let ids: Vec<&str> = sessions.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["newer", "older"]);
    assert_eq!(sessions[1].last_sequence, 31);
    assert!(sessions[0].updated_at >= sessions[1].updated_at);
    // New activity moves a session to the front.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    memory.store("older", 40, json!("later")).await.unwrap();
    assert_eq!(memory.list_sessions().await.unwrap()[0].session_id, "older");
    // A payload that is not a message is reported, not skipped.
    memory.store("odd", 1, json!([1, 2])).await.unwrap();
    let err = memory.restore("odd").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("event 1 of session 'odd' is not a message"),
        "{err}"
    );
}

#[tokio::test]
async fn summary_state_is_a_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    assert_eq!(memory.read_summary_state("s").await.unwrap(), None);
    let state = |text: &str| MemorySummaryState {
        summary_text: text.into(),
        upper_sequence: 4,
        epoch: 99,
    };
    use types::SummaryWriteOutcome::*;
    assert_eq!(
        memory
            .write_summary_state("s", &state("a"), 0)
            .await
            .unwrap(),
        Applied { new_epoch: 1 }
    );
    assert_eq!(
        memory
            .write_summary_state("s", &state("b"), 0)
            .await
            .unwrap(),
        Stale { current_epoch: 1 }
    );
    assert_eq!(
        memory
            .write_summary_state("s", &state("c"), 1)
            .await
            .unwrap(),
        Applied { new_epoch: 2 }
    );
    let stored = memory.read_summary_state("s").await.unwrap().unwrap();
    assert_eq!(
        stored,
        MemorySummaryState {
            summary_text: "c".into(),
            upper_sequence: 4,
            epoch: 2
        }
    );
    // Summary writes keep the event sequence intact, and vice versa.
    memory.store("s", 1, json!("one")).await.unwrap();
    assert_eq!(
        memory.read_summary_state("s").await.unwrap().unwrap().epoch,
        2
    );
    assert!(memory.store("s", 1, json!("again")).await.is_err());
}

#[tokio::test]
async fn an_unreachable_remote_database_fails_clearly() {
    use memory::{LexicalEmbedder, LibsqlMemory, Location, MemoryOptions};
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = MemoryOptions::local("unused.db");
    options.location = Location::Remote {
        url: format!("http://127.0.0.1:{port}"),
        auth_token: types::SecretString::new("secret-token"),
    };
    let embedder = std::sync::Arc::new(LexicalEmbedder::new());
    let err = LibsqlMemory::open(options.clone(), embedder.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("enabling foreign keys") && err.contains("Connection refused"),
        "{err}"
    );
    assert!(!err.contains("secret-token"), "{err}");
    options.location = Location::Remote {
        url: format!("http://127.0.0.1:{port}"),
        auth_token: types::SecretString::new(""),
    };
    let err = LibsqlMemory::open(options, embedder).await.unwrap_err();
    assert!(
        err.to_string().contains("needs a non-empty auth_token"),
        "{err}"
    );
    // The configuration picks the remote database only with both settings.
    let mut config = types::config::MemoryConfig {
        remote_url: Some("libsql://db.example".into()),
        ..Default::default()
    };
    assert!(matches!(
        MemoryOptions::from_config(&config).location,
        Location::Local(_)
    ));
    config.auth_token = Some("t".into());
    assert!(matches!(
        MemoryOptions::from_config(&config).location,
        Location::Remote { .. }
    ));
}
