//! What the adapter must remember across restarts, in one JSON file
//! (`<workspace_root>/.runner/channels/<user>/telegram.json`, owned by the
//! runner, never by a guest): the next `getUpdates` offset, so no update is
//! handled twice, and which session each chat talks to (identity mapping).
//! Every change is written to a temporary file, synced and renamed over
//! the old one, so a crash leaves either the old or the new state.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use types::SessionId;

/// A conversation on Telegram: a chat, or a forum topic inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatKey {
    pub chat_id: i64,
    pub thread_id: Option<i64>,
}

impl fmt::Display for ChatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.thread_id {
            Some(thread) => write!(f, "{}/{thread}", self.chat_id),
            None => write!(f, "{}", self.chat_id),
        }
    }
}

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Persisted {
    /// The next `getUpdates` offset (the last handled update id + 1).
    #[serde(default)]
    offset: i64,
    /// `ChatKey` (as text) → the session that chat continues.
    #[serde(default)]
    sessions: BTreeMap<String, SessionId>,
}

/// The adapter's durable state. Cloning shares it.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: Arc<PathBuf>,
    state: Arc<Mutex<Persisted>>,
}

impl StateFile {
    /// Loads the file; a missing file is a fresh start, an unreadable one
    /// an error naming it (it is never silently replaced).
    pub fn open(path: &Path) -> Result<Self, String> {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a Telegram state file: {e}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        Ok(Self {
            path: Arc::new(path.to_owned()),
            state: Arc::new(Mutex::new(state)),
        })
    }

    pub fn offset(&self) -> i64 {
        self.lock().offset
    }

    pub fn session(&self, chat: ChatKey) -> Option<SessionId> {
        self.lock().sessions.get(&chat.to_string()).cloned()
    }

    /// Records the next offset durably.
    pub async fn set_offset(&self, offset: i64) -> Result<(), String> {
        self.update(move |state| state.offset = offset).await
    }

    /// Records which session `chat` continues, durably.
    pub async fn set_session(&self, chat: ChatKey, session: SessionId) -> Result<(), String> {
        self.update(move |state| {
            state.sessions.insert(chat.to_string(), session);
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Persisted> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` and writes the file on the blocking pool (it
    /// syncs). Writes are serialised by the lock, so the file always holds
    /// the newest state.
    async fn update(
        &self,
        change: impl FnOnce(&mut Persisted) + Send + 'static,
    ) -> Result<(), String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = this.lock();
            change(&mut state);
            write_atomically(&this.path, &state)
                .map_err(|e| format!("cannot write {}: {e}", this.path.display()))
        })
        .await
        .map_err(|e| format!("writing {}: {e}", self.path.display()))?
    }
}

fn write_atomically(path: &Path, state: &Persisted) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut temporary, state)?;
    temporary.write_all(b"\n")?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offset_and_sessions_survive_a_reopen_and_corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("channels/alice/telegram.json");
        let state = StateFile::open(&path).unwrap();
        assert_eq!(state.offset(), 0);
        let chat = ChatKey {
            chat_id: 42,
            thread_id: Some(7),
        };
        state.set_offset(1001).await.unwrap();
        state.set_session(chat, "s-1".into()).await.unwrap();
        let reopened = StateFile::open(&path).unwrap();
        assert_eq!(reopened.offset(), 1001);
        assert_eq!(reopened.session(chat), Some("s-1".into()));
        assert_eq!(
            reopened.session(ChatKey {
                chat_id: 42,
                thread_id: None
            }),
            None
        );
        std::fs::write(&path, "{not json").unwrap();
        let error = StateFile::open(&path).unwrap_err();
        assert!(
            error.contains("telegram.json is not a Telegram state file"),
            "{error}"
        );
    }
}
