//! The `oxydra-vm` process as the benchmarks drive it (shared by the
//! `guest_start` and `system` harnesses through `#[path]`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use types::AgentConfig;
use types::protocol::bootstrap::{ApprovalPolicy, MAX_ENVELOPE_BYTES};
use types::protocol::framing::encode_json_frame;

const VM: &str = env!("CARGO_BIN_EXE_oxydra-vm");

/// The bootstrap frame of a process-tier guest for user `bench` in
/// `workspace` running `config`, its tools approved in advance.
pub fn envelope_frame(workspace: &Path, config: AgentConfig) -> Vec<u8> {
    let mut envelope = test_support::process_envelope("bench", workspace, config);
    envelope.runtime_policy.approval = ApprovalPolicy::Allow;
    encode_json_frame(&envelope, MAX_ENVELOPE_BYTES).expect("envelope encodes")
}

/// A running guest; killed if the benchmark panics before stopping it.
pub struct Guest(Child);

impl Guest {
    /// `oxydra-vm --compile-wasm` for `home`, as the runner runs it before
    /// it starts a guest: the WASM file-tool module compiled into the
    /// user's cache.
    pub fn compile_ahead(home: &Path) {
        let compiled = vm_command(home)
            .arg("--compile-wasm")
            .stdout(Stdio::null())
            .status()
            .expect("oxydra-vm --compile-wasm runs");
        assert!(compiled.success(), "oxydra-vm --compile-wasm: {compiled}");
    }

    /// Starts `oxydra-vm --bootstrap-stdin` in `home` (cleared environment,
    /// as the runner starts it) and returns once it printed its ready line.
    pub fn start(home: &Path, frame: &[u8]) -> Self {
        let mut child = vm_command(home)
            .arg("--bootstrap-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("oxydra-vm starts");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(frame).expect("envelope written");
        drop(stdin);
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut ready)
            .expect("ready line");
        assert!(
            ready.starts_with("oxydra-vm ready: "),
            "unexpected: {ready:?}"
        );
        Self(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, and the guest must stop cleanly.
    pub fn stop(mut self) {
        let pid = Pid::from_raw(i32::try_from(self.0.id()).expect("pid fits"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM delivered");
        let status = self.0.wait().expect("oxydra-vm exits");
        assert!(status.success(), "oxydra-vm stopped with {status}");
    }
}

/// `oxydra-vm` with the environment the runner gives it for `home`.
fn vm_command(home: &Path) -> Command {
    let mut command = Command::new(VM);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("RUST_LOG", "warn");
    command
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `VmRSS` of a process, in KiB (0 once it is gone).
pub fn resident_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` memory field (`"VmRSS:"`, `"RssAnon:"`…) in
/// KiB, 0 once the process is gone. `RssAnon` is the private memory alone:
/// `VmRSS` also counts mapped file pages, once per mapping (the memory
/// database is mapped by each of its connections).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
