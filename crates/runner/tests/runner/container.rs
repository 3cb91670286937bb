//! The container tier against the real Docker Engine: the runner starts
//! alice's `oxydra-vm` + `shell-vm` pair from images built from this
//! build's binaries; a turn's `shell_exec` runs in the sidecar and its file
//! shows up in `shared/`; the sidecar sees nothing but `shared`, has no
//! network and is held to its memory limit; the supervisor restarts a
//! killed pair and captures both containers' logs; `stop` removes them;
//! the approval of the sidecar command is in `oxydra-runner audit`;
//! a missing sidecar image is a degraded start without shell tools; an
//! installed embedding model reaches the agent through a read-only mount.
//!
//! Skipped, with the reason printed, when no engine answers or the
//! `shell-daemon` binary was not built (`scripts/test` builds it and
//! starts an engine when it can).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use runner::host::container::spec::container_prefix;
use test_support::{FakeLlm, Script, ScriptedReply, ScriptedToolCall, WhenExhausted, WireFormat};
use types::UserId;
use types::protocol::bootstrap::StartupDegradedReason;
use types::runner::SandboxTier;

use crate::daemon::{running, wait_for_status};
use crate::{Fixture, connect, health, turn};

/// The tag of the images these tests build.
const TAG: &str = "test";
/// The sidecar's memory limit in the tests.
const MEMORY_MIB: u64 = 256;

/// Why the container tests cannot run here, or `None` when they can (the
/// images are built once per test run).
fn unavailable() -> Option<&'static str> {
    static STATE: OnceLock<Option<String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let shell_daemon =
                Path::new(env!("CARGO_BIN_EXE_oxydra-vm")).with_file_name("shell-daemon");
            if !shell_daemon.is_file() {
                return Some(format!(
                    "{} is not built (cargo build -p shell-daemon; scripts/test does it)",
                    shell_daemon.display()
                ));
            }
            match Command::new("docker").arg("info").output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    return Some(format!(
                        "no Docker Engine answers: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Err(e) => return Some(format!("no docker CLI: {e}")),
            }
            let script = repo_root().join("scripts/build-guest-images");
            let built = Command::new(&script)
                .args(["--tag", TAG, "--oxydra-vm", env!("CARGO_BIN_EXE_oxydra-vm")])
                .arg("--shell-daemon")
                .arg(&shell_daemon)
                .output()
                .expect("the image build script runs");
            assert!(
                built.status.success(),
                "{} failed:\n{}\n{}",
                script.display(),
                String::from_utf8_lossy(&built.stdout),
                String::from_utf8_lossy(&built.stderr)
            );
            None
        })
        .as_deref()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

macro_rules! require_engine {
    () => {
        if let Some(why) = unavailable() {
            eprintln!("skipping: {why}");
            return;
        }
    };
}

/// alice on the container tier with the test images and a memory limit.
fn container_fixture(llm: &FakeLlm, shell_image: &str) -> Fixture {
    let fixture = Fixture::new(&llm.base_url());
    fixture.write(
        "runner.toml",
        &format!(
            "workspace_root = \"workspaces\"\ndefault_tier = \"container\"\n\
             [users.alice]\nconfig_path = \"users/alice.toml\"\n\
             [guest_images]\noxydra_vm = \"oxydra-vm:{TAG}\"\nshell_vm = \"{shell_image}\"\n"
        ),
    );
    fixture.write(
        "users/alice.toml",
        &format!(
            "[credentials]\nOPENAI_API_KEY = {{ env = \"ALICE_OPENAI_KEY\" }}\n\
             [resources]\nmemory_mib = {MEMORY_MIB}\npids = 256\n"
        ),
    );
    fixture
}

/// The names of alice's containers in this fixture.
fn names(fixture: &Fixture) -> (String, String) {
    let workspace = std::path::absolute(fixture.workspace()).unwrap();
    let prefix = container_prefix(&UserId::parse("alice").unwrap(), &workspace);
    (format!("{prefix}-vm"), format!("{prefix}-shell"))
}

/// `docker <args>`: exit code and stdout + stderr.
fn docker(args: &[&str]) -> (i32, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn exists(container: &str) -> bool {
    docker(&["inspect", container]).0 == 0
}

/// A fake LLM asking for one `shell_exec` call, then answering "done".
async fn shell_llm(command: &str) -> FakeLlm {
    let arguments = serde_json::json!({ "command": command }).to_string();
    FakeLlm::start_script(Script {
        format: WireFormat::Openai,
        when_exhausted: WhenExhausted::Echo,
        replies: vec![
            ScriptedReply::tool_calls(vec![ScriptedToolCall::new("shell_exec", arguments)]),
            ScriptedReply::text("done"),
        ],
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn shell_exec_runs_in_the_sidecar_which_sees_only_shared() {
    require_engine!();
    let _turn = crate::GUESTS.lock().await;
    let llm = shell_llm("touch made-in-the-sidecar.txt").await;
    let fixture = container_fixture(&llm, &format!("oxydra-shell-vm:{TAG}"));
    let (agent, shell) = names(&fixture);
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;
    assert!(
        runner.stdout().contains("tier container"),
        "{}",
        runner.stdout()
    );

    let (client, mut events, _) = connect(fixture.endpoint_file(), None).await;
    assert_eq!(
        health(&client, &mut events).await,
        (SandboxTier::Container, vec![])
    );
    let (reply, tools) = turn(&client, &mut events, "make a file").await;
    assert_eq!(
        (reply.as_str(), tools.as_slice()),
        ("done", ["shell_exec".to_owned()].as_slice())
    );
    assert!(
        fixture
            .workspace()
            .join("shared/made-in-the-sidecar.txt")
            .is_file(),
        "the sidecar's file is in alice's shared directory"
    );
    // The approval the command needed is on record: who, what, the outcome.
    let audit = fixture.run(&["audit", "--json"]);
    assert_eq!(audit.code, Some(0), "{audit:?}");
    let records: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let decided: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["kind"] == "approval_decided")
        .collect();
    assert_eq!(decided.len(), 1, "{records:?}");
    assert_eq!(
        (
            &decided[0]["source"],
            &decided[0]["subject"],
            &decided[0]["decision"],
            &decided[0]["actor"]
        ),
        (
            &serde_json::json!("guest"),
            &serde_json::json!("shell_exec"),
            &serde_json::json!("approved"),
            &serde_json::json!("gateway:alice")
        )
    );

    // The sidecar's view: shared only, no host files, no network.
    let (code, listing) = docker(&["exec", &shell, "ls", "-A", "/workspace"]);
    assert_eq!((code, listing.trim()), (0, "shared"));
    let host_path = fixture.path().display().to_string();
    let (code, _) = docker(&["exec", &shell, "ls", &host_path]);
    assert_ne!(code, 0, "the host's {host_path} is invisible");
    let (code, _) = docker(&["exec", &shell, "ls", "/workspace/vault"]);
    assert_ne!(code, 0, "the vault is not mounted in the sidecar");
    let (_, interfaces) = docker(&["exec", &shell, "ls", "/sys/class/net"]);
    assert_eq!(interfaces.trim(), "lo", "no network but loopback");
    let (_, id) = docker(&["exec", &shell, "id", "-u"]);
    let euid = nix::unistd::geteuid();
    let expected = if euid.is_root() { 65532 } else { euid.as_raw() };
    assert_eq!(id.trim(), expected.to_string(), "runs unprivileged");
    // Allocating twice the limit gets the process killed (137 = SIGKILL).
    let grab = format!(
        "b = bytearray({} * 1024 * 1024); print(len(b))",
        MEMORY_MIB * 2
    );
    let (code, output) = docker(&["exec", &shell, "python3", "-c", &grab]);
    assert_eq!(code, 137, "the memory limit holds: {output}");

    drop(client);
    assert_eq!(runner.terminate().await, Some(0), "{}", runner.stderr());
    assert!(!exists(&agent) && !exists(&shell), "stop removes the pair");
    assert!(!fixture.endpoint_file().exists());
}

#[tokio::test]
async fn the_supervisor_restarts_a_killed_pair_logs_both_and_stop_removes_them() {
    require_engine!();
    let _turn = crate::GUESTS.lock().await;
    let llm = shell_llm("touch restarted.txt").await;
    let fixture = container_fixture(&llm, &format!("oxydra-shell-vm:{TAG}"));
    let (agent, shell) = names(&fixture);
    let mut supervisor = fixture.spawn(&["--daemon", "start"]);
    supervisor.wait_for_file(&fixture.control_socket()).await;
    let first = wait_for_status(&fixture, "running", |s| running(s).is_some()).await;
    assert_eq!((first.tier, first.restarts), (SandboxTier::Container, 0));
    assert!(first.degraded_reasons.is_empty(), "{first:?}");

    let (code, out) = docker(&["kill", &agent]);
    assert_eq!(code, 0, "{out}");
    let second = wait_for_status(&fixture, "restarted", |s| {
        s.restarts == 1 && running(s).is_some()
    })
    .await;
    assert!(second.last_exit.is_some(), "{second:?}");
    let (client, mut events, _) = connect(fixture.endpoint_file(), None).await;
    let (_, tools) = turn(&client, &mut events, "after the restart").await;
    assert_eq!(tools, ["shell_exec"]);
    assert!(fixture.workspace().join("shared/restarted.txt").is_file());
    drop(client);

    let log = std::fs::read_to_string(&second.log_file).unwrap();
    for needle in ["shell-vm | ", "oxydra-vm ready", "restarting in"] {
        assert!(log.contains(needle), "the log has {needle:?}:\n{log}");
    }
    let done = fixture.run(&["stop"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(supervisor.wait_exit().await, Some(0));
    assert!(!exists(&agent) && !exists(&shell), "stop removes the pair");
}

#[tokio::test]
async fn a_missing_sidecar_image_is_a_degraded_start_without_shell_tools() {
    require_engine!();
    let _turn = crate::GUESTS.lock().await;
    let llm = crate::echo_llm().await;
    let fixture = container_fixture(&llm, "oxydra-no-such-shell-image:test");
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;
    assert!(
        runner
            .stdout()
            .contains("degraded: shell sidecar unavailable"),
        "{}",
        runner.stdout()
    );
    assert!(
        runner.stderr().contains("oxydra-no-such-shell-image:test"),
        "{}",
        runner.stderr()
    );
    let (client, mut events, _) = connect(fixture.endpoint_file(), None).await;
    assert_eq!(
        health(&client, &mut events).await,
        (
            SandboxTier::Container,
            vec![StartupDegradedReason::SidecarUnavailable]
        )
    );
    let (reply, tools) = turn(&client, &mut events, "hello").await;
    assert!(tools.is_empty() && reply.contains("hello"), "{reply}");
    drop(client);
    assert_eq!(runner.terminate().await, Some(0));
    let stderr = runner.stderr();
    let registered = stderr
        .lines()
        .find(|line| line.contains("tools registered"))
        .unwrap_or_else(|| panic!("the guest logs its tools:\n{stderr}"));
    assert!(!registered.contains("shell_exec"), "{registered}");
}

#[tokio::test]
async fn the_installed_model_reaches_the_agent_container_read_only() {
    require_engine!();
    let Some(model) = crate::models::model_files() else {
        return;
    };
    let _turn = crate::GUESTS.lock().await;
    let llm = crate::echo_llm().await;
    let fixture = container_fixture(&llm, &format!("oxydra-shell-vm:{TAG}"));
    // Loading the model takes a few hundred MiB: more than the other
    // tests' limit.
    fixture.write(
        "users/alice.toml",
        "[credentials]\nOPENAI_API_KEY = { env = \"ALICE_OPENAI_KEY\" }\n\
         [resources]\nmemory_mib = 1024\n",
    );
    let from = model.to_string_lossy().into_owned();
    let done = fixture.run(&["models", "install", "--from", &from]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let (agent, shell) = names(&fixture);
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;

    let (client, mut events, _) = connect(fixture.endpoint_file(), None).await;
    let (reply, _) = turn(&client, &mut events, "a kitten rested on the rug").await;
    assert_eq!(reply, "You said: a kitten rested on the rug");
    drop(client);
    let db = fixture.workspace().join("oxydra_memory.db");
    assert_eq!(
        crate::models::stored_vector_models(&db).await,
        ["candle:all-MiniLM-L6-v2"],
        "{}",
        runner.stderr()
    );
    // Mounted read-only for the agent, absent from the sidecar.
    let (_, mounts) = docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Destination}}={{.RW}} {{end}}",
        &agent,
    ]);
    assert!(mounts.contains("/run/oxydra/model=false"), "{mounts}");
    let (_, mounts) = docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Destination}} {{end}}",
        &shell,
    ]);
    assert!(!mounts.contains("/run/oxydra/model"), "{mounts}");
    assert_eq!(runner.terminate().await, Some(0), "{}", runner.stderr());
}
