//! Notes and documents (`AgentMemory`): saved notes are found from any
//! conversation, changed and deleted only by id; documents are searched
//! with scope `files`; memory's own sessions are never conversations.

use serde_json::json;
use types::{AgentMemory, ChunkInput, Memory, MemoryError, MemoryRetrieval, SearchScope};

use crate::{count, open};

#[tokio::test]
async fn a_note_is_found_from_every_conversation_until_it_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    let id = memory
        .save_note("s-a", "The deploy window is Thursday 14:00 UTC.")
        .await
        .unwrap();
    assert!(id.starts_with("note-") && id.len() == 17, "{id}");

    // Another conversation: deliberate search and automatic retrieval.
    let found = memory
        .search("s-b", "deploy window", SearchScope::Session, 5)
        .await
        .unwrap();
    assert_eq!(found[0].source_uri.as_deref(), Some(id.as_str()));
    assert!(found[0].indexed_at > 0);
    let automatic = memory
        .hybrid_query("s-b", "when is the deploy window", 5)
        .await
        .unwrap();
    assert_eq!(
        automatic[0].text,
        "The deploy window is Thursday 14:00 UTC."
    );
    // Documents are not notes.
    assert!(
        memory
            .search("s-b", "deploy window", SearchScope::Files, 5)
            .await
            .unwrap()
            .is_empty()
    );

    let updated = memory
        .update_note(&id, "The deploy window moved to Friday 09:00 UTC.")
        .await
        .unwrap();
    assert_eq!(updated.note_id, id);
    let found = memory
        .search("s-b", "deploy window", SearchScope::User, 5)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the old text is gone: {found:#?}");
    assert!(found[0].text.contains("Friday"));

    memory.delete_note(&id).await.unwrap();
    assert!(
        memory
            .search("s-b", "deploy window", SearchScope::User, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(count(&path, "SELECT count(*) FROM chunks").await, 0);
    assert_eq!(count(&path, "SELECT count(*) FROM chunks_vec").await, 0);
    for missing in [id.as_str(), "note-000000000000", "s-a"] {
        assert!(matches!(
            memory.delete_note(missing).await,
            Err(MemoryError::NoteNotFound(_))
        ));
        assert!(matches!(
            memory.update_note(missing, "x").await,
            Err(MemoryError::NoteNotFound(_))
        ));
    }
    for bad in ["", "   ", &"x".repeat(memory::MAX_NOTE_CHARS + 1)] {
        assert!(matches!(
            memory.save_note("s-a", bad).await,
            Err(MemoryError::Invalid(_))
        ));
    }
}

#[tokio::test]
async fn the_same_text_in_two_notes_survives_deleting_one() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    let first = memory
        .save_note("s", "Parking is on level -2.")
        .await
        .unwrap();
    let second = memory
        .save_note("s", "Parking is on level -2.")
        .await
        .unwrap();
    assert_ne!(first, second);
    memory.delete_note(&first).await.unwrap();
    let found = memory
        .search("s", "parking level", SearchScope::Session, 5)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].source_uri.as_deref(), Some(second.as_str()));
}

#[tokio::test]
async fn documents_are_searched_with_scope_files_and_skipped_when_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    let handbook = |text: &str| {
        vec![ChunkInput {
            text: text.to_owned(),
            source_uri: Some("file:///shared/knowledge/handbook.md".into()),
            sequence_start: 0,
            sequence_end: 0,
            metadata: serde_json::Value::Null,
        }]
    };
    let first = memory
        .upsert_chunks(
            memory::KNOWLEDGE_SESSION,
            handbook("Expenses are filed by the 5th."),
        )
        .await
        .unwrap();
    assert_eq!(first.inserted, 1);
    let again = memory
        .upsert_chunks(
            memory::KNOWLEDGE_SESSION,
            handbook("Expenses are filed by the 5th."),
        )
        .await
        .unwrap();
    assert_eq!((again.inserted, again.deduplicated), (0, 1));
    memory
        .store("s", 1, json!("expenses are boring"))
        .await
        .unwrap();
    memory.wait_indexed().await;
    let found = memory
        .search("s", "expenses filed", SearchScope::Files, 5)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].source_uri.as_deref(),
        Some("file:///shared/knowledge/handbook.md")
    );
    assert_eq!(
        memory.sources(memory::KNOWLEDGE_SESSION).await.unwrap(),
        ["file:///shared/knowledge/handbook.md"]
    );
    assert!(
        memory
            .forget_source(
                memory::KNOWLEDGE_SESSION,
                "file:///shared/knowledge/handbook.md"
            )
            .await
            .unwrap()
    );
    assert!(
        memory
            .search("s", "expenses filed", SearchScope::Files, 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn reserved_sessions_are_not_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    memory.save_note("s", "a note").await.unwrap();
    memory.store("s", 1, json!("hello")).await.unwrap();
    let err = memory
        .store(memory::NOTES_SESSION, 1, json!("smuggled"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    assert!(
        memory
            .create_session(memory::KNOWLEDGE_SESSION, 1)
            .await
            .is_err()
    );
    assert!(
        memory
            .session(memory::NOTES_SESSION)
            .await
            .unwrap()
            .is_none()
    );
    let listed: Vec<String> = memory
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(listed, ["s"]);
}
