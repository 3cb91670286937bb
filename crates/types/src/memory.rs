//! The memory traits: durable conversation storage (`Memory`) and hybrid
//! retrieval plus rolling-summary state (`MemoryRetrieval`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::MemoryError;

/// One stored conversation event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    pub session_id: String,
    pub sequence: i64,
    pub payload: Value,
}

/// One retrieved chunk with its scores (each normalised to `[0, 1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalResult {
    pub chunk_id: String,
    pub session_id: String,
    pub text: String,
    /// `vector_weight · vector_score + fts_weight · fts_score`.
    pub score: f64,
    pub vector_score: f64,
    pub fts_score: f64,
    pub sequence_start: i64,
    pub sequence_end: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<String>,
    /// When the text was indexed (milliseconds since the Unix epoch; for
    /// conversation text, moments after it was said).
    #[serde(default)]
    pub indexed_at: i64,
}

/// What a deliberate search of memory covers (`memory_search`'s `scope`).
/// Notes the agent saved belong to the user, so they are searched with
/// the conversation as well as with every conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchScope {
    /// This conversation and the saved notes.
    #[default]
    Session,
    /// Every conversation, the saved notes and the indexed documents.
    User,
    /// Only the indexed documents (the knowledge directory).
    Files,
}

/// A note the agent saved on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedNote {
    /// The note's id (`note-…`), for `memory_update` and `memory_delete`.
    pub note_id: String,
    pub text: String,
}

/// A piece of text to index: a message excerpt or part of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkInput {
    pub text: String,
    /// The document the text comes from (`file:///shared/notes.md`);
    /// `None` for conversation text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<String>,
    pub sequence_start: i64,
    pub sequence_end: i64,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
}

/// What `upsert_chunks` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertOutcome {
    /// New chunks stored.
    pub inserted: usize,
    /// Chunks whose text was already stored (only `sequence_end` moved).
    pub deduplicated: usize,
}

/// A session's rolling summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySummaryState {
    pub summary_text: String,
    /// The last sequence the summary covers.
    pub upper_sequence: i64,
    /// Bumped by every successful write (compare-and-swap token).
    pub epoch: u64,
}

/// The result of a compare-and-swap summary write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SummaryWriteOutcome {
    /// Written; the stored epoch is now `new_epoch`.
    Applied { new_epoch: u64 },
    /// Another writer got there first; nothing changed.
    Stale { current_epoch: u64 },
}

/// The memory the agent uses on purpose, through its memory tools:
/// searching with an explicit scope, and user-scoped notes that later
/// sessions retrieve. Only notes can be changed or deleted this way; the
/// conversation history cannot.
#[async_trait]
pub trait AgentMemory: Send + Sync {
    /// The best `max_results` matches of `query` within `scope`, seen
    /// from the conversation `session_id`.
    async fn search(
        &self,
        session_id: &str,
        query: &str,
        scope: SearchScope,
        max_results: usize,
    ) -> Result<Vec<RetrievalResult>, MemoryError>;
    /// Saves a note (remembering the conversation it came from); returns
    /// its id.
    async fn save_note(&self, session_id: &str, text: &str) -> Result<String, MemoryError>;
    /// Replaces a note's text. An unknown id is `NoteNotFound`.
    async fn update_note(&self, note_id: &str, text: &str) -> Result<SavedNote, MemoryError>;
    /// Deletes a note. An unknown id is `NoteNotFound`.
    async fn delete_note(&self, note_id: &str) -> Result<(), MemoryError>;
}

/// Removes from `results` the chunks of `session_id` from `sent_from` on
/// (what the context sends anyway).
pub fn drop_sent(results: &mut Vec<RetrievalResult>, session_id: &str, sent_from: i64) {
    results.retain(|r| r.session_id != session_id || r.sequence_end < sent_from);
}

/// Durable, append-only conversation storage.
#[async_trait]
pub trait Memory: Send + Sync {
    /// Stores one event; `sequence` must exceed the session's last one.
    async fn store(
        &self,
        session_id: &str,
        sequence: i64,
        payload: Value,
    ) -> Result<(), MemoryError>;
    /// Events in sequence order, the newest `limit` when given.
    async fn recall(
        &self,
        session_id: &str,
        limit: Option<usize>,
    ) -> Result<Vec<MemoryRecord>, MemoryError>;
    /// Deletes the session and everything that depends on it.
    async fn forget(&self, session_id: &str) -> Result<(), MemoryError>;
}

/// Hybrid retrieval and summary state.
#[async_trait]
pub trait MemoryRetrieval: Send + Sync {
    async fn hybrid_query(
        &self,
        session_id: &str,
        query: &str,
        max_results: usize,
    ) -> Result<Vec<RetrievalResult>, MemoryError>;
    /// `hybrid_query` for a prompt whose context already sends the
    /// session's events from `sent_from` on: those are left out. An
    /// implementation that knows nothing else could match answers without
    /// searching (a short conversation, no notes: the common turn).
    async fn hybrid_query_before(
        &self,
        session_id: &str,
        query: &str,
        max_results: usize,
        sent_from: i64,
    ) -> Result<Vec<RetrievalResult>, MemoryError> {
        let mut results = self.hybrid_query(session_id, query, max_results).await?;
        drop_sent(&mut results, session_id, sent_from);
        Ok(results)
    }
    async fn upsert_chunks(
        &self,
        session_id: &str,
        chunks: Vec<ChunkInput>,
    ) -> Result<UpsertOutcome, MemoryError>;
    async fn read_summary_state(
        &self,
        session_id: &str,
    ) -> Result<Option<MemorySummaryState>, MemoryError>;
    /// Writes only if the stored epoch equals `expected_epoch`.
    async fn write_summary_state(
        &self,
        session_id: &str,
        state: &MemorySummaryState,
        expected_epoch: u64,
    ) -> Result<SummaryWriteOutcome, MemoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn memory_types_round_trip() {
        round_trip(&MemoryRecord {
            session_id: "s".into(),
            sequence: 3,
            payload: json!({"role": "user", "content": "hi"}),
        });
        round_trip(&RetrievalResult {
            chunk_id: "c".into(),
            session_id: "s".into(),
            text: "t".into(),
            score: 0.5,
            vector_score: 0.25,
            fts_score: 1.0,
            sequence_start: 1,
            sequence_end: 2,
            source_uri: Some("file:///shared/a.md".into()),
            indexed_at: 1_700_000_000_000,
        });
        round_trip(&ChunkInput {
            text: "doc".into(),
            source_uri: None,
            sequence_start: 0,
            sequence_end: 0,
            metadata: json!({"page": 2}),
        });
        round_trip(&UpsertOutcome {
            inserted: 2,
            deduplicated: 1,
        });
        round_trip(&MemorySummaryState {
            summary_text: "- asked about cats".into(),
            upper_sequence: 9,
            epoch: 4,
        });
        round_trip(&SummaryWriteOutcome::Applied { new_epoch: 5 });
        round_trip(&SummaryWriteOutcome::Stale { current_epoch: 5 });
    }

    #[test]
    fn unknown_summary_outcome_is_rejected() {
        let err =
            serde_json::from_str::<SummaryWriteOutcome>(r#"{"outcome":"maybe"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `maybe`"), "{err}");
    }
}
