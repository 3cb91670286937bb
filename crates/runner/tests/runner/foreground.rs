//! Foreground `start`: the WASM guest compiled ahead, a turn whose file
//! tool writes into the user's `shared/`, a stop by signal, a second start continuing the session, and
//! `--tui` without a running guest.

use test_support::{FakeLlm, Script, ScriptedReply, ScriptedToolCall, WhenExhausted, WireFormat};

use crate::{Fixture, connect, echo_llm, turn};

#[tokio::test]
async fn a_turn_writes_into_shared_and_a_restarted_runner_continues_the_session() {
    let _turn = crate::GUESTS.lock().await;
    let llm = FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![
            ScriptedReply::tool_calls(vec![ScriptedToolCall::new(
                "file_write",
                r#"{"path": "/shared/hello.txt", "content": "hello from the agent"}"#,
            )]),
            ScriptedReply::text("I wrote hello.txt."),
        ],
    })
    .await
    .unwrap();
    let fixture = Fixture::new(&llm.base_url());
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;

    // The workspace was provisioned with a private vault.
    for dir in ["shared", "tmp", "vault"] {
        assert!(fixture.workspace().join(dir).is_dir(), "{dir}");
    }
    let vault_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(fixture.workspace().join("vault"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(vault_mode & 0o777, 0o700);

    let (client, mut events, session) = connect(fixture.endpoint_file(), None).await;
    let (reply, tools) = turn(&client, &mut events, "please write hello.txt").await;
    assert_eq!(reply, "I wrote hello.txt.");
    assert_eq!(tools, ["file_write"]);
    assert_eq!(
        std::fs::read_to_string(fixture.workspace().join("shared/hello.txt")).unwrap(),
        "hello from the agent"
    );
    // The guest got alice's key from the runner (user credentials entry).
    let first = &llm.requests()[0];
    assert_eq!(
        first.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-alice")
    );
    client.shutdown().await;

    // The runner says where it runs and how to open the TUI.
    let stdout = runner.stdout();
    assert!(stdout.contains("ws://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("oxydra-runner --config runner.toml --user alice --tui"),
        "{stdout}"
    );
    let stderr = runner.stderr();
    assert!(
        stderr.contains("WARNING: sandbox tier 'process'"),
        "{stderr}"
    );
    // The runner compiled the WASM file-tool guest into alice's cache
    // before her guest started, so the first file call only loaded it.
    assert!(
        stdout.contains("oxydra-vm: compiled the WASM guest into")
            && stdout.contains(".cache/oxydra/wasm"),
        "{stdout}"
    );
    assert!(
        stderr.contains("WASM guest loaded from the compiled-module cache"),
        "{stderr}"
    );

    // SIGTERM: the guest stops cleanly, the runner exits 0, the endpoint
    // file is gone.
    assert_eq!(runner.terminate().await, Some(0), "{}", runner.stderr());
    assert!(!fixture.endpoint_file().exists());

    // A second start continues the same session with its history.
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;
    let (client, mut events, resumed) =
        connect(fixture.endpoint_file(), Some(session.clone())).await;
    assert_eq!(resumed, session);
    let (reply, _) = turn(&client, &mut events, "what did I ask?").await;
    assert_eq!(reply, "You said: what did I ask?");
    assert!(
        runner
            .stdout()
            .contains("oxydra-vm: the WASM guest is already compiled in"),
        "{}",
        runner.stdout()
    );
    let last = llm.requests().pop().unwrap().body.to_string();
    assert!(
        last.contains("please write hello.txt"),
        "history lost: {last}"
    );
    assert!(last.contains("I wrote hello.txt."), "history lost: {last}");
    client.shutdown().await;
    assert_eq!(runner.terminate().await, Some(0), "{}", runner.stderr());
}

#[tokio::test]
async fn a_second_start_is_refused_while_a_guest_serves_and_a_guest_exit_ends_the_runner() {
    let _turn = crate::GUESTS.lock().await;
    let llm = echo_llm().await;
    let fixture = Fixture::new(&llm.base_url());
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;

    let second = fixture.run(&["start"]);
    assert_eq!(second.code, Some(1), "{second:?}");
    assert!(
        second.stderr.contains("already serving at ws://127.0.0.1:"),
        "{}",
        second.stderr
    );
    runner.assert_alive();

    // The guest is killed behind the runner's back: the runner exits with
    // 128 + SIGKILL, and the stale endpoint file does not block a restart.
    let endpoint = std::fs::read_to_string(fixture.endpoint_file()).unwrap();
    assert!(!endpoint.is_empty());
    let guest = guest_pid_of(runner.pid());
    nix::sys::signal::kill(guest, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(runner.wait_exit().await, Some(137), "{}", runner.stderr());
    assert!(
        !fixture.endpoint_file().exists(),
        "the runner removes the endpoint file its crashed guest left"
    );
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;
    assert_eq!(runner.terminate().await, Some(0));
}

/// The single child process of `parent` (the guest of a foreground runner).
fn guest_pid_of(parent: nix::unistd::Pid) -> nix::unistd::Pid {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    let pids: Vec<i32> = children
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "children of the runner: {children:?}");
    nix::unistd::Pid::from_raw(pids[0])
}

#[tokio::test]
async fn tui_without_a_running_guest_names_the_start_command() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    let done = fixture.run(&["--tui"]);
    assert_eq!(done.code, Some(1), "{done:?}");
    assert!(
        done.stderr
            .contains("the Oxydra guest for user 'alice' is not running"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr
            .contains("Start it with: oxydra-runner --config runner.toml --user alice start"),
        "{}",
        done.stderr
    );
}
