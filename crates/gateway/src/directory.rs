//! `SessionDirectory`: where the gateway records which sessions exist and
//! whose they are, so `Hello` can attach to a stored session and
//! `ListSessions` can list them. The runner backs it with the memory
//! database; `InMemorySessionDirectory` serves tests and memory-less runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use types::{SessionId, UserId};

use crate::error::GatewayError;

/// One stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub session_id: SessionId,
    pub user_id: UserId,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Milliseconds since the Unix epoch; moved on by every turn.
    pub updated_at_ms: i64,
}

/// The sessions of every user. Implementations must be cheap enough to be
/// called on every `Hello`, `NewSession`, `ListSessions` and finished turn.
#[async_trait]
pub trait SessionDirectory: Send + Sync + std::fmt::Debug {
    /// Records a new session. Creating an id that exists is an error.
    async fn create(&self, record: SessionRecord) -> Result<(), GatewayError>;
    /// The session, if it exists.
    async fn get(&self, session_id: &SessionId) -> Result<Option<SessionRecord>, GatewayError>;
    /// `user`'s sessions, most recently updated first.
    async fn list(&self, user: &UserId) -> Result<Vec<SessionRecord>, GatewayError>;
    /// `user`'s most recently updated session: what a `Hello` naming no
    /// session continues. Implementations answer it without listing every
    /// session (a guest under load is greeted thousands of times).
    async fn latest(&self, user: &UserId) -> Result<Option<SessionRecord>, GatewayError> {
        Ok(self.list(user).await?.into_iter().next())
    }
    /// Marks the session as used at `at_ms` (never moves time backwards).
    async fn touch(&self, session_id: &SessionId, at_ms: i64) -> Result<(), GatewayError>;
}

/// A `SessionDirectory` held in memory; lost when the process ends.
#[derive(Debug, Default)]
pub struct InMemorySessionDirectory {
    sessions: Mutex<HashMap<SessionId, Entry>>,
    /// The next `Entry::tick`.
    ticks: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    record: SessionRecord,
    /// Orders sessions updated within the same millisecond.
    tick: u64,
}

impl InMemorySessionDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Taken under the sessions lock, so ticks follow the order of the
    /// changes.
    fn next_tick(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::Relaxed)
    }

    /// `user`'s entries.
    fn of<'a>(
        sessions: &'a HashMap<SessionId, Entry>,
        user: &'a UserId,
    ) -> impl Iterator<Item = &'a Entry> {
        sessions.values().filter(move |e| &e.record.user_id == user)
    }
}

/// Most recently updated first.
fn recency(entry: &Entry) -> std::cmp::Reverse<(i64, u64)> {
    std::cmp::Reverse((entry.record.updated_at_ms, entry.tick))
}

#[async_trait]
impl SessionDirectory for InMemorySessionDirectory {
    async fn create(&self, record: SessionRecord) -> Result<(), GatewayError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.contains_key(&record.session_id) {
            return Err(GatewayError::Directory(format!(
                "session '{}' already exists",
                record.session_id
            )));
        }
        let tick = self.next_tick();
        sessions.insert(record.session_id.clone(), Entry { record, tick });
        Ok(())
    }

    async fn get(&self, session_id: &SessionId) -> Result<Option<SessionRecord>, GatewayError> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.get(session_id).map(|e| e.record.clone()))
    }

    async fn list(&self, user: &UserId) -> Result<Vec<SessionRecord>, GatewayError> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let mut mine: Vec<&Entry> = Self::of(&sessions, user).collect();
        mine.sort_by_key(|e| recency(e));
        Ok(mine.into_iter().map(|e| e.record.clone()).collect())
    }

    async fn latest(&self, user: &UserId) -> Result<Option<SessionRecord>, GatewayError> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Self::of(&sessions, user)
            .min_by_key(|e| recency(e))
            .map(|e| e.record.clone()))
    }

    async fn touch(&self, session_id: &SessionId, at_ms: i64) -> Result<(), GatewayError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let tick = self.next_tick();
        let entry = sessions.get_mut(session_id).ok_or_else(|| {
            GatewayError::Directory(format!("session '{session_id}' is not recorded"))
        })?;
        entry.record.updated_at_ms = entry.record.updated_at_ms.max(at_ms);
        entry.tick = tick;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, user: &str, at: i64) -> SessionRecord {
        SessionRecord {
            session_id: id.into(),
            user_id: UserId::parse(user).unwrap(),
            created_at_ms: at,
            updated_at_ms: at,
        }
    }

    #[tokio::test]
    async fn lists_a_users_sessions_most_recent_first() {
        let directory = InMemorySessionDirectory::new();
        directory.create(record("a", "alice", 10)).await.unwrap();
        directory.create(record("b", "alice", 10)).await.unwrap();
        directory.create(record("c", "bob", 50)).await.unwrap();
        directory.create(record("d", "alice", 5)).await.unwrap();
        let alice = UserId::parse("alice").unwrap();
        let ids = |records: Vec<SessionRecord>| -> Vec<String> {
            records
                .into_iter()
                .map(|r| r.session_id.into_string())
                .collect()
        };
        let latest = |user: &UserId| {
            let user = user.clone();
            let directory = &directory;
            async move {
                directory
                    .latest(&user)
                    .await
                    .unwrap()
                    .map(|r| r.session_id.into_string())
            }
        };
        // Same millisecond: the later one first.
        assert_eq!(ids(directory.list(&alice).await.unwrap()), ["b", "a", "d"]);
        assert_eq!(latest(&alice).await.as_deref(), Some("b"));
        directory.touch(&"d".into(), 10).await.unwrap();
        assert_eq!(ids(directory.list(&alice).await.unwrap()), ["d", "b", "a"]);
        assert_eq!(latest(&alice).await.as_deref(), Some("d"));
        assert_eq!(latest(&UserId::parse("carol").unwrap()).await, None);
        // Time never moves backwards.
        directory.touch(&"b".into(), 1).await.unwrap();
        let b = directory.get(&"b".into()).await.unwrap().unwrap();
        assert_eq!(b.updated_at_ms, 10);

        let err = directory.create(record("a", "bob", 1)).await.unwrap_err();
        assert!(err.to_string().contains("'a' already exists"), "{err}");
        let err = directory.touch(&"zzz".into(), 1).await.unwrap_err();
        assert!(err.to_string().contains("'zzz'"), "{err}");
        assert_eq!(directory.get(&"zzz".into()).await.unwrap(), None);
    }
}
