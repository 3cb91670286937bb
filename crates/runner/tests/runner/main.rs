//! The real `oxydra-runner` (with the real `oxydra-vm` next to it) in a
//! temporary working directory: foreground start and stop, turns through
//! the gateway against a fake LLM, the `--daemon` supervisor behind its
//! control socket, configuration errors and the starter configuration,
//! and installing the local embedding model (`models`).
//!
//! Every wait is bounded; every started runner is stopped by a guard
//! (SIGTERM, so it stops its guest, then SIGKILL) even when a test fails.

mod audit;
#[path = "../common/chat.rs"]
mod chat;
mod config;
mod container;
mod daemon;
mod foreground;
mod models;
mod telegram;
mod tui;

pub use chat::{connect, echo_llm, health, turn};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// Every wait is bounded by this; reaching it fails the test. Generous:
/// a guest's first start in a fresh workspace compiles its WASM tool
/// modules (seconds in a debug build, more on a busy machine).
pub const PATIENCE: Duration = Duration::from_secs(150);

/// Tests that start guests take turns: several cold guests compiling WASM
/// at once on a small machine would only test the machine.
pub static GUESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const RUNNER: &str = env!("CARGO_BIN_EXE_oxydra-runner");

/// A working directory with `runner.toml`, `users/alice.toml` and
/// `.oxydra/agent.toml` whose provider `fake` is the fake LLM.
#[derive(Debug)]
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new(llm_base_url: &str) -> Self {
        let fixture = Self::empty();
        fixture.write(
            "runner.toml",
            "workspace_root = \"workspaces\"\ndefault_tier = \"process\"\n\
             [users.alice]\nconfig_path = \"users/alice.toml\"\n",
        );
        fixture.write(
            "users/alice.toml",
            "[credentials]\nOPENAI_API_KEY = { env = \"ALICE_OPENAI_KEY\" }\n",
        );
        fixture.write(
            ".oxydra/agent.toml",
            &format!(
                "[selection]\nprovider = \"fake\"\nmodel = \"gpt-4.1\"\n\
                 [reliability]\nmax_attempts = 1\n\
                 [providers.fake]\nprovider_type = \"openai\"\nbase_url = \"{llm_base_url}\"\n"
            ),
        );
        fixture
    }

    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn workspace(&self) -> PathBuf {
        self.path().join("workspaces/alice")
    }

    pub fn endpoint_file(&self) -> PathBuf {
        self.workspace().join("tmp/gateway-endpoint")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.path().join("workspaces/.runner/alice.sock")
    }

    /// `oxydra-runner --config runner.toml <args>` in the fixture, with a
    /// private HOME (no `~/.config/oxydra` of the machine) and alice's key.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(RUNNER);
        command
            .current_dir(self.path())
            .args(["--config", "runner.toml"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("ALICE_OPENAI_KEY", "sk-alice")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        command
    }

    /// Runs a command that must finish by itself.
    pub fn run(&self, args: &[&str]) -> Done {
        run_to_end(self.command(args))
    }

    /// Starts a long-running runner with its output in files.
    pub fn spawn(&self, args: &[&str]) -> Runner {
        spawn(self.command(args), self.path())
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Done {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_to_end(mut command: Command) -> Done {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output: Output = match rx.recv_timeout(PATIENCE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            panic!("command did not finish within {PATIENCE:?}");
        }
    };
    Done {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `oxydra-runner`; dropping it stops it (and so its guest).
#[derive(Debug)]
pub struct Runner {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn spawn(mut command: Command, dir: &Path) -> Runner {
    let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let stdout = dir.join(format!("runner-{n}.out"));
    let stderr = dir.join(format!("runner-{n}.err"));
    let child = command
        .stdout(fs::File::create(&stdout).unwrap())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Runner {
        child: Some(child),
        stdout,
        stderr,
    }
}

impl Runner {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Panics (with the runner's output) if it has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "oxydra-runner exited early with {status}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }

    /// Waits until `path` exists while the runner keeps running.
    pub async fn wait_for_file(&mut self, path: &Path) {
        let deadline = Instant::now() + PATIENCE;
        while !path.exists() {
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "{} did not appear within {PATIENCE:?}\nstderr:\n{}",
                path.display(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the foreground runner says the guest is running (its
    /// guest writes the endpoint file a moment before the runner sees it).
    pub async fn wait_until_running(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.stdout().contains("is running") {
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "the runner did not report a running guest within {PATIENCE:?}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the runner to exit by itself; returns its exit code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "oxydra-runner did not exit within {PATIENCE:?}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGTERM, then the exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        self.wait_exit().await
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SIGTERM first: the runner stops its guest; SIGKILL only if it hangs.
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
