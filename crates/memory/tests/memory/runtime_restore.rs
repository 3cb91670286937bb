//! The runtime on top of `LibsqlMemory`: a session run against the fake
//! LLM server, everything closed, the database file reopened by a new
//! runtime, the session restored and continued with its history intact.

use std::sync::Arc;

use memory::LibsqlMemory;
use provider::build_provider;
use runtime::{AgentRuntime, MemoryParts, RuntimeLimits, RuntimeParts};
use sandbox::scrub::Scrubber;
use sandbox::{FileRunner, HostFileRunner, Workspace};
use test_support::{FakeLlm, ScriptedReply, ScriptedToolCall, WireFormat};
use tokio_util::sync::CancellationToken;
use tools::file::register_file_tools;
use tools::{StaticApproval, ToolRegistry};
use types::config::ProviderEntry;
use types::protocol::bootstrap::ApprovalPolicy;
use types::{Memory, MessageRole, ModelCatalog, ProviderType, SecretString, SessionId};

use crate::open;

/// A runtime whose memory is the database at `db`, talking to `server`.
fn runtime(server: &FakeLlm, workspace: &Workspace, memory: Arc<LibsqlMemory>) -> AgentRuntime {
    let mut entry = ProviderEntry::new(ProviderType::Openai);
    entry.base_url = Some(server.base_url());
    let provider = build_provider(
        "fake",
        &entry,
        ModelCatalog::pinned(),
        Some(&SecretString::new("k")),
    )
    .unwrap();
    let model = ModelCatalog::pinned()
        .get(ProviderType::Openai, "gpt-4.1")
        .cloned()
        .unwrap();
    let runner: Arc<dyn FileRunner> = Arc::new(HostFileRunner::new(workspace.clone()));
    let scrubber = Arc::new(Scrubber::new());
    let mut registry = ToolRegistry::new(
        scrubber.clone(),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    );
    register_file_tools(&mut registry, workspace, runner).unwrap();
    AgentRuntime::new(RuntimeParts {
        provider,
        provider_id: "fake".into(),
        model,
        tools: Arc::new(registry),
        scrubber,
        limits: RuntimeLimits::default(),
        system_prompt: "You are a test agent.".into(),
    })
    .with_memory(MemoryParts {
        memory: memory.clone(),
        retrieval: Some(memory),
        max_results: 3,
    })
}

async fn turn(runtime: &AgentRuntime, session: &SessionId, prompt: &str) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let outcome = runtime
        .run_session(session, prompt, &CancellationToken::new(), &tx)
        .await
        .unwrap();
    drop(tx);
    drain.await.unwrap();
    outcome.final_message.content.unwrap_or_default()
}

#[tokio::test]
async fn a_session_survives_closing_and_continues_after_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/memory.db");
    let workspace_dir = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace_dir).unwrap();
    let workspace = Workspace::open(&workspace_dir).unwrap();
    std::fs::write(
        workspace_dir.join("shared/launch-plan.md"),
        "launch at dawn",
    )
    .unwrap();
    let session = SessionId::new("restored-session");

    // First process: one turn with a tool call, then everything closes.
    {
        let server = FakeLlm::start(WireFormat::Openai).await.unwrap();
        server.push_all([
            ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
                "file_list",
                r#"{"path": "/shared"}"#,
            )]),
            ScriptedReply::text("Your workspace holds launch-plan.md, the zeppelin launch plan."),
        ]);
        let memory = Arc::new(open(&db).await);
        let runtime = runtime(&server, &workspace, memory.clone());
        let answer = turn(&runtime, &session, "What is in my workspace?").await;
        assert!(answer.contains("launch-plan.md"));
        drop(runtime);
        drop(memory);
    }

    // Second process: a new server, a new runtime, the same file.
    let server = FakeLlm::start(WireFormat::Openai).await.unwrap();
    server.push(ScriptedReply::text("You asked what was in your workspace."));
    let memory = Arc::new(open(&db).await);
    assert_eq!(memory.integrity_check().await.unwrap(), "ok");
    let runtime = runtime(&server, &workspace, memory.clone());
    let restored = runtime.restore_session(&session).await.unwrap();
    assert_eq!(restored, 4, "user, tool call, tool result, answer");
    let answer = turn(
        &runtime,
        &session,
        "What did I ask about the zeppelin launch?",
    )
    .await;
    assert_eq!(answer, "You asked what was in your workspace.");

    // The provider saw the whole earlier conversation, in order.
    let body = &server.requests()[0].body;
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(messages[1]["content"], "What is in my workspace?");
    assert_eq!(messages[3]["content"], "launch-plan.md (14 bytes)");
    // The reopened index finds the earlier answer (the runtime leaves such
    // snippets out of this prompt only because the history is sent whole).
    memory.wait_indexed().await;
    let hits = types::MemoryRetrieval::hybrid_query(
        memory.as_ref(),
        session.as_str(),
        "zeppelin launch",
        3,
    )
    .await
    .unwrap();
    assert!(hits[0].text.contains("zeppelin launch plan"), "{hits:#?}");
    assert_eq!(hits[0].sequence_end, 4);

    // Everything is stored, with sequences continuing after the restore.
    let records = memory.recall(session.as_str(), None).await.unwrap();
    assert_eq!(
        records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    let stored = memory.restore(session.as_str()).await.unwrap();
    assert_eq!(stored[4].role, MessageRole::User);
    assert_eq!(
        stored[5].content.as_deref(),
        Some("You asked what was in your workspace.")
    );
}
