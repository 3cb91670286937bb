//! The gateway's session directory, kept in the memory database so a
//! restarted guest still knows its sessions. A guest serves exactly one
//! user, so every stored session is that user's.

use std::sync::Arc;

use async_trait::async_trait;
use gateway::{GatewayError, SessionDirectory, SessionRecord};
use memory::{LibsqlMemory, SessionInfo};
use types::{MemoryError, SessionId, UserId};

#[derive(Debug)]
pub struct MemorySessionDirectory {
    memory: Arc<LibsqlMemory>,
    owner: UserId,
}

impl MemorySessionDirectory {
    pub fn new(memory: Arc<LibsqlMemory>, owner: UserId) -> Self {
        Self { memory, owner }
    }

    fn record(&self, info: SessionInfo) -> SessionRecord {
        SessionRecord {
            session_id: SessionId::from(info.session_id),
            user_id: self.owner.clone(),
            created_at_ms: info.created_at,
            updated_at_ms: info.updated_at,
        }
    }
}

fn directory_error(error: MemoryError) -> GatewayError {
    GatewayError::Directory(error.to_string())
}

#[async_trait]
impl SessionDirectory for MemorySessionDirectory {
    async fn create(&self, record: SessionRecord) -> Result<(), GatewayError> {
        if record.user_id != self.owner {
            return Err(GatewayError::Directory(format!(
                "this guest serves user '{}', not '{}'",
                self.owner, record.user_id
            )));
        }
        self.memory
            .create_session(record.session_id.as_str(), record.created_at_ms)
            .await
            .map_err(directory_error)
    }

    async fn get(&self, session_id: &SessionId) -> Result<Option<SessionRecord>, GatewayError> {
        let info = self
            .memory
            .session(session_id.as_str())
            .await
            .map_err(directory_error)?;
        Ok(info.map(|info| self.record(info)))
    }

    async fn list(&self, user: &UserId) -> Result<Vec<SessionRecord>, GatewayError> {
        if *user != self.owner {
            return Ok(Vec::new());
        }
        let sessions = self.memory.list_sessions().await.map_err(directory_error)?;
        Ok(sessions.into_iter().map(|info| self.record(info)).collect())
    }

    async fn latest(&self, user: &UserId) -> Result<Option<SessionRecord>, GatewayError> {
        if *user != self.owner {
            return Ok(None);
        }
        let latest = self
            .memory
            .latest_session()
            .await
            .map_err(directory_error)?;
        Ok(latest.map(|info| self.record(info)))
    }

    async fn touch(&self, session_id: &SessionId, at_ms: i64) -> Result<(), GatewayError> {
        self.memory
            .touch_session_at(session_id.as_str(), at_ms)
            .await
            .map_err(directory_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory::{LexicalEmbedder, MemoryOptions};

    #[tokio::test]
    async fn sessions_survive_reopening_and_belong_to_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let open = || async {
            Arc::new(
                LibsqlMemory::open(
                    MemoryOptions::local(&path),
                    Arc::new(LexicalEmbedder::new()),
                )
                .await
                .unwrap(),
            )
        };
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let directory = MemorySessionDirectory::new(open().await, alice.clone());
        let record = |id: &str, user: &UserId, at: i64| SessionRecord {
            session_id: id.into(),
            user_id: user.clone(),
            created_at_ms: at,
            updated_at_ms: at,
        };
        directory.create(record("s-1", &alice, 10)).await.unwrap();
        directory.create(record("s-2", &alice, 20)).await.unwrap();
        let err = directory.create(record("s-3", &bob, 30)).await.unwrap_err();
        assert!(err.to_string().contains("serves user 'alice'"), "{err}");
        directory.touch(&"s-1".into(), 40).await.unwrap();
        drop(directory);

        let directory = MemorySessionDirectory::new(open().await, alice.clone());
        let listed: Vec<String> = directory
            .list(&alice)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.session_id.into_string())
            .collect();
        assert_eq!(listed, ["s-1", "s-2"]);
        let latest = directory.latest(&alice).await.unwrap().unwrap();
        assert_eq!(latest.session_id.as_str(), "s-1");
        assert!(directory.list(&bob).await.unwrap().is_empty());
        assert_eq!(directory.latest(&bob).await.unwrap(), None);
        let s2 = directory.get(&"s-2".into()).await.unwrap().unwrap();
        assert_eq!((s2.user_id, s2.created_at_ms), (alice, 20));
        assert_eq!(directory.get(&"nope".into()).await.unwrap(), None);
        assert!(directory.touch(&"nope".into(), 1).await.is_err());
    }
}
