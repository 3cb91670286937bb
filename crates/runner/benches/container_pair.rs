//! The container tier against the real Docker Engine: how long
//! `oxydra-runner start` takes to bring alice's `oxydra-vm` + `shell-vm`
//! pair up (spawn → the runner's "is running" line: both containers
//! started, the sidecar's daemon probed, the guest's gateway ready) and to
//! take it down (SIGTERM → runner exit, which removes both containers), and
//! the latency of `echo hi` through the sidecar's shell daemon compared with
//! host mode (`sh -c` directly).
//!
//! The sidecar is reached from the host through alice's
//! `<workspace>/ipc/shell.sock`, the directory the runner bind-mounts into
//! both containers: the same daemon and the same socket the guest uses,
//! crossing from the host into the container's mount (a Unix connect, no
//! network).
//!
//! `cargo bench -p runner --bench container_pair` measures (build
//! `cargo build --release -p shell-daemon` first); under `cargo test` it
//! makes one quick smoke pass (one pair start, three calls). Without an
//! engine, a `shell-daemon` binary or buildable images it prints why and
//! exits 0. Prints a table and one JSON line.

use std::fs;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use runner::host::container::spec::container_prefix;
use sandbox::scrub::Scrubber;
use sandbox::shell_policy::ShellPolicy;
use serde_json::json;
use test_support::bench::{Timings, full_run, time_calls};
use tools::shell::{
    HostShellSession, MAX_COMMAND_TIMEOUT, ShellBackend, ShellDaemonEndpoint, ShellSession,
    VsockShellSession, register_shell_tool,
};
use tools::{StaticApproval, ToolRegistry};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{ToolCall, ToolContext, UserId};

const RUNNER: &str = env!("CARGO_BIN_EXE_oxydra-runner");
const VM: &str = env!("CARGO_BIN_EXE_oxydra-vm");
/// The tag of the images this benchmark builds (apart from the tests'
/// `test`, so the two never rebuild each other's images mid-run).
const TAG: &str = "bench";
/// Timed pair starts in a full run (after one untimed first start in a
/// fresh workspace, reported apart).
const STARTS: usize = 10;
const CALLS: usize = 1_000;
const SMOKE_CALLS: usize = 3;
/// Bound on every wait; reaching it fails the benchmark.
const PATIENCE: Duration = Duration::from_secs(150);
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

type Call<'a> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = String> + 'a>> + 'a>;

/// The default shell allowlist plus `echo`, which it lacks.
fn allowlist() -> Vec<String> {
    let mut programs: Vec<String> = ShellPolicy::default()
        .allowed_programs()
        .map(str::to_owned)
        .collect();
    programs.push("echo".into());
    programs
}

/// `docker <args>`: stdout when it succeeds, else why not.
fn docker(args: &[&str]) -> Result<String, String> {
    match Command::new("docker").args(args).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => Err(format!("no docker CLI: {e}")),
    }
}

/// Why the benchmark cannot run here; otherwise builds the images (a no-op
/// when their inputs are unchanged) and returns the engine's version.
fn prepare(full: bool) -> Result<String, String> {
    let shell_daemon = Path::new(VM).with_file_name("shell-daemon");
    if !shell_daemon.is_file() {
        let profile = if full { " --release" } else { "" };
        return Err(format!(
            "{} is not built (cargo build{profile} -p shell-daemon)",
            shell_daemon.display()
        ));
    }
    let version = docker(&["version", "--format", "{{.Server.Version}}"])
        .map_err(|why| format!("no Docker Engine answers: {why}"))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-guest-images");
    let built = Command::new(&script)
        .args(["--tag", TAG, "--oxydra-vm", VM])
        .arg("--shell-daemon")
        .arg(&shell_daemon)
        .output()
        .map_err(|e| format!("{} does not run: {e}", script.display()))?;
    if !built.status.success() {
        return Err(format!(
            "the guest images cannot be built ({}):\n{}\n{}",
            script.display(),
            String::from_utf8_lossy(&built.stdout).trim(),
            String::from_utf8_lossy(&built.stderr).trim()
        ));
    }
    Ok(version.trim().to_owned())
}

/// A working directory with alice on the container tier and this
/// benchmark's images. The provider is never contacted (no turn is run).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
            fs::write(path, text).expect("a fixture file");
        };
        write(
            "runner.toml",
            &format!(
                "workspace_root = \"workspaces\"\ndefault_tier = \"container\"\n\
                 [users.alice]\nconfig_path = \"users/alice.toml\"\n\
                 [guest_images]\noxydra_vm = \"oxydra-vm:{TAG}\"\n\
                 shell_vm = \"oxydra-shell-vm:{TAG}\"\n"
            ),
        );
        write(
            "users/alice.toml",
            "[credentials]\nOPENAI_API_KEY = { env = \"ALICE_OPENAI_KEY\" }\n",
        );
        // The guest's `shell_exec` gets the same policy as the registry rows
        // below; the key is `tools.shell.allowlist` (docs/configuration.md).
        let allowlist = toml_list(&allowlist());
        write(
            ".oxydra/agent.toml",
            &format!(
                "[selection]\nprovider = \"local\"\nmodel = \"gpt-4.1\"\n\
                 [providers.local]\nprovider_type = \"openai\"\n\
                 base_url = \"http://127.0.0.1:9/v1\"\n\
                 [tools.shell]\nallowlist = {allowlist}\n"
            ),
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn workspace(&self) -> PathBuf {
        self.path().join("workspaces/alice")
    }

    fn shell_socket(&self) -> PathBuf {
        self.workspace().join("ipc/shell.sock")
    }

    /// alice's container names start with this.
    fn prefix(&self) -> String {
        let user = UserId::parse("alice").expect("a valid user id");
        container_prefix(&user, &self.workspace())
    }
}

/// `["a", "b"]` as a TOML array of basic strings (the names are plain
/// program basenames; serde_json's string quoting is valid TOML for them).
fn toml_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialize")
}

/// A started `oxydra-runner`; dropping it without `stop` sends SIGTERM
/// and waits, so a failing benchmark leaves no containers behind.
struct Started {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Started {
    /// Spawns `oxydra-runner start` and waits for its "is running" line;
    /// returns the time from spawn to that line.
    fn start(fixture: &Fixture, run: usize) -> (Self, Duration) {
        let stderr = fixture.path().join(format!("runner-{run}.err"));
        let spawned = Instant::now();
        let mut child = Command::new(RUNNER)
            .current_dir(fixture.path())
            .args(["--config", "runner.toml", "start"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", fixture.path())
            .env("ALICE_OPENAI_KEY", "sk-bench")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).expect("the stderr file"))
            .spawn()
            .expect("oxydra-runner starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let started = Self {
            child: Some(child),
            stderr,
        };
        // The reader keeps draining stdout after the line, so the runner
        // never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.contains("is running") {
                    let _ = tx.send((Instant::now(), line));
                }
            }
        });
        match rx.recv_timeout(PATIENCE) {
            Ok((at, line)) => {
                assert!(line.contains("tier container"), "not a pair: {line}");
                assert!(!line.contains("degraded"), "a degraded start: {line}");
                (started, at - spawned)
            }
            Err(e) => panic!(
                "the runner did not report a running guest ({e})\nstderr:\n{}",
                fs::read_to_string(&started.stderr).unwrap_or_default()
            ),
        }
    }

    /// SIGTERM and wait for the exit; returns how long that took.
    fn stop(mut self) -> Duration {
        let mut child = self.child.take().expect("a running child");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
        let asked = Instant::now();
        kill(pid, Signal::SIGTERM).expect("SIGTERM delivered");
        let status = child.wait().expect("oxydra-runner exits");
        let took = asked.elapsed();
        assert!(
            status.success(),
            "oxydra-runner stopped with {status}\nstderr:\n{}",
            fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        took
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let _ = child.wait();
        }
    }
}

/// alice's containers that still exist.
fn leftovers(fixture: &Fixture) -> String {
    let filter = format!("name={}", fixture.prefix());
    docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
        .unwrap_or_else(|why| format!("(docker ps failed: {why})"))
        .trim()
        .to_owned()
}

fn registry(backend: ShellBackend) -> ToolRegistry {
    let mut registry = ToolRegistry::new(
        Arc::new(Scrubber::new()),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    );
    register_shell_tool(
        &mut registry,
        backend,
        ShellPolicy::new(allowlist()),
        MAX_COMMAND_TIMEOUT,
    )
    .expect("shell_exec registers");
    registry
}

fn through<'a>(registry: &'a ToolRegistry, tool_call: &'a ToolCall) -> Call<'a> {
    Box::new(move || {
        Box::pin(async move {
            registry
                .execute_with_policy(tool_call, &ToolContext::new("test"))
                .await
                .expect("shell_exec")
        })
    })
}

fn bare<'a>(session: &'a dyn ShellSession) -> Call<'a> {
    Box::new(move || {
        Box::pin(async move {
            session
                .exec(&"bench".into(), "echo hi", EXEC_TIMEOUT)
                .await
                .expect("echo hi runs")
                .stdout
        })
    })
}

/// `echo hi` through the sidecar and on the host: the session round trip
/// alone, and `shell_exec` through the tool registry.
async fn shell_rows(fixture: &Fixture, calls: usize) -> Vec<(&'static str, Timings)> {
    let sidecar: Arc<dyn ShellSession> = Arc::new(VsockShellSession::new(
        ShellDaemonEndpoint::Unix(fixture.shell_socket()),
        "bench",
    ));
    let host_dir = fixture.path().join("host-shell");
    fs::create_dir_all(&host_dir).expect("the host shell's directory");
    let host: Arc<dyn ShellSession> = Arc::new(HostShellSession::new(host_dir.clone()));
    let sidecar_registry = registry(ShellBackend::Session(sidecar.clone()));
    let host_registry = registry(ShellBackend::Host(host_dir));
    let tool_call = ToolCall {
        id: "bench".into(),
        name: "shell_exec".into(),
        arguments: json!({ "command": "echo hi" }).to_string(),
        signature: None,
    };
    let variants: [(&'static str, Call<'_>); 4] = [
        ("sidecar round trip (socket)", bare(sidecar.as_ref())),
        ("host sh -c", bare(host.as_ref())),
        (
            "shell_exec via sidecar",
            through(&sidecar_registry, &tool_call),
        ),
        ("shell_exec on host", through(&host_registry, &tool_call)),
    ];
    let mut rows = Vec::new();
    for (name, call) in &variants {
        let timings = time_calls(calls, call, |output: &String| {
            assert!(output.contains("hi"), "unexpected output: {output}");
        })
        .await;
        rows.push((*name, timings));
    }
    rows
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

/// One start, optionally the shell measurements, one stop; checks that the
/// stop removed both containers.
fn cycle(
    fixture: &Fixture,
    run: usize,
    shell: Option<(&tokio::runtime::Runtime, usize)>,
) -> (Duration, Duration, Vec<(&'static str, Timings)>) {
    let (started, start) = Started::start(fixture, run);
    let rows = shell
        .map(|(runtime, calls)| runtime.block_on(shell_rows(fixture, calls)))
        .unwrap_or_default();
    let stop = started.stop();
    let left = leftovers(fixture);
    assert!(left.is_empty(), "the stop left containers behind: {left}");
    (start, stop, rows)
}

fn main() {
    let full = full_run();
    let engine = match prepare(full) {
        Ok(version) => version,
        Err(why) => {
            println!("container_pair: skipping: {why}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let calls = if full { CALLS } else { SMOKE_CALLS };
    let fixture = Fixture::new();

    // The first start creates alice's workspace and memory database; in
    // the smoke pass it is the only one and carries the shell calls.
    let (first_start, first_stop, smoke_rows) =
        cycle(&fixture, 0, (!full).then_some((&runtime, calls)));
    let (starts, stops, rows) = if full {
        let (mut starts, mut stops, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for run in 1..=STARTS {
            // The shell calls run in the last pair, after its start is timed.
            let shell = (run == STARTS).then_some((&runtime, calls));
            let (start, stop, measured) = cycle(&fixture, run, shell);
            starts.push(start);
            stops.push(stop);
            rows.extend(measured);
        }
        (starts, stops, rows)
    } else {
        (vec![first_start], vec![first_stop], smoke_rows)
    };
    let timed = starts.len();
    let start = Timings::of(starts);
    let stop = Timings::of(stops);

    println!(
        "container pair (oxydra-vm + shell-vm), Docker Engine {engine}, timed starts: {}{}",
        timed,
        if full { "" } else { " (smoke pass)" }
    );
    println!(
        "  first start (fresh workspace):   {:>8.1} ms",
        ms(first_start)
    );
    println!(
        "  start → \"is running\":  p50 {:>8.1} ms   p99 {:>8.1} ms",
        ms(start.p50),
        ms(start.p99)
    );
    println!(
        "  SIGTERM → runner exit: p50 {:>8.1} ms   p99 {:>8.1} ms",
        ms(stop.p50),
        ms(stop.p99)
    );
    println!("`echo hi`, {calls} calls each");
    println!(
        "{:<30} {:>10} {:>10} {:>10}",
        "variant", "p50 µs", "p99 µs", "mean µs"
    );
    for (name, t) in &rows {
        println!(
            "{name:<30} {:>10} {:>10} {:>10}",
            micros(t.p50),
            micros(t.p99),
            micros(t.mean)
        );
    }
    let variants: Vec<_> = rows
        .iter()
        .map(|(name, t)| {
            json!({
                "variant": name,
                "p50_us": micros(t.p50),
                "p99_us": micros(t.p99),
                "mean_us": micros(t.mean),
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "bench": "container_pair",
            "smoke": !full,
            "engine": engine,
            "starts": timed,
            "first_start_ms": ms(first_start),
            "start_ms": {"p50": ms(start.p50), "p99": ms(start.p99)},
            "stop_ms": {"p50": ms(stop.p50), "p99": ms(stop.p99)},
            "calls": calls,
            "shell_exec": variants,
        })
    );
}
