//! `LibsqlMemory` through its public surface, on real database files in
//! temporary directories: storage across reopening, cascades, migrations,
//! retrieval, concurrency, crash safety, the embedders, and a libSQL
//! server (remote mode).

mod audit;
mod concurrency;
mod crash;
mod embedders;
mod indexing;
mod migrations;
mod notes;
mod remote;
mod retrieval;
mod runtime_restore;
mod sessions;
mod storage;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use memory::{Embedder, LexicalEmbedder, LibsqlMemory, MemoryOptions};
use types::MemoryError;

/// Opens (or reopens) the database at `path` with the lexical embedder.
pub async fn open(path: &Path) -> LibsqlMemory {
    LibsqlMemory::open(MemoryOptions::local(path), Arc::new(LexicalEmbedder::new()))
        .await
        .unwrap()
}

/// Counts rows of `table` with a raw connection (independent of the crate;
/// like any reader, it waits for a lock another connection holds briefly,
/// e.g. the background indexer's).
pub async fn count(path: &Path, sql: &str) -> i64 {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    conn.busy_timeout(memory::BUSY_TIMEOUT).unwrap();
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get(0).unwrap()
}

/// FTS5's own check of its index against the `chunks` rows (external
/// content): fails when a trigger indexed something the table does not say.
pub async fn assert_fts_matches_chunks(path: &Path) {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    conn.execute(
        "INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)",
        (),
    )
    .await
    .expect("the full-text index matches the chunks");
}

/// The lexical embedder, taking `0` longer per call: an indexer slower
/// than the writers.
#[derive(Debug)]
pub struct SlowEmbedder(pub std::time::Duration);

#[async_trait]
impl Embedder for SlowEmbedder {
    fn model_name(&self) -> &str {
        "oxydra-lexical-v1"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        tokio::time::sleep(self.0).await;
        LexicalEmbedder::new().embed(texts).await
    }
}
