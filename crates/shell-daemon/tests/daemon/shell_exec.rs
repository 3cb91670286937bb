//! `shell_exec` in Session mode, end to end: `ToolRegistry::
//! execute_with_policy` → shell policy → `VsockShellSession` /
//! `LocalProcessShellSession` → the real daemon binary.

use std::sync::Arc;
use std::time::Duration;

use sandbox::scrub::Scrubber;
use sandbox::shell_policy::ShellPolicy;
use serde_json::json;
use tools::shell::{
    LocalDaemonOptions, LocalProcessShellSession, MAX_COMMAND_TIMEOUT, ShellBackend,
    ShellDaemonEndpoint, ShellSession, VsockShellSession, register_shell_tool,
};
use tools::{StaticApproval, ToolRegistry};
use types::protocol::bootstrap::ApprovalPolicy;
use types::protocol::shell::StreamType;
use types::{ToolCall, ToolContext, ToolError};

use crate::support::{BINARY, Daemon, assert_gone, process_gone};

fn registry(session: Arc<dyn ShellSession>) -> ToolRegistry {
    let mut registry = ToolRegistry::new(
        Arc::new(Scrubber::new()),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    );
    register_shell_tool(
        &mut registry,
        ShellBackend::Session(session),
        ShellPolicy::default(),
        MAX_COMMAND_TIMEOUT,
    )
    .unwrap();
    registry
}

async fn shell_exec(
    registry: &ToolRegistry,
    arguments: serde_json::Value,
) -> Result<String, ToolError> {
    registry
        .execute_with_policy(
            &ToolCall {
                id: "call-1".into(),
                name: "shell_exec".into(),
                arguments: arguments.to_string(),
                signature: None,
            },
            &ToolContext::new("test"),
        )
        .await
}

fn daemon_session(daemon: &Daemon, id: &str) -> VsockShellSession {
    VsockShellSession::new(ShellDaemonEndpoint::Unix(daemon.socket.clone()), id)
        .with_working_dir(daemon.work())
}

#[tokio::test]
async fn shell_exec_runs_in_a_daemon_session_after_the_policy() {
    let daemon = Daemon::start(&[]).await;
    std::fs::write(daemon.work().join("hello.txt"), "hello from the sandbox\n").unwrap();
    std::fs::write(
        daemon.work().join("env.py"),
        "import os\nprint(sorted(os.environ))\n",
    )
    .unwrap();
    let registry = registry(Arc::new(daemon_session(&daemon, "agent")));

    let output = shell_exec(&registry, json!({"command": "cat hello.txt"}))
        .await
        .unwrap();
    assert_eq!(output, "exit code: 0\nstdout:\nhello from the sandbox");

    let output = shell_exec(&registry, json!({"command": "ls missing-file"}))
        .await
        .unwrap();
    assert!(
        output.starts_with("exit code: 2\nstderr:\nls: cannot access"),
        "{output}"
    );

    let output = shell_exec(&registry, json!({"command": "python3 env.py"}))
        .await
        .unwrap();
    assert!(!output.contains("OXYDRA_TEST_SECRET"), "{output}");
    assert!(output.contains("'OXYDRA_SHELL_SESSION'"), "{output}");

    // The policy refuses before anything reaches the daemon.
    for command in [
        "touch pwned; ls",
        "rm -rf / && ls",
        "sh -c 'touch pwned'",
        "cat $(touch pwned)",
    ] {
        let err = shell_exec(&registry, json!({"command": command}))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ToolError::PolicyViolation { .. }),
            "{command}: {err}"
        );
    }
    assert!(!daemon.work().join("pwned").exists());
}

#[tokio::test]
async fn shell_exec_timeout_kills_grandchildren_in_the_daemon() {
    let daemon = Daemon::start(&[]).await;
    std::fs::write(
        daemon.work().join("spin.py"),
        "import subprocess, time\n\
         child = subprocess.Popen(['python3', '-c', 'import time; time.sleep(600)'])\n\
         open('grandchild.pid', 'w').write(str(child.pid))\n\
         print('started', flush=True)\n\
         time.sleep(600)\n",
    )
    .unwrap();
    let registry = registry(Arc::new(daemon_session(&daemon, "agent")));
    let output = shell_exec(
        &registry,
        json!({"command": "python3 spin.py", "timeout_secs": 1}),
    )
    .await
    .unwrap();
    assert!(
        output.starts_with("exit code: 137\nstdout:\nstarted"),
        "{output}"
    );
    assert!(
        output.contains("[timed out after 1s; the command and its children were killed]"),
        "{output}"
    );
    let pid = std::fs::read_to_string(daemon.work().join("grandchild.pid")).unwrap();
    assert_gone(pid.trim().parse().unwrap()).await;
}

#[tokio::test]
async fn a_killed_or_expired_session_is_recreated_on_the_next_call() {
    let daemon = Daemon::start(&[]).await;
    let session = Arc::new(daemon_session(&daemon, "agent"));
    let registry = registry(session.clone());
    shell_exec(&registry, json!({"command": "ls"}))
        .await
        .unwrap();
    // The conversation's own daemon session (`shell_exec` helper: "test").
    session
        .for_conversation(&"test".into())
        .kill()
        .await
        .unwrap();
    let output = shell_exec(&registry, json!({"command": "ls"}))
        .await
        .unwrap();
    assert!(output.starts_with("exit code: 0"), "{output}");
}

#[tokio::test]
async fn an_unreachable_daemon_is_a_clear_tool_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let session = VsockShellSession::new(ShellDaemonEndpoint::Unix(socket.clone()), "agent");
    let registry = registry(Arc::new(session));
    let err = shell_exec(&registry, json!({"command": "ls"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "shell daemon at unix://{} is unreachable: No such file or directory (os error 2)",
            socket.display()
        )
    );
}

#[tokio::test]
async fn daemon_refusals_reach_the_model_as_tool_errors() {
    let daemon = Daemon::start(&[]).await;
    let session = VsockShellSession::new(ShellDaemonEndpoint::Unix(daemon.socket.clone()), "agent")
        .with_working_dir(daemon.work().join("missing"));
    let err = session.run("ls", Duration::from_secs(5)).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("shell daemon: working directory")
            && err.to_string().contains("cannot be used"),
        "{err}"
    );
}

#[tokio::test]
async fn local_process_sessions_start_stream_and_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("hello.txt"), "hi\n").unwrap();
    let socket = dir.path().join("local.sock");
    let local = LocalProcessShellSession::start(LocalDaemonOptions::new(BINARY, &socket, &work))
        .await
        .unwrap();
    let daemon_pid = local.pid().unwrap() as i32;
    let local = Arc::new(local);
    let registry = registry(local.clone());
    let output = shell_exec(&registry, json!({"command": "cat hello.txt"}))
        .await
        .unwrap();
    assert_eq!(output, "exit code: 0\nstdout:\nhi");

    let mut chunks = Vec::new();
    let output = local
        .exec_streaming(
            "echo one; sleep 0.05; echo two >&2",
            Duration::from_secs(10),
            &mut |stream, data| chunks.push((stream, data.to_owned())),
        )
        .await
        .unwrap();
    assert_eq!(
        (output.stdout.as_str(), output.stderr.as_str()),
        ("one\n", "two\n")
    );
    assert_eq!(
        chunks,
        vec![
            (StreamType::Stdout, "one\n".to_owned()),
            (StreamType::Stderr, "two\n".to_owned())
        ]
    );

    drop(registry);
    let local = Arc::into_inner(local).unwrap();
    local.shutdown(Duration::from_secs(10)).await.unwrap();
    assert!(process_gone(daemon_pid));
    assert!(!socket.exists(), "the daemon left its socket behind");
}

#[tokio::test]
async fn a_missing_daemon_binary_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalProcessShellSession::start(LocalDaemonOptions::new(
        dir.path().join("no-such-daemon"),
        dir.path().join("s.sock"),
        dir.path(),
    ))
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("could not start the local shell daemon"),
        "{err}"
    );
}

/// Each conversation gets a daemon session of its own, so two running
/// `shell_exec` at the same time both succeed: one shared session runs
/// one command at a time and refuses the other as busy.
#[tokio::test]
async fn two_conversations_run_shell_commands_at_the_same_time() {
    let daemon = Daemon::start(&[]).await;
    let mut registry = ToolRegistry::new(
        Arc::new(Scrubber::new()),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    );
    register_shell_tool(
        &mut registry,
        ShellBackend::Session(Arc::new(daemon_session(&daemon, "agent"))),
        ShellPolicy::new(["sleep", "pwd"]),
        MAX_COMMAND_TIMEOUT,
    )
    .unwrap();
    let call = ToolCall {
        id: "call-1".into(),
        name: "shell_exec".into(),
        arguments: json!({ "command": "sleep 1" }).to_string(),
        signature: None,
    };
    let (one, two) = (ToolContext::new("s-first"), ToolContext::new("s-second"));
    let (first, second) = tokio::join!(
        registry.execute_with_policy(&call, &one),
        registry.execute_with_policy(&call, &two),
    );
    assert_eq!(first.unwrap(), "exit code: 0");
    assert_eq!(second.unwrap(), "exit code: 0");
    // One conversation's two calls at once meet its one session.
    let (again, clash) = tokio::join!(registry.execute_with_policy(&call, &one), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        registry.execute_with_policy(&call, &one).await
    });
    assert_eq!(again.unwrap(), "exit code: 0");
    let clash = clash.unwrap_err().to_string();
    assert!(clash.contains("already running a command"), "{clash}");
}
