//! The knowledge directory: files under `/shared/knowledge/` are indexed at
//! start, followed while the guest runs (new, changed, deleted) and found
//! by `memory_search` with scope `files`.

use std::path::Path;
use std::time::{Duration, Instant};

use test_support::{FakeLlm, Script, ScriptedReply, ScriptedToolCall, WhenExhausted, WireFormat};

use crate::{PATIENCE, agent_config, connect, envelope, frame, spawn_vm, turn, wait_for_endpoint};

const HANDBOOK: &str = "file:///shared/knowledge/handbook.md";
const ONCALL: &str = "file:///shared/knowledge/team/oncall.txt";

/// The indexed text of `source` in the guest's memory (empty when the
/// source is not indexed).
async fn indexed_text(workspace: &Path, source: &str) -> String {
    let db = libsql::Builder::new_local(workspace.join("oxydra_memory.db"))
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut rows = conn
        .query(
            "SELECT c.chunk_text FROM chunks c JOIN files f ON f.file_id = c.file_id
             WHERE f.source_uri = ?1 ORDER BY c.id",
            [source],
        )
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(row) = rows.next().await.unwrap() {
        text.push_str(&row.get::<String>(0).unwrap());
    }
    text
}

/// Waits until the indexed text of `source` satisfies `done`.
async fn wait_for(workspace: &Path, source: &str, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = indexed_text(workspace, source).await;
        if done(&text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{source}: {what}; indexed: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn knowledge_files_are_indexed_followed_and_found_by_search() {
    let llm = FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![
            ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
                "memory_search",
                r#"{"query": "when does the wifi password rotate", "scope": "files"}"#,
            )]),
            ScriptedReply::text("On Mondays."),
        ],
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let knowledge = workspace.join("shared/knowledge");
    std::fs::create_dir_all(knowledge.join("team")).unwrap();
    std::fs::write(
        knowledge.join("handbook.md"),
        "# Office\n\nThe office wifi password rotates every Monday.",
    )
    .unwrap();
    std::fs::write(knowledge.join(".draft.md"), "hidden files are not indexed").unwrap();
    std::fs::write(
        knowledge.join("photo.png"),
        [0x89, b'P', b'N', b'G', 0xff, 0x00],
    )
    .unwrap();
    let mut config = agent_config(&llm);
    config.memory.knowledge.poll_secs = 1;
    let mut guest = spawn_vm(home.path(), &frame(&envelope(&workspace, config))).await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;

    // Indexed at start, and found by memory_search with scope files.
    wait_for(&workspace, HANDBOOK, "indexed at start", |t| {
        t.contains("Monday")
    })
    .await;
    let (client, mut events, _) = connect(endpoint_file, None).await;
    let (_, tools) = turn(&client, &mut events, "when does the wifi password change?").await;
    assert_eq!(tools, ["memory_search"]);
    let request = llm.requests().pop().unwrap();
    let result = request.body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        result.contains("[file /shared/knowledge/handbook.md") && result.contains("every Monday"),
        "{result}"
    );
    assert!(
        indexed_text(&workspace, "file:///shared/knowledge/.draft.md")
            .await
            .is_empty()
    );
    assert!(
        indexed_text(&workspace, "file:///shared/knowledge/photo.png")
            .await
            .is_empty()
    );

    // Followed while the guest runs: a change re-indexes, a new file in a
    // subdirectory is added, a deleted one is removed.
    std::fs::write(
        knowledge.join("handbook.md"),
        "# Office\n\nThe office wifi password now rotates every Friday.",
    )
    .unwrap();
    wait_for(&workspace, HANDBOOK, "re-indexed after a change", |t| {
        t.contains("Friday") && !t.contains("Monday")
    })
    .await;
    std::fs::write(
        knowledge.join("team/oncall.txt"),
        "Priya is on call this week.",
    )
    .unwrap();
    wait_for(&workspace, ONCALL, "a new file indexed", |t| {
        t.contains("Priya")
    })
    .await;
    std::fs::remove_file(knowledge.join("handbook.md")).unwrap();
    wait_for(
        &workspace,
        HANDBOOK,
        "removed after deletion",
        str::is_empty,
    )
    .await;
    client.shutdown().await;
    guest.kill().await.unwrap();
    let _ = std::fs::remove_file(channels::endpoint_file_in(&workspace));

    // Reconciled at start: a file deleted while the guest was down leaves
    // the index, one added is indexed.
    std::fs::remove_file(knowledge.join("team/oncall.txt")).unwrap();
    std::fs::write(knowledge.join("handbook.md"), "Lunch is at noon.").unwrap();
    let mut config = agent_config(&llm);
    config.memory.knowledge.poll_secs = 1;
    let mut guest = spawn_vm(home.path(), &frame(&envelope(&workspace, config))).await;
    wait_for_endpoint(&workspace, &mut guest).await;
    wait_for(&workspace, HANDBOOK, "indexed at restart", |t| {
        t.contains("noon")
    })
    .await;
    wait_for(&workspace, ONCALL, "removed at restart", str::is_empty).await;
}
