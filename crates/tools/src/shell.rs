//! `shell_exec`: runs one policy-checked command line in a shell session.
//!
//! The backend is chosen by the runner (`ShellMode` in the bootstrap
//! envelope): `Session` forwards to a shell-daemon session in the sandbox
//! (any `ShellSession`: `VsockShellSession` in production,
//! `LocalProcessShellSession` in development and tests), `Host` runs
//! `sh -c` directly on the host (local development only, explicitly opted
//! in), `Disabled` registers nothing. In every mode the registry applies
//! the shell policy (`CommandPolicy`) before the session sees the command.

mod daemon;
mod local;

pub use daemon::{ShellDaemonEndpoint, VsockShellSession};
pub use local::{LocalDaemonOptions, LocalProcessShellSession};

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sandbox::shell_policy::ShellPolicy;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use types::{FunctionDecl, JsonSchema, SafetyTier, SessionId, Tool, ToolContext, ToolError};

use crate::file::parse;
use crate::registry::{ArgumentPolicy, RegistryError, ToolRegistry};

/// A command's time limit when the model does not give one.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest time limit a call may ask for unless
/// `tools.shell.max_timeout_secs` says otherwise.
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// How much longer than a command's own limit the registry waits: the
/// session's timeout (which kills the process group and reports it) must
/// fire first.
const REGISTRY_GRACE: Duration = Duration::from_secs(10);
/// Bytes kept of each of stdout and stderr.
pub const DEFAULT_OUTPUT_CAP: usize = 256 * 1024;
/// `PATH` of host-mode commands: system directories only.
const HOST_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    pub stdout: String,
    pub stderr: String,
    /// The exit status; `128 + signal` when a signal ended the command
    /// (the shell's convention), `-1` when neither is known.
    pub exit_code: i32,
    /// The time limit fired and the process group was killed.
    pub timed_out: bool,
    /// Output beyond the cap was dropped.
    pub truncated: bool,
}

/// A place to run commands: a shell-daemon session in the sandbox, or the
/// host in development. `conversation` names the gateway session the
/// command belongs to: a backend that keeps state (working directory,
/// environment) keeps one per conversation, so two conversations never
/// share a shell or wait for each other.
#[async_trait]
pub trait ShellSession: Send + Sync + fmt::Debug {
    async fn exec(
        &self,
        conversation: &SessionId,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ToolError>;
}

/// Runs commands with `sh -c` on the host, in `working_dir`, with a clean
/// environment (no inherited variables, so the host's secrets stay out),
/// in their own process group so a timeout kills every descendant.
#[derive(Debug, Clone)]
pub struct HostShellSession {
    working_dir: PathBuf,
    output_cap: usize,
}

impl HostShellSession {
    pub fn new(working_dir: PathBuf) -> Self {
        Self {
            working_dir,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }

    pub fn with_output_cap(mut self, output_cap: usize) -> Self {
        self.output_cap = output_cap;
        self
    }
}

/// Reads everything (so the writer never blocks on a full pipe) but keeps
/// only the first `cap` bytes.
async fn read_capped(mut reader: impl AsyncRead + Unpin, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    let mut dropped = false;
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return (kept, dropped),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
                dropped |= n > room;
            }
        }
    }
}

/// Host mode keeps no state between commands, so every conversation
/// shares the one working directory.
#[async_trait]
impl ShellSession for HostShellSession {
    async fn exec(
        &self,
        _conversation: &SessionId,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ToolError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.working_dir)
            .env_clear()
            .env("PATH", HOST_PATH)
            .env("HOME", &self.working_dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ToolError::Execution(format!("could not start sh: {e}")))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ToolError::Execution(
                "the command's output pipes are missing".into(),
            ));
        };
        let cap = self.output_cap;
        let stdout = tokio::spawn(read_capped(stdout, cap));
        let stderr = tokio::spawn(read_capped(stderr, cap));
        let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => (Some(status), false),
            Err(_) => {
                if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                    // The group may already be gone; nothing to do then.
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                (Some(child.wait().await), true)
            }
        };
        let exit_code = match status {
            Some(Ok(status)) => status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal))
                .unwrap_or(-1),
            Some(Err(e)) => {
                return Err(ToolError::Execution(format!(
                    "waiting for the command failed: {e}"
                )));
            }
            None => -1,
        };
        let joined = |result: Result<(Vec<u8>, bool), tokio::task::JoinError>| {
            result.map_err(|e| {
                ToolError::Execution(format!("reading the command's output failed: {e}"))
            })
        };
        let (out, out_cut) = joined(stdout.await)?;
        let (err, err_cut) = joined(stderr.await)?;
        Ok(ShellOutput {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            exit_code,
            timed_out,
            truncated: out_cut || err_cut,
        })
    }
}

#[derive(Deserialize)]
struct ExecArgs {
    command: String,
    timeout_secs: Option<u64>,
}

/// The `shell_exec` tool.
#[derive(Debug)]
pub struct ShellExecTool {
    session: Arc<dyn ShellSession>,
    /// What the policy in front of the tool accepts, told to the model in
    /// the description so it writes commands that pass.
    description: String,
    /// The longest `timeout_secs` a call may ask for.
    max_timeout: Duration,
}

impl ShellExecTool {
    pub fn new(session: Arc<dyn ShellSession>, policy: &ShellPolicy) -> Self {
        Self {
            session,
            description: description(policy),
            max_timeout: MAX_COMMAND_TIMEOUT,
        }
    }

    /// Lets calls ask for up to `max_timeout` (`tools.shell.max_timeout_secs`).
    pub fn with_max_timeout(mut self, max_timeout: Duration) -> Self {
        self.max_timeout = max_timeout.max(Duration::from_secs(1));
        self
    }
}

/// The tool description for the syntax and allowlist `policy` enforces.
fn description(policy: &ShellPolicy) -> String {
    let allowed = policy.allowed_programs().collect::<Vec<_>>().join(", ");
    // Only the compound syntax has a workspace.
    match policy.workspace() {
        Some(workspace) => format!(
            "Run a command line in the sandboxed shell (working directory {}). Pipes (`|`), lists (`&&`, `||`, `;`), `cd DIR` and redirections to files under {} (`> out.txt`, `>> log.txt`, `< in.txt`, `2>&1`, `2> /dev/null`) are allowed; every program in the line must be allowed, and one refused command refuses the whole line. No command substitution, subshells, background jobs (`&`), here-documents or line breaks. Allowed programs: {allowed}.",
            workspace.working_dir().display(),
            workspace.root().display(),
        ),
        None => format!(
            "Run one command in the sandboxed shell (working directory /shared). No pipes, chaining, redirection or substitution: one program per call. Allowed programs: {allowed}."
        ),
    }
}

fn render(output: &ShellOutput, timeout: Duration) -> String {
    let mut text = format!("exit code: {}", output.exit_code);
    for (name, stream) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        if !stream.is_empty() {
            text.push_str(&format!("\n{name}:\n{}", stream.trim_end_matches('\n')));
        }
    }
    if output.timed_out {
        text.push_str(&format!(
            "\n[timed out after {}s; the command and its children were killed]",
            timeout.as_secs()
        ));
    }
    if output.truncated {
        text.push_str("\n[output truncated]");
    }
    text
}

#[async_trait]
impl Tool for ShellExecTool {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "shell_exec".into(),
            description: self.description.clone(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    (
                        "command".to_owned(),
                        JsonSchema::string()
                            .with_description("The command line, e.g. grep -rn \"TODO\" src"),
                    ),
                    (
                        "timeout_secs".to_owned(),
                        JsonSchema::integer()
                            .with_minimum(1)
                            .with_maximum(
                                i64::try_from(self.max_timeout.as_secs()).unwrap_or(i64::MAX),
                            )
                            .with_description(format!(
                                "Time limit in seconds (default {}, at most {})",
                                DEFAULT_COMMAND_TIMEOUT.as_secs(),
                                self.max_timeout.as_secs()
                            )),
                    ),
                ]),
                vec!["command".into()],
            ),
        }
    }

    async fn execute(&self, arguments: &str, context: &ToolContext) -> Result<String, ToolError> {
        let ExecArgs {
            command,
            timeout_secs,
        } = parse(arguments)?;
        let timeout = timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT.min(self.max_timeout))
            .clamp(Duration::from_secs(1), self.max_timeout);
        let output = self
            .session
            .exec(&context.session_id, &command, timeout)
            .await?;
        Ok(render(&output, timeout))
    }

    /// The registry's limit: the longest command time plus a margin, so the
    /// session's own timeout (which kills the process group) fires first.
    fn timeout(&self) -> Duration {
        self.max_timeout + REGISTRY_GRACE
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::Privileged
    }
}

/// The shell policy in front of `shell_exec`.
#[derive(Debug, Clone, Default)]
pub struct CommandPolicy(pub ShellPolicy);

impl ArgumentPolicy for CommandPolicy {
    fn check(&self, arguments: &Value) -> Result<(), ToolError> {
        let command = arguments
            .get("command")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ToolError::InvalidArguments("missing required field 'command'".into())
            })?;
        self.0
            .check(command)
            .map(|_| ())
            .map_err(|violation| ToolError::PolicyViolation {
                reason: violation.to_string(),
            })
    }
}

/// Where `shell_exec` runs, if anywhere.
#[derive(Debug, Clone)]
pub enum ShellBackend {
    /// A session in the shell sandbox (production).
    Session(Arc<dyn ShellSession>),
    /// `sh -c` on the host, in this directory (development only).
    Host(PathBuf),
    /// No safe place to run commands: the tool is not registered.
    Disabled,
}

/// Registers `shell_exec` for `backend` (nothing when disabled); calls may
/// ask for up to `max_timeout`.
pub fn register_shell_tool(
    registry: &mut ToolRegistry,
    backend: ShellBackend,
    policy: ShellPolicy,
    max_timeout: Duration,
) -> Result<(), RegistryError> {
    let session: Arc<dyn ShellSession> = match backend {
        ShellBackend::Session(session) => session,
        ShellBackend::Host(dir) => Arc::new(HostShellSession::new(dir)),
        ShellBackend::Disabled => return Ok(()),
    };
    registry.register_with_policy(
        Arc::new(ShellExecTool::new(session, &policy).with_max_timeout(max_timeout)),
        Arc::new(CommandPolicy(policy)),
    )
}
