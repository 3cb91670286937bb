//! The memory tools: the model searches, saves and forgets on purpose
//! (`memory_search`, `memory_save`, `memory_update`, `memory_delete`),
//! through `types::AgentMemory`. Only notes can be changed or deleted;
//! nothing here can delete conversation history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use types::{
    AgentMemory, FunctionDecl, JsonSchema, MemoryError, RetrievalResult, SafetyTier, SearchScope,
    Tool, ToolContext, ToolError,
};

use crate::file::parse;
use crate::registry::{RegistryError, ToolRegistry};

/// How long one memory call may take (a search of a large database, or
/// embedding a note with a local model).
const MEMORY_TOOL_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RESULTS: usize = 5;
const MAX_RESULTS_LIMIT: usize = 20;

/// The four memory tools, each over the same memory.
pub fn register_memory_tools(
    registry: &mut ToolRegistry,
    memory: Arc<dyn AgentMemory>,
) -> Result<(), RegistryError> {
    registry.register(Arc::new(MemorySearch(Arc::clone(&memory))))?;
    registry.register(Arc::new(MemorySave(Arc::clone(&memory))))?;
    registry.register(Arc::new(MemoryUpdate(Arc::clone(&memory))))?;
    registry.register(Arc::new(MemoryDelete(memory)))
}

/// A memory failure as the model should read it: what to fix for bad
/// input, what went wrong otherwise.
fn memory_error(tool: &str, error: MemoryError) -> ToolError {
    match error {
        MemoryError::NoteNotFound(_) | MemoryError::Invalid(_) => {
            ToolError::InvalidArguments(format!("{tool}: {error}"))
        }
        other => ToolError::Execution(format!("{tool}: {other}")),
    }
}

fn note_id_schema() -> JsonSchema {
    JsonSchema::string()
        .with_description("The note's id (note-…), as memory_save or memory_search gave it")
}

/// `memory_search`.
struct MemorySearch(Arc<dyn AgentMemory>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    scope: SearchScope,
    #[serde(default)]
    max_results: Option<usize>,
}

#[async_trait]
impl Tool for MemorySearch {
    fn schema(&self) -> FunctionDecl {
        let scope = JsonSchema::String {
            description: Some(
                "session: this conversation and your saved notes (default); user: every conversation, note and document; files: only the documents in the knowledge directory".into(),
            ),
            allowed: Some(vec!["session".into(), "user".into(), "files".into()]),
        };
        FunctionDecl {
            name: "memory_search".into(),
            description: "Search memory: earlier conversations, notes you saved and the user's documents. Returns the best matching passages with where and when they come from.".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    (
                        "query".to_owned(),
                        JsonSchema::string().with_description("What to look for, in words"),
                    ),
                    ("scope".to_owned(), scope),
                    (
                        "max_results".to_owned(),
                        JsonSchema::integer()
                            .with_minimum(1)
                            .with_maximum(MAX_RESULTS_LIMIT as i64)
                            .with_description("How many passages to return (default 5)"),
                    ),
                ]),
                vec!["query".into()],
            ),
        }
    }

    async fn execute(&self, arguments: &str, context: &ToolContext) -> Result<String, ToolError> {
        let args: SearchArgs = parse(arguments)?;
        if args.query.trim().is_empty() {
            return Err(ToolError::InvalidArguments(
                "memory_search: the query is empty; say what to look for".into(),
            ));
        }
        let max_results = args
            .max_results
            .unwrap_or(DEFAULT_MAX_RESULTS)
            .clamp(1, MAX_RESULTS_LIMIT);
        let hits = self
            .0
            .search(
                context.session_id.as_str(),
                &args.query,
                args.scope,
                max_results,
            )
            .await
            .map_err(|e| memory_error("memory_search", e))?;
        Ok(format_hits(&args.query, args.scope, &hits))
    }

    fn timeout(&self) -> Duration {
        MEMORY_TOOL_TIMEOUT
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::ReadOnly
    }
}

fn scope_name(scope: SearchScope) -> &'static str {
    match scope {
        SearchScope::Session => "session",
        SearchScope::User => "user",
        SearchScope::Files => "files",
    }
}

/// Where a passage comes from, as the model reads it.
fn source_of(hit: &RetrievalResult) -> String {
    match hit.source_uri.as_deref() {
        Some(note) if note.starts_with("note-") => format!("note {note}"),
        Some(file) => format!("file {}", file.strip_prefix("file://").unwrap_or(file)),
        None => format!("conversation {}", hit.session_id),
    }
}

fn format_time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn format_hits(query: &str, scope: SearchScope, hits: &[RetrievalResult]) -> String {
    let scope = scope_name(scope);
    if hits.is_empty() {
        return format!("Nothing in memory matches \"{query}\" (scope: {scope}).");
    }
    let mut out = format!(
        "{} passage{} for \"{query}\" (scope: {scope}), best first:\n",
        hits.len(),
        if hits.len() == 1 { "" } else { "s" }
    );
    for (i, hit) in hits.iter().enumerate() {
        out.push_str(&format!(
            "\n{}. [{} · {}]\n{}\n",
            i + 1,
            source_of(hit),
            format_time(hit.indexed_at),
            hit.text
        ));
    }
    out
}

/// `memory_save`.
struct MemorySave(Arc<dyn AgentMemory>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveArgs {
    text: String,
}

#[async_trait]
impl Tool for MemorySave {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "memory_save".into(),
            description: "Save a note to the user's long-term memory: a fact, preference or decision worth remembering in later conversations. Returns the note's id.".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([(
                    "text".to_owned(),
                    JsonSchema::string().with_description("The note, self-contained (it is read without this conversation)"),
                )]),
                vec!["text".into()],
            ),
        }
    }

    async fn execute(&self, arguments: &str, context: &ToolContext) -> Result<String, ToolError> {
        let SaveArgs { text } = parse(arguments)?;
        let note_id = self
            .0
            .save_note(context.session_id.as_str(), &text)
            .await
            .map_err(|e| memory_error("memory_save", e))?;
        Ok(format!(
            "Saved note {note_id} at {}.",
            format_time(now_ms())
        ))
    }

    fn timeout(&self) -> Duration {
        MEMORY_TOOL_TIMEOUT
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::SideEffecting
    }
}

use types::clock::now_ms;

/// `memory_update`.
struct MemoryUpdate(Arc<dyn AgentMemory>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateArgs {
    note_id: String,
    text: String,
}

#[async_trait]
impl Tool for MemoryUpdate {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "memory_update".into(),
            description: "Replace the text of a note saved with memory_save. Only notes can be changed, not the conversation history.".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    ("note_id".to_owned(), note_id_schema()),
                    (
                        "text".to_owned(),
                        JsonSchema::string().with_description("The note's new text"),
                    ),
                ]),
                vec!["note_id".into(), "text".into()],
            ),
        }
    }

    async fn execute(&self, arguments: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let UpdateArgs { note_id, text } = parse(arguments)?;
        let note = self
            .0
            .update_note(note_id.trim(), &text)
            .await
            .map_err(|e| memory_error("memory_update", e))?;
        Ok(format!("Updated note {}.", note.note_id))
    }

    fn timeout(&self) -> Duration {
        MEMORY_TOOL_TIMEOUT
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::SideEffecting
    }
}

/// `memory_delete`.
struct MemoryDelete(Arc<dyn AgentMemory>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteArgs {
    note_id: String,
}

#[async_trait]
impl Tool for MemoryDelete {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "memory_delete".into(),
            description: "Delete a note saved with memory_save (when it is wrong or the user asks to forget it). Conversation history cannot be deleted.".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([("note_id".to_owned(), note_id_schema())]),
                vec!["note_id".into()],
            ),
        }
    }

    async fn execute(&self, arguments: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let DeleteArgs { note_id } = parse(arguments)?;
        let note_id = note_id.trim();
        self.0
            .delete_note(note_id)
            .await
            .map_err(|e| memory_error("memory_delete", e))?;
        Ok(format!("Deleted note {note_id}."))
    }

    fn timeout(&self) -> Duration {
        MEMORY_TOOL_TIMEOUT
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::SideEffecting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(source_uri: Option<&str>) -> RetrievalResult {
        RetrievalResult {
            chunk_id: "c".into(),
            session_id: "s-1".into(),
            text: "deploy on friday".into(),
            score: 1.0,
            vector_score: 1.0,
            fts_score: 1.0,
            sequence_start: 1,
            sequence_end: 1,
            source_uri: source_uri.map(str::to_owned),
            indexed_at: 1_796_000_000_000,
        }
    }

    #[test]
    fn passages_name_their_source_and_time() {
        let text = format_hits(
            "deploy",
            SearchScope::User,
            &[
                hit(None),
                hit(Some("note-0123456789ab")),
                hit(Some("file:///shared/knowledge/plan.md")),
            ],
        );
        assert!(
            text.starts_with("3 passages for \"deploy\" (scope: user)"),
            "{text}"
        );
        assert!(text.contains("1. [conversation s-1 · 2026-"), "{text}");
        assert!(text.contains("2. [note note-0123456789ab · "), "{text}");
        assert!(
            text.contains("3. [file /shared/knowledge/plan.md · "),
            "{text}"
        );
        assert_eq!(
            format_hits("x", SearchScope::Files, &[]),
            "Nothing in memory matches \"x\" (scope: files)."
        );
    }
}
