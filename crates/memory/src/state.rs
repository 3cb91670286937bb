//! `session_state.state_json`: a session's last stored sequence and its
//! rolling summary, plus any keys later versions add (kept untouched).

use libsql::Connection;
use serde::{Deserialize, Serialize};
use types::{MemoryError, MemorySummaryState};

use crate::db::{now_ms, query_error};

/// The stored summary (`summary_state` in `state_json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSummary {
    pub text: String,
    pub epoch: u64,
    pub upper_sequence: i64,
}

impl From<StoredSummary> for MemorySummaryState {
    fn from(stored: StoredSummary) -> Self {
        Self {
            summary_text: stored.text,
            upper_sequence: stored.upper_sequence,
            epoch: stored.epoch,
        }
    }
}

/// The parsed `state_json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionStateJson {
    #[serde(default)]
    pub last_sequence: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_state: Option<StoredSummary>,
    /// Keys this version does not know (e.g. a later
    /// `previous_response_id`), written back unchanged.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Creates the session or bumps its `updated_at`.
pub async fn touch_session(
    conn: &Connection,
    session_id: &str,
    agent_identity: Option<&str>,
) -> Result<(), MemoryError> {
    let now = now_ms();
    conn.execute(
        "INSERT INTO sessions (session_id, agent_identity, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (session_id) DO UPDATE SET updated_at = MAX(updated_at, excluded.updated_at)",
        (session_id, agent_identity, now),
    )
    .await
    .map_err(query_error("upserting the session"))?;
    Ok(())
}

/// The session's state (default when it has none yet).
pub async fn read_state(
    conn: &Connection,
    session_id: &str,
) -> Result<SessionStateJson, MemoryError> {
    let mut rows = conn
        .query(
            "SELECT state_json FROM session_state WHERE session_id = ?1",
            [session_id],
        )
        .await
        .map_err(query_error("reading the session state"))?;
    let Some(row) = rows
        .next()
        .await
        .map_err(query_error("reading the session state"))?
    else {
        return Ok(SessionStateJson::default());
    };
    let json: String = row
        .get(0)
        .map_err(query_error("reading the session state"))?;
    serde_json::from_str(&json).map_err(|e| {
        MemoryError::Serialization(format!(
            "session_state of '{session_id}' is not valid state JSON: {e}"
        ))
    })
}

/// Replaces the session's state (the session row must exist).
pub async fn write_state(
    conn: &Connection,
    session_id: &str,
    state: &SessionStateJson,
) -> Result<(), MemoryError> {
    let json = serde_json::to_string(state)
        .map_err(|e| MemoryError::Serialization(format!("session state: {e}")))?;
    conn.execute(
        "INSERT INTO session_state (session_id, state_json, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (session_id) DO UPDATE SET state_json = excluded.state_json,
                                                updated_at = excluded.updated_at",
        (session_id, json, now_ms()),
    )
    .await
    .map_err(query_error("writing the session state"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        let text = r#"{"last_sequence":7,"summary_state":{"text":"t","epoch":2,"upper_sequence":5},"previous_response_id":"resp_1"}"#;
        let state: SessionStateJson = serde_json::from_str(text).unwrap();
        assert_eq!(state.last_sequence, 7);
        assert_eq!(state.summary_state.as_ref().unwrap().epoch, 2);
        let back = serde_json::to_value(&state).unwrap();
        assert_eq!(back["previous_response_id"], "resp_1");
        assert_eq!(
            serde_json::from_str::<SessionStateJson>("{}").unwrap(),
            SessionStateJson::default()
        );
    }
}
