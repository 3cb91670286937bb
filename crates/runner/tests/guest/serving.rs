//! A served guest: a turn whose file tool call writes into `shared/`, a
//! clean SIGTERM that removes the endpoint file, and a restarted guest that
//! continues the same session with its history (and its Responses chain).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use test_support::{FakeLlm, Script, ScriptedReply, ScriptedToolCall, WhenExhausted, WireFormat};
use tokio::process::Child;
use types::ProviderType;
use types::protocol::bootstrap::{BOOTSTRAP_FILE_ENV, BOOTSTRAP_FILE_NAME, StartupDegradedReason};
use types::runner::SandboxTier;

use crate::{
    agent_config, connect, echo_llm, envelope, finish, frame, health, spawn_vm, turn, vm_command,
    wait_for_endpoint,
};

async fn terminate(mut child: Child) -> (Option<i32>, String) {
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    // Drain stdout so the guest never blocks on a full pipe.
    drop(child.stdout.take());
    finish(child).await
}

#[tokio::test]
async fn a_turn_writes_a_file_and_a_restarted_guest_continues_the_session() {
    let llm = FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![
            ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
                "file_write",
                r#"{"path": "/shared/notes/hello.txt", "content": "written by the agent"}"#,
            )]),
            ScriptedReply::text("I saved hello.txt."),
        ],
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let bytes = frame(&envelope(&workspace, agent_config(&llm)));

    let mut guest = spawn_vm(home.path(), &bytes).await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;
    let (client, mut events, session) = connect(endpoint_file.clone(), None).await;
    let (reply, tools) = turn(&client, &mut events, "please save a note").await;
    assert_eq!(reply, "I saved hello.txt.");
    assert_eq!(tools, ["file_write"]);
    assert_eq!(
        std::fs::read_to_string(workspace.join("shared/notes/hello.txt")).unwrap(),
        "written by the agent"
    );
    // The memory database sits beside the mounts, out of the tools' reach.
    assert!(workspace.join("oxydra_memory.db").is_file());
    client.shutdown().await;

    let (code, stderr) = terminate(guest).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !endpoint_file.exists(),
        "the endpoint file is removed on stop"
    );

    // A new guest process on the same workspace: the session and its
    // history come back from memory.
    let mut guest = spawn_vm(home.path(), &bytes).await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;
    let (client, mut events, resumed) = connect(endpoint_file, Some(session.clone())).await;
    assert_eq!(resumed, session);
    let (reply, _) = turn(&client, &mut events, "what did I ask before?").await;
    assert_eq!(reply, "You said: what did I ask before?");
    let last = llm.requests().pop().unwrap().body.to_string();
    assert!(last.contains("please save a note"), "history lost: {last}");
    assert!(last.contains("I saved hello.txt."), "history lost: {last}");
    client.shutdown().await;
    let (code, stderr) = terminate(guest).await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn the_container_form_reads_the_envelope_from_its_file() {
    let llm = echo_llm().await;
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let file = home.path().join(BOOTSTRAP_FILE_NAME);
    let json = serde_json::to_vec(&envelope(&workspace, agent_config(&llm))).unwrap();
    std::fs::write(&file, json).unwrap();

    let mut guest = vm_command(home.path())
        .env(BOOTSTRAP_FILE_ENV, &file)
        .spawn()
        .unwrap();
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;
    let (client, mut events, _) = connect(endpoint_file.clone(), None).await;
    assert_eq!(
        health(&client, &mut events).await,
        (
            SandboxTier::Process,
            vec![StartupDegradedReason::InsecureProcessTier]
        ),
        "the envelope's tier and startup status reach the health report"
    );
    let (reply, _) = turn(&client, &mut events, "hello from a container").await;
    assert_eq!(reply, "You said: hello from a container");
    client.shutdown().await;
    let (code, stderr) = terminate(guest).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!endpoint_file.exists());
}

/// OpenAI Responses chains outlive the guest: the answer's response id is
/// stored with it, so after a restart the next turn names it as
/// `previous_response_id` and sends only the new prompt.
#[tokio::test]
async fn a_responses_chain_continues_across_a_guest_restart() {
    let llm = FakeLlm::start_script(Script {
        format: WireFormat::OpenaiResponses,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![
            ScriptedReply::text("Noted: the deploy is on Friday."),
            ScriptedReply::text("On Friday."),
        ],
    })
    .await
    .unwrap();
    let mut config = agent_config(&llm);
    for entry in config.providers.values_mut() {
        entry.provider_type = ProviderType::OpenaiResponses;
    }
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");
    let bytes = frame(&envelope(&workspace, config));

    let mut guest = spawn_vm(home.path(), &bytes).await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;
    let (client, mut events, session) = connect(endpoint_file, None).await;
    let (reply, _) = turn(&client, &mut events, "we deploy on friday").await;
    assert_eq!(reply, "Noted: the deploy is on Friday.");
    client.shutdown().await;
    let (code, stderr) = terminate(guest).await;
    assert_eq!(code, Some(0), "{stderr}");

    let mut guest = spawn_vm(home.path(), &bytes).await;
    let endpoint_file = wait_for_endpoint(&workspace, &mut guest).await;
    let (client, mut events, _) = connect(endpoint_file, Some(session)).await;
    let (reply, _) = turn(&client, &mut events, "when do we deploy?").await;
    assert_eq!(reply, "On Friday.");
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].body.get("previous_response_id").is_none());
    let chained = &requests[1].body;
    assert!(
        chained["previous_response_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_")),
        "{chained}"
    );
    let input = chained["input"].as_array().unwrap();
    assert_eq!(input.len(), 1, "only the new prompt: {chained}");
    assert_eq!(input[0]["content"], "when do we deploy?");
    client.shutdown().await;
    let (code, stderr) = terminate(guest).await;
    assert_eq!(code, Some(0), "{stderr}");
}
