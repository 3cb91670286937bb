//! The session list as the gateway's session directory needs it: create a
//! session before its first event, look one up, and move its `updated_at`
//! on without going backwards.

use types::MemoryError;

use crate::db::query_error;
use crate::notes::is_reserved;
use crate::store::{LibsqlMemory, SessionInfo, check_conversation_id};

impl LibsqlMemory {
    /// Records a new, empty session created at `at_ms`. An existing id is
    /// `MemoryError::Query` naming it (nothing is changed).
    pub async fn create_session(&self, session_id: &str, at_ms: i64) -> Result<(), MemoryError> {
        check_conversation_id(session_id)?;
        let tx = self.pool.begin_write().await?;
        let result = async {
            let inserted = tx
                .execute(
                    "INSERT INTO sessions (session_id, agent_identity, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?3) ON CONFLICT (session_id) DO NOTHING",
                    (session_id, self.options.agent_identity.as_deref(), at_ms),
                )
                .await
                .map_err(query_error("creating the session"))?;
            if inserted == 0 {
                return Err(MemoryError::Query(format!(
                    "session '{session_id}' already exists"
                )));
            }
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    /// The conversation, if it exists (memory's own sessions are not
    /// conversations).
    pub async fn session(&self, session_id: &str) -> Result<Option<SessionInfo>, MemoryError> {
        if is_reserved(session_id) {
            return Ok(None);
        }
        Ok(self
            .query_sessions("WHERE s.session_id = ?1", [session_id])
            .await?
            .pop())
    }

    /// Moves the session's `updated_at` to `at_ms` unless it is already
    /// later. Unknown sessions are `MemoryError::SessionNotFound`.
    pub async fn touch_session_at(&self, session_id: &str, at_ms: i64) -> Result<(), MemoryError> {
        let tx = self.pool.begin_write().await?;
        let result = async {
            let updated = tx
                .execute(
                    "UPDATE sessions SET updated_at = MAX(updated_at, ?2) WHERE session_id = ?1",
                    (session_id, at_ms),
                )
                .await
                .map_err(query_error("touching the session"))?;
            if updated == 0 {
                return Err(MemoryError::SessionNotFound(session_id.to_owned()));
            }
            Ok(())
        }
        .await;
        tx.finish(result).await
    }
}
