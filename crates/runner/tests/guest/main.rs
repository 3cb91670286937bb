//! The real `oxydra-vm` binary, started with an envelope on stdin the way
//! the runner starts it: envelope and configuration errors, and a served
//! agent (fake LLM over HTTP, real tools and memory in a temporary
//! workspace) reached through the gateway with the real client library.

mod bad_input;
#[path = "../common/chat.rs"]
mod chat;
mod crash;
mod errors;
mod examples;
mod faults;
mod hardening;
mod knowledge;
mod memory_tools;
mod serving;

pub use chat::{connect, echo_llm, health, turn, turn_outcomes};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use test_support::FakeLlm;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use types::AgentConfig;
use types::protocol::bootstrap::{MAX_ENVELOPE_BYTES, RunnerBootstrapEnvelope};
use types::protocol::framing::encode_json_frame;

/// Every wait is bounded by this; hitting it is a failure.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub const VM: &str = env!("CARGO_BIN_EXE_oxydra-vm");

/// An agent configuration using the fake LLM as provider `fake`.
pub fn agent_config(llm: &FakeLlm) -> AgentConfig {
    test_support::openai_agent_config(llm.base_url())
}

/// The process-tier envelope the runner sends for `alice`.
pub fn envelope(workspace: &Path, config: AgentConfig) -> RunnerBootstrapEnvelope {
    test_support::process_envelope("alice", workspace, config)
}

pub fn frame(envelope: &RunnerBootstrapEnvelope) -> Vec<u8> {
    encode_json_frame(envelope, MAX_ENVELOPE_BYTES).unwrap()
}

/// One compiled-module cache for every guest the tests start: compiling
/// the WASM file-tool module takes seconds in a debug build, loading it
/// from the cache milliseconds.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("oxydra-test-cache")
}

/// `oxydra-vm` in `home` with a cleared environment, as the runner starts
/// it; output piped, killed when dropped.
pub fn vm_command(home: &Path) -> Command {
    let mut command = Command::new(VM);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CACHE_HOME", shared_cache())
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `oxydra-vm --bootstrap-stdin`, writes `stdin_bytes` and closes
/// its stdin.
pub async fn spawn_vm(home: &Path, stdin_bytes: &[u8]) -> Child {
    let mut child = vm_command(home).arg("--bootstrap-stdin").spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The guest may exit before reading everything (bad input): ignore
    // a broken pipe, the exit status tells.
    let _ = stdin.write_all(stdin_bytes).await;
    drop(stdin);
    child
}

/// Exit code and stderr of a guest that must stop by itself.
pub async fn finish(child: Child) -> (Option<i32>, String) {
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("oxydra-vm exited in time")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `<workspace>/tmp/gateway-endpoint`, once the guest wrote it.
pub async fn wait_for_endpoint(workspace: &Path, child: &mut Child) -> PathBuf {
    let path = channels::endpoint_file_in(workspace);
    let deadline = Instant::now() + PATIENCE;
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("oxydra-vm exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "no endpoint file after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    path
}
