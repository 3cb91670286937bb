//! What the agent keeps on purpose (`AgentMemory`): scoped search, notes
//! that belong to the user rather than to one conversation, and the
//! documents of the knowledge directory.
//!
//! Notes and indexed documents live in two reserved sessions, so they reuse
//! the chunk, vector and full-text machinery (and its cascades) unchanged:
//! a note is a `files` row in `NOTES_SESSION` whose source is the note's id
//! and whose chunks hold its text; deleting the row deletes its chunks,
//! vectors and full-text entries. Reserved sessions are never listed as
//! conversations, and no conversation event can be stored in one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::json;
use types::{AgentMemory, ChunkInput, MemoryError, MemoryRetrieval, RetrievalResult, SavedNote};
use types::{SearchScope, config::RetrievalScope};

use crate::db::query_error;
use crate::retrieval::Within;
use crate::store::LibsqlMemory;
use crate::text::content_hash;

/// The session holding the agent's saved notes.
pub const NOTES_SESSION: &str = "oxydra:notes";
/// The session holding indexed documents (the knowledge directory).
pub const KNOWLEDGE_SESSION: &str = "oxydra:knowledge";
/// Session ids beginning with this are reserved for the two above.
const RESERVED_PREFIX: &str = "oxydra:";
/// Every note id starts with this.
pub const NOTE_ID_PREFIX: &str = "note-";
/// The longest note, in characters: a note is a fact to remember, not a
/// document (documents go in the knowledge directory).
pub const MAX_NOTE_CHARS: usize = 4_000;

/// Whether `session_id` is one of memory's own sessions, not a
/// conversation.
pub fn is_reserved(session_id: &str) -> bool {
    session_id.starts_with(RESERVED_PREFIX)
}

/// A new note id: `note-` and 12 hex digits of a hash of the time, a
/// process-wide counter and the text (unique without a random source).
fn new_note_id(text: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = content_hash(&format!("{nanos}:{count}:{text}"));
    format!("{NOTE_ID_PREFIX}{}", &hash[..12])
}

/// The note's text, trimmed, or why it cannot be one.
fn note_text(text: &str) -> Result<&str, MemoryError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MemoryError::Invalid(
            "a note needs some text to remember".into(),
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(MemoryError::Invalid(format!(
            "a note holds at most {MAX_NOTE_CHARS} characters (this one has {chars}); save the essentials, or put long documents in the knowledge directory"
        )));
    }
    Ok(text)
}

impl LibsqlMemory {
    /// Indexes `text` as the note `note_id` (replacing its previous text).
    async fn write_note(
        &self,
        note_id: &str,
        text: &str,
        from_session: &str,
    ) -> Result<(), MemoryError> {
        self.upsert_chunks(
            NOTES_SESSION,
            vec![ChunkInput {
                text: text.to_owned(),
                source_uri: Some(note_id.to_owned()),
                sequence_start: 0,
                sequence_end: 0,
                metadata: json!({ "from_session": from_session }),
            }],
        )
        .await?;
        Ok(())
    }

    async fn note_exists(&self, note_id: &str) -> Result<bool, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("looking up the note");
        let mut rows = conn
            .query(
                "SELECT 1 FROM files WHERE session_id = ?1 AND source_uri = ?2",
                (NOTES_SESSION, note_id),
            )
            .await
            .map_err(&failed)?;
        Ok(rows.next().await.map_err(&failed)?.is_some())
    }
}

impl LibsqlMemory {
    /// The sources (documents) indexed in `session_id`.
    pub async fn sources(&self, session_id: &str) -> Result<Vec<String>, MemoryError> {
        Ok(self.source_hashes(session_id).await?.into_keys().collect())
    }

    /// Each source indexed in `session_id` with its content hash.
    pub(crate) async fn source_hashes(
        &self,
        session_id: &str,
    ) -> Result<HashMap<String, String>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("listing indexed documents");
        let mut rows = conn
            .query(
                "SELECT source_uri, content_hash FROM files WHERE session_id = ?1",
                [session_id],
            )
            .await
            .map_err(&failed)?;
        let mut sources = HashMap::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            sources.insert(row.get(0).map_err(&failed)?, row.get(1).map_err(&failed)?);
        }
        Ok(sources)
    }

    /// Removes a document and everything indexed from it; returns whether
    /// it was indexed.
    pub async fn forget_source(
        &self,
        session_id: &str,
        source_uri: &str,
    ) -> Result<bool, MemoryError> {
        let tx = self.pool.begin_write().await?;
        let result = tx
            .execute(
                "DELETE FROM files WHERE session_id = ?1 AND source_uri = ?2",
                (session_id, source_uri),
            )
            .await
            .map_err(query_error("removing an indexed document"));
        Ok(tx.finish(result).await? > 0)
    }
}

#[async_trait]
impl AgentMemory for LibsqlMemory {
    async fn search(
        &self,
        session_id: &str,
        query: &str,
        scope: SearchScope,
        max_results: usize,
    ) -> Result<Vec<RetrievalResult>, MemoryError> {
        let within = match scope {
            SearchScope::Session => conversation_and_notes(session_id),
            SearchScope::User => Within::All,
            SearchScope::Files => Within::Sessions(vec![KNOWLEDGE_SESSION.to_owned()]),
        };
        self.ranked(within, query, max_results).await
    }

    async fn save_note(&self, session_id: &str, text: &str) -> Result<String, MemoryError> {
        let text = note_text(text)?;
        let note_id = new_note_id(text);
        self.write_note(&note_id, text, session_id).await?;
        Ok(note_id)
    }

    async fn update_note(&self, note_id: &str, text: &str) -> Result<SavedNote, MemoryError> {
        let text = note_text(text)?;
        if !note_id.starts_with(NOTE_ID_PREFIX) || !self.note_exists(note_id).await? {
            return Err(MemoryError::NoteNotFound(note_id.to_owned()));
        }
        self.write_note(note_id, text, "").await?;
        Ok(SavedNote {
            note_id: note_id.to_owned(),
            text: text.to_owned(),
        })
    }

    async fn delete_note(&self, note_id: &str) -> Result<(), MemoryError> {
        if !note_id.starts_with(NOTE_ID_PREFIX)
            || !self.forget_source(NOTES_SESSION, note_id).await?
        {
            return Err(MemoryError::NoteNotFound(note_id.to_owned()));
        }
        Ok(())
    }
}

/// What automatic retrieval searches for the configured scope: saved
/// notes rank beside the conversation.
pub(crate) fn automatic_within(scope: RetrievalScope, session_id: &str) -> Within {
    match scope {
        RetrievalScope::Session => conversation_and_notes(session_id),
        RetrievalScope::User => Within::All,
    }
}

fn conversation_and_notes(session_id: &str) -> Within {
    Within::Sessions(vec![session_id.to_owned(), NOTES_SESSION.to_owned()])
}
