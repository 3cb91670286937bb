//! Text preparation for indexing: what of a stored event is indexed, how
//! it is normalised and cut into overlapping chunks, and its content hash.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The most characters in one chunk.
pub const CHUNK_CHARS: usize = 640;
/// Characters shared by consecutive chunks.
pub const CHUNK_OVERLAP: usize = 96;
/// How far back from a chunk's hard end a whitespace cut is looked for.
const CUT_SEARCH: usize = 160;

/// Tools whose names start with this work on memory itself
/// (`memory_search`, `memory_save`, …): their calls and results are
/// copies of memory, not conversation, and are never indexed — a search
/// result indexed again would echo in later searches, and a deleted note
/// would live on in the call that saved it.
pub const MEMORY_TOOL_PREFIX: &str = "memory_";

/// The indexable parts of a message payload. Unknown fields are ignored:
/// payloads are whatever the runtime stored.
#[derive(Debug, Default, Deserialize)]
struct IndexableMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<IndexableCall>,
    /// Set on a tool result: the call it answers.
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IndexableCall {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: Option<String>,
}

fn is_memory_tool(name: &str) -> bool {
    name.starts_with(MEMORY_TOOL_PREFIX)
}

/// The text worth indexing in an event: message text and tool-call
/// arguments; a bare JSON string is indexed as is; anything else is not
/// indexed. Memory tools' calls are left out, and so is a tool result
/// when `answers_memory_tool` says its call id is one of theirs.
pub fn extract_text(payload: &Value, answers_memory_tool: impl Fn(&str) -> bool) -> Vec<String> {
    match payload {
        Value::String(text) => vec![text.clone()],
        Value::Object(_) => {
            let Ok(message) = IndexableMessage::deserialize(payload) else {
                return Vec::new();
            };
            if message
                .tool_call_id
                .as_deref()
                .is_some_and(answers_memory_tool)
            {
                return Vec::new();
            }
            message
                .content
                .into_iter()
                .chain(
                    message
                        .tool_calls
                        .into_iter()
                        .filter(|c| !is_memory_tool(&c.name))
                        .filter_map(|c| c.arguments),
                )
                .filter(|text| !text.trim().is_empty())
                .collect()
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) => Vec::new(),
    }
}

/// The ids of the memory tools' calls an event makes.
pub fn memory_tool_call_ids(payload: &Value) -> Vec<String> {
    IndexableMessage::deserialize(payload)
        .map(|message| {
            message
                .tool_calls
                .into_iter()
                .filter(|c| is_memory_tool(&c.name))
                .map(|c| c.id)
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of every tool call an event makes.
pub fn call_ids(payload: &Value) -> Vec<String> {
    IndexableMessage::deserialize(payload)
        .map(|message| message.tool_calls.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// The call id a tool result answers, if the event is one.
pub fn answered_call_id(payload: &Value) -> Option<String> {
    IndexableMessage::deserialize(payload)
        .ok()
        .and_then(|message| message.tool_call_id)
}

/// Collapses every whitespace run to one space and trims the ends.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts normalised text into chunks of at most `CHUNK_CHARS` characters
/// (never inside a character), consecutive chunks overlapping by about
/// `CHUNK_OVERLAP` characters, cutting at whitespace when there is some
/// near the end.
pub fn chunk(text: &str) -> Vec<String> {
    let text = normalize(text);
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let mut chunks = Vec::new();
    let mut start = 0;
    loop {
        let hard_end = (start + CHUNK_CHARS).min(chars.len());
        if hard_end == chars.len() {
            chunks.push(collect(&chars[start..hard_end]));
            return chunks;
        }
        // Prefer the last space in the final stretch, but keep chunks
        // longer than the overlap so every step makes progress.
        let floor = (hard_end - CUT_SEARCH).max(start + CHUNK_OVERLAP + 1);
        let end = (floor..hard_end)
            .rev()
            .find(|&i| chars[i] == ' ')
            .unwrap_or(hard_end);
        chunks.push(collect(&chars[start..end]));
        // Start the next chunk `CHUNK_OVERLAP` characters back, moved to
        // the start of a word when one begins within the overlap.
        let back = end - CHUNK_OVERLAP;
        start = (back..end)
            .find(|&i| i > 0 && chars[i - 1] == ' ')
            .unwrap_or(back);
        while start < end && chars[start] == ' ' {
            start += 1;
        }
    }
}

fn collect(chars: &[char]) -> String {
    chars.iter().collect::<String>().trim().to_owned()
}

/// Hex SHA-256 of `text`.
pub fn content_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// The id of a session's chunk: stable for the same session and text.
pub fn chunk_id(session_id: &str, hash: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(session_id.as_bytes());
    hasher.update([0]);
    hasher.update(hash.as_bytes());
    hex(&hasher.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn message_text_and_tool_arguments_are_extracted() {
        let payload = json!({
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [{"id": "c1", "name": "file_read", "arguments": "{\"path\":\"/shared/plan.md\"}"}],
            "cancelled": true
        });
        assert_eq!(
            extract_text(&payload, none),
            ["Let me look.", "{\"path\":\"/shared/plan.md\"}"]
        );
        assert_eq!(extract_text(&json!("plain"), none), ["plain"]);
        assert!(extract_text(&json!({"role": "assistant", "content": null}), none).is_empty());
        assert!(extract_text(&json!([1, 2]), none).is_empty());
        assert!(extract_text(&json!({"content": 5}), none).is_empty());
    }

    #[test]
    fn memory_tools_calls_and_results_are_not_conversation() {
        let call = json!({
            "role": "assistant",
            "content": "Noted.",
            "tool_calls": [
                {"id": "c1", "name": "memory_save", "arguments": "{\"text\":\"cat: Marmalade\"}"},
                {"id": "c2", "name": "file_read", "arguments": "{\"path\":\"a\"}"}
            ]
        });
        assert_eq!(extract_text(&call, none), ["Noted.", "{\"path\":\"a\"}"]);
        assert_eq!(memory_tool_call_ids(&call), ["c1"]);
        let result = json!({"role": "tool", "tool_call_id": "c1", "content": "Saved note note-1"});
        assert_eq!(answered_call_id(&result).as_deref(), Some("c1"));
        assert!(extract_text(&result, |id| id == "c1").is_empty());
        assert_eq!(extract_text(&result, none), ["Saved note note-1"]);
    }

    #[test]
    fn short_text_is_one_normalised_chunk() {
        assert_eq!(chunk("  a\n\tb   c "), ["a b c"]);
        assert!(chunk(" \n ").is_empty());
    }

    #[test]
    fn chunks_respect_size_overlap_and_words() {
        let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
        let text = words.join(" ");
        let chunks = chunk(&text);
        assert!(chunks.len() > 3);
        for (i, piece) in chunks.iter().enumerate() {
            assert!(piece.chars().count() <= CHUNK_CHARS, "chunk {i} too long");
            // Cut at whitespace: every chunk holds whole words.
            for word in piece.split(' ') {
                assert!(
                    words.iter().any(|w| w == word),
                    "chunk {i} cut a word: {word}"
                );
            }
        }
        for pair in chunks.windows(2) {
            let first_word = pair[1].split(' ').next().unwrap();
            let tail: String = pair[0].chars().rev().take(CHUNK_OVERLAP + 10).collect();
            let tail: String = tail.chars().rev().collect();
            assert!(tail.contains(first_word), "no overlap between {pair:?}");
        }
        // Nothing is lost: the last word is in the last chunk.
        assert!(chunks.last().unwrap().ends_with("word399"));
    }

    #[test]
    fn multi_byte_text_is_cut_on_character_boundaries() {
        // No whitespace at all: hard cuts, each exactly at the limit.
        let text = "日本語のテキスト🦀é".repeat(100);
        let chunks = chunk(&text);
        let total: usize = text.chars().count();
        assert!(chunks.len() >= total / CHUNK_CHARS);
        for piece in &chunks {
            assert!(piece.chars().count() <= CHUNK_CHARS);
            assert!(text.contains(piece.as_str()));
        }
        assert_eq!(chunks[0].chars().count(), CHUNK_CHARS);
        // Consecutive chunks overlap by exactly the overlap.
        let first: Vec<char> = chunks[0].chars().collect();
        let second: Vec<char> = chunks[1].chars().collect();
        assert_eq!(
            &first[CHUNK_CHARS - CHUNK_OVERLAP..],
            &second[..CHUNK_OVERLAP]
        );
        assert!(chunks.last().unwrap().ends_with("🦀é"));
    }

    #[test]
    fn hashes_and_ids_are_stable() {
        assert_eq!(
            content_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let hash = content_hash("x");
        assert_eq!(chunk_id("s", &hash), chunk_id("s", &hash));
        assert_ne!(chunk_id("s", &hash), chunk_id("t", &hash));
        assert_eq!(chunk_id("s", &hash).len(), 32);
    }
}
