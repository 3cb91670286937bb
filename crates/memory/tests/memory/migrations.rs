//! Migrations: a database created by an older migration set is upgraded
//! in place without losing anything.

use memory::migrations::{MIGRATIONS, applied_version, apply};
use serde_json::json;
use types::{Memory, MemoryRetrieval};

use crate::{assert_fts_matches_chunks, count, open};

#[tokio::test]
async fn an_old_database_is_upgraded_without_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // A database as the first release wrote it: schema version 1 only (no
    // FTS table, no vector index), with data written by that release.
    {
        let db = libsql::Builder::new_local(&path).build().await.unwrap();
        let conn = db.connect().unwrap();
        conn.execute("PRAGMA foreign_keys = ON", ()).await.unwrap();
        assert_eq!(apply(&conn, &MIGRATIONS[..1]).await.unwrap(), 1);
        conn.execute_batch(
            "INSERT INTO sessions VALUES ('legacy', NULL, 1, 1);
             INSERT INTO conversation_events VALUES ('legacy', 1, '{\"role\":\"user\",\"content\":\"the zeppelin manifest\"}', 1);
             INSERT INTO session_state VALUES ('legacy', '{\"last_sequence\":1,\"summary_state\":{\"text\":\"old summary\",\"epoch\":3,\"upper_sequence\":1}}', 1);
             INSERT INTO chunks (chunk_id, session_id, chunk_text, content_hash, sequence_start, sequence_end, created_at)
                 VALUES ('c-legacy', 'legacy', 'the zeppelin manifest', 'h-legacy', 1, 1, 1);",
        )
        .await
        .unwrap();
        assert!(conn.query("SELECT * FROM chunks_fts", ()).await.is_err());
    }
    let memory = open(&path).await;
    {
        let db = libsql::Builder::new_local(&path).build().await.unwrap();
        let conn = db.connect().unwrap();
        assert_eq!(
            applied_version(&conn).await.unwrap(),
            MIGRATIONS.last().unwrap().version
        );
    }
    assert_eq!(
        count(&path, "SELECT count(*) FROM memory_migrations").await,
        i64::try_from(MIGRATIONS.len()).unwrap()
    );
    // Old data is intact and usable with the new schema.
    let records = memory.recall("legacy", None).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload["content"], "the zeppelin manifest");
    assert_eq!(
        memory
            .read_summary_state("legacy")
            .await
            .unwrap()
            .unwrap()
            .epoch,
        3
    );
    assert!(memory.store("legacy", 1, json!("dup")).await.is_err());
    memory.store("legacy", 2, json!("second")).await.unwrap();
    memory.wait_indexed().await;
    // The old chunk was back-filled into the new FTS table.
    let hits = memory.hybrid_query("legacy", "zeppelin", 3).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk_id, "c-legacy");
    assert_eq!(hits[0].fts_score, 1.0);
    assert_fts_matches_chunks(&path).await;
    // The DiskANN index of version 3 was dropped again by version 8, its
    // graph (the shadow table) with it.
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'chunks_vec_idx%'"
        )
        .await,
        0
    );
    // Reopening applies nothing twice.
    drop(memory);
    let memory = open(&path).await;
    assert_eq!(memory.recall("legacy", None).await.unwrap().len(), 2);
    assert_eq!(
        count(&path, "SELECT count(*) FROM memory_migrations").await,
        i64::try_from(MIGRATIONS.len()).unwrap()
    );
}

#[tokio::test]
async fn migrations_are_numbered_and_a_newer_database_is_refused() {
    for (i, migration) in MIGRATIONS.iter().enumerate() {
        assert_eq!(migration.version as usize, i + 1, "{}", migration.name);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    let db = libsql::Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    apply(&conn, MIGRATIONS).await.unwrap();
    conn.execute(
        "INSERT INTO memory_migrations VALUES (999, 'from the future', 0)",
        (),
    )
    .await
    .unwrap();
    let err = memory::LibsqlMemory::open(
        memory::MemoryOptions::local(&path),
        std::sync::Arc::new(memory::LexicalEmbedder::new()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("newer than this build knows"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = libsql::Builder::new_local(dir.path().join("m.db"))
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    let broken = [
        MIGRATIONS[0],
        memory::migrations::Migration {
            version: 2,
            name: "broken",
            sql: "CREATE TABLE half_done (x INTEGER); CREATE TABLE sessions (oops);",
        },
    ];
    let err = apply(&conn, &broken).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("memory migration 2 failed: broken"),
        "{err}"
    );
    assert_eq!(applied_version(&conn).await.unwrap(), 1);
    // The half-applied statement was rolled back with it.
    assert!(conn.query("SELECT * FROM half_done", ()).await.is_err());
}

/// Instances opening a new database at once: one applies each migration,
/// the others find its row and skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_opening_a_new_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let opening: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { open(&path).await })
        })
        .collect();
    for task in opening {
        let memory = task.await.unwrap();
        assert_eq!(memory.integrity_check().await.unwrap(), "ok");
    }
    assert_eq!(
        count(&path, "SELECT count(*) FROM memory_migrations").await,
        i64::try_from(MIGRATIONS.len()).unwrap()
    );
}

/// Another process writing a brand-new file (not yet in WAL mode) holds
/// back the switch to WAL, which SQLite refuses at once instead of waiting;
/// opening waits for the writer instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_waits_for_a_writer_of_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let db = libsql::Builder::new_local(&path).build().await.unwrap();
    let holder = db.connect().unwrap();
    holder.execute("CREATE TABLE early (x)", ()).await.unwrap();
    holder.execute("BEGIN IMMEDIATE", ()).await.unwrap();
    holder
        .execute("INSERT INTO early VALUES (1)", ())
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        holder.execute("COMMIT", ()).await.unwrap();
    });
    let started = std::time::Instant::now();
    let memory = open(&path).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    release.await.unwrap();
    assert_eq!(count(&path, "SELECT count(*) FROM early").await, 1);
    assert_eq!(memory.integrity_check().await.unwrap(), "ok");
}
