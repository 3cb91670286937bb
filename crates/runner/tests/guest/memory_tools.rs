//! The memory tools end to end: the real guest, its gateway and memory,
//! the fake LLM calling `memory_save`, `memory_search` and `memory_delete`.
//! A note saved in one session is found by search and by automatic
//! retrieval in another; deleting it removes it; the model cannot delete
//! conversation events.

use channels::{ClientEvent, ClientEvents, GatewayClient};
use test_support::{FakeLlm, Script, ScriptedReply, ScriptedToolCall, WhenExhausted, WireFormat};
use types::SessionId;
use types::protocol::gateway::{GatewayClientFrame, GatewayServerFrame};

use crate::{
    PATIENCE, agent_config, connect, envelope, frame, spawn_vm, turn_outcomes, wait_for_endpoint,
};

const NOTE: &str = "The user's cat is called Marmalade and hides from the vacuum cleaner.";

/// Starts a new session on the connection; returns its id.
async fn new_session(client: &GatewayClient, events: &mut ClientEvents) -> SessionId {
    client
        .send_frame(GatewayClientFrame::NewSession)
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("the new session in time")
            .expect("the client is open");
        if let ClientEvent::Frame(message) = event
            && let GatewayServerFrame::HelloAck {
                runtime_session_id, ..
            } = message.frame
        {
            return runtime_session_id;
        }
    }
}

/// The text of the request the fake LLM received `back` requests ago.
fn request_text(llm: &FakeLlm, back: usize) -> String {
    let requests = llm.requests();
    requests[requests.len() - 1 - back].body.to_string()
}

/// The last message of the latest request: the newest tool result.
fn last_tool_result(llm: &FakeLlm) -> String {
    let request = llm.requests().pop().unwrap();
    let messages = request.body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "tool", "{last}");
    last["content"].as_str().unwrap().to_owned()
}

/// The first `note-` id and its 12 hex digits in `text`.
fn note_id_in(text: &str) -> String {
    let start = text.find("note-").expect("a note id");
    text[start..start + 17].to_owned()
}

fn call(name: &str, arguments: String) -> ScriptedReply {
    ScriptedReply::tool_calls(vec![ScriptedToolCall::new(name, arguments)])
}

#[tokio::test]
async fn a_saved_note_is_found_in_another_session_and_only_notes_can_be_deleted() {
    let llm = FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![
            call(
                "memory_save",
                serde_json::json!({ "text": NOTE }).to_string(),
            ),
            ScriptedReply::text("I will remember Marmalade."),
        ],
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let mut guest = spawn_vm(
        home.path(),
        &frame(&envelope(&workspace, agent_config(&llm))),
    )
    .await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;

    // Session A saves the note.
    let (client, mut events, first) = connect(endpoint_file, None).await;
    let (_, tools) = turn_outcomes(&client, &mut events, "remember my cat's name").await;
    assert_eq!(tools, [("memory_save".to_owned(), true)]);
    let saved = last_tool_result(&llm);
    assert!(saved.starts_with("Saved note note-"), "{saved}");
    let note_id = note_id_in(&saved);

    // Session B knows nothing of it, yet automatic retrieval brings the
    // note into its first request, and memory_search finds it by meaning.
    let second = new_session(&client, &mut events).await;
    assert_ne!(second, first);
    llm.push_all([
        call(
            "memory_search",
            r#"{"query": "what is the cat called", "scope": "session"}"#.into(),
        ),
        ScriptedReply::text("Your cat is Marmalade."),
    ]);
    let (_, tools) = turn_outcomes(&client, &mut events, "what is my cat called?").await;
    assert_eq!(tools, [("memory_search".to_owned(), true)]);
    let first_request = request_text(&llm, 1);
    assert!(
        first_request.contains("Relevant context from memory")
            && first_request.contains("Marmalade"),
        "automatic retrieval ranks the note: {first_request}"
    );
    let search = last_tool_result(&llm);
    assert!(
        search.contains(&format!("[note {note_id}")) && search.contains("Marmalade"),
        "memory_search finds the note: {search}"
    );

    // The model cannot delete conversation history: a session id or any
    // other id is not a note; nothing is deleted.
    let events_before = conversation_events(&workspace, &first).await;
    llm.push_all([
        ScriptedReply::tool_calls(vec![
            ScriptedToolCall::new(
                "memory_delete",
                serde_json::json!({ "note_id": first.as_str() }).to_string(),
            ),
            ScriptedToolCall::new("memory_delete", r#"{"note_id": "note-000000000000"}"#),
        ]),
        ScriptedReply::text("I cannot delete those."),
    ]);
    let (_, tools) = turn_outcomes(&client, &mut events, "delete our first conversation").await;
    assert_eq!(
        tools,
        [
            ("memory_delete".to_owned(), false),
            ("memory_delete".to_owned(), false)
        ]
    );
    let refused = last_tool_result(&llm);
    assert!(refused.contains("there is no saved note"), "{refused}");
    assert_eq!(
        conversation_events(&workspace, &first).await,
        events_before,
        "no event of the first conversation was deleted"
    );

    // Deleting the note removes it from search and from retrieval.
    llm.push_all([
        call(
            "memory_delete",
            serde_json::json!({ "note_id": note_id }).to_string(),
        ),
        ScriptedReply::text("Forgotten."),
        call(
            "memory_search",
            r#"{"query": "cat called Marmalade vacuum", "scope": "user"}"#.into(),
        ),
        ScriptedReply::text("Nothing saved about that."),
    ]);
    let (_, tools) = turn_outcomes(&client, &mut events, "forget the note about my cat").await;
    assert_eq!(tools, [("memory_delete".to_owned(), true)]);
    assert_eq!(last_tool_result(&llm), format!("Deleted note {note_id}."));
    let (_, tools) =
        turn_outcomes(&client, &mut events, "is anything saved about the vacuum?").await;
    assert_eq!(tools, [("memory_search".to_owned(), true)]);
    let search = last_tool_result(&llm);
    assert!(!search.contains("[note "), "the note is gone: {search}");
    assert!(
        search.contains("[conversation "),
        "the conversations that mentioned it remain: {search}"
    );
    client.shutdown().await;
    drop(guest);
}

/// The session's rows in the guest's `conversation_events`, read beside
/// the running guest.
async fn conversation_events(workspace: &std::path::Path, session: &SessionId) -> i64 {
    let db = libsql::Builder::new_local(workspace.join("oxydra_memory.db"))
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let mut rows = conn
        .query(
            "SELECT count(*) FROM conversation_events WHERE session_id = ?1",
            [session.as_str()],
        )
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get(0).unwrap()
}
