//! The knowledge directory (`memory.knowledge`): text files the user puts
//! under `/shared/knowledge/` are indexed as documents in memory, found by
//! `memory_search` with scope `files`. At start the directory and the
//! index are reconciled (new and changed files indexed, vanished ones
//! removed); afterwards the directory is looked at every `poll_secs` and
//! only files whose size or modification time moved are read again.
//!
//! Polling rather than file-system notifications: it needs nothing of the
//! kernel or the sandbox (inotify watches per directory, events lost on
//! overflow, bind mounts in the container tier), and one `stat` per file
//! every few seconds is nothing next to indexing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use memory::{KNOWLEDGE_SESSION, LibsqlMemory};
use tokio::task::JoinHandle;
use types::config::KnowledgeConfig;
use types::{ChunkInput, MemoryRetrieval};

/// The most files one scan looks at; beyond it the rest are left out (and
/// said so once per scan).
const MAX_FILES: usize = 10_000;

/// What a scan knows of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
}

/// Follows the knowledge directory until dropped.
#[derive(Debug)]
pub struct KnowledgeWatcher(JoinHandle<()>);

impl Drop for KnowledgeWatcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts following `dir` (the host directory behind the configured
/// workspace path, which is `uri_prefix`, e.g. `file:///shared/knowledge`).
pub fn watch(
    memory: Arc<LibsqlMemory>,
    dir: PathBuf,
    uri_prefix: String,
    config: &KnowledgeConfig,
) -> KnowledgeWatcher {
    let knowledge = Knowledge {
        memory,
        dir,
        uri_prefix,
        max_file_bytes: config.max_file_bytes,
        seen: BTreeMap::new(),
    };
    let interval = Duration::from_secs(config.poll_secs.max(1));
    KnowledgeWatcher(tokio::spawn(knowledge.run(interval)))
}

struct Knowledge {
    memory: Arc<LibsqlMemory>,
    dir: PathBuf,
    uri_prefix: String,
    max_file_bytes: u64,
    /// What the last scan indexed (or decided to skip), by source URI.
    seen: BTreeMap<String, Seen>,
}

impl Knowledge {
    async fn run(mut self, interval: Duration) {
        if let Err(error) = self.reconcile().await {
            tracing::warn!(%error, dir = %self.dir.display(), "indexing the knowledge directory failed");
        }
        loop {
            tokio::time::sleep(interval).await;
            if let Err(error) = self.scan().await {
                tracing::warn!(%error, dir = %self.dir.display(), "indexing the knowledge directory failed");
            }
        }
    }

    /// Brings the index in line with the directory: every file indexed
    /// (unchanged ones cost a hash comparison), every indexed source that
    /// is no longer a file removed.
    async fn reconcile(&mut self) -> Result<(), String> {
        let indexed = self
            .memory
            .sources(KNOWLEDGE_SESSION)
            .await
            .map_err(|e| e.to_string())?;
        let on_disk = self.list().await;
        for uri in indexed {
            if uri.starts_with(&self.uri_prefix) && !on_disk.contains_key(&uri) {
                self.remove(&uri).await?;
            }
        }
        for (uri, (path, seen)) in on_disk {
            self.index(&uri, &path).await?;
            self.seen.insert(uri, seen);
        }
        Ok(())
    }

    /// Indexes what changed since the last scan and removes what vanished.
    async fn scan(&mut self) -> Result<(), String> {
        let on_disk = self.list().await;
        let vanished: Vec<String> = self
            .seen
            .keys()
            .filter(|uri| !on_disk.contains_key(*uri))
            .cloned()
            .collect();
        for uri in vanished {
            self.remove(&uri).await?;
            self.seen.remove(&uri);
        }
        for (uri, (path, seen)) in on_disk {
            if self.seen.get(&uri) != Some(&seen) {
                self.index(&uri, &path).await?;
                self.seen.insert(uri, seen);
            }
        }
        Ok(())
    }

    async fn remove(&self, uri: &str) -> Result<(), String> {
        self.memory
            .forget_source(KNOWLEDGE_SESSION, uri)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(source = uri, "knowledge file removed from memory");
        Ok(())
    }

    /// Indexes one file; one that is too large or not text is left out
    /// (and any earlier version removed), with the reason logged.
    async fn index(&self, uri: &str, path: &Path) -> Result<(), String> {
        let text = match read_text(path, self.max_file_bytes).await {
            Ok(text) => text,
            Err(reason) => {
                tracing::info!(source = uri, %reason, "knowledge file not indexed");
                return self.remove(uri).await;
            }
        };
        let outcome = self
            .memory
            .upsert_chunks(
                KNOWLEDGE_SESSION,
                vec![ChunkInput {
                    text,
                    source_uri: Some(uri.to_owned()),
                    sequence_start: 0,
                    sequence_end: 0,
                    metadata: serde_json::Value::Null,
                }],
            )
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        if outcome.inserted > 0 {
            tracing::info!(
                source = uri,
                chunks = outcome.inserted,
                "knowledge file indexed"
            );
        }
        Ok(())
    }

    /// Regular files under the directory (hidden entries and symbolic
    /// links left out), by source URI.
    async fn list(&self) -> BTreeMap<String, (PathBuf, Seen)> {
        let dir = self.dir.clone();
        let prefix = self.uri_prefix.clone();
        tokio::task::spawn_blocking(move || list_files(&dir, &prefix))
            .await
            .unwrap_or_default()
    }
}

fn list_files(dir: &Path, prefix: &str) -> BTreeMap<String, (PathBuf, Seen)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // `file_type` does not follow symbolic links: they are skipped.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                if files.len() == MAX_FILES {
                    tracing::warn!(dir = %dir.display(), limit = MAX_FILES, "the knowledge directory holds more files than are indexed");
                    return files;
                }
                let Ok(relative) = path.strip_prefix(dir) else {
                    continue;
                };
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                let uri = format!("{prefix}/{}", relative.to_string_lossy());
                let seen = Seen {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                };
                files.insert(uri, (path, seen));
            }
        }
    }
    files
}

/// The file's text, or why it is not indexed.
async fn read_text(path: &Path, max_bytes: u64) -> Result<String, String> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    if meta.len() > max_bytes {
        return Err(format!(
            "{} bytes is over memory.knowledge.max_file_bytes ({max_bytes})",
            meta.len()
        ));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
}
