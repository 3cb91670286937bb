//! `LocalProcessShellSession`: development and tests. Starts the
//! `shell-daemon` binary as a local child process and talks to it exactly
//! like production does (same protocol, same `VsockShellSession`), so
//! what works here works against the sidecar. It offers no isolation
//! beyond the daemon's own (clean environment, process groups): the
//! commands run on this host.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use types::protocol::shell::{SHELL_DAEMON_READY_PREFIX, StreamType};
use types::{SessionId, ToolError};

use super::daemon::{ShellDaemonEndpoint, VsockShellSession};
use super::{ShellOutput, ShellSession};

/// How to start the local daemon.
#[derive(Debug, Clone)]
pub struct LocalDaemonOptions {
    /// The `shell-daemon` executable.
    pub daemon_binary: PathBuf,
    /// Where it listens (a stale socket there is replaced).
    pub socket_path: PathBuf,
    /// The session's working directory.
    pub working_dir: PathBuf,
    /// The session's id.
    pub session_id: String,
    /// How long to wait for the daemon to say it is listening.
    pub startup_timeout: Duration,
}

impl LocalDaemonOptions {
    pub fn new(
        daemon_binary: impl Into<PathBuf>,
        socket_path: impl Into<PathBuf>,
        working_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            daemon_binary: daemon_binary.into(),
            socket_path: socket_path.into(),
            working_dir: working_dir.into(),
            session_id: "local".into(),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// A shell session in a `shell-daemon` child process that this value owns:
/// dropping it (or `shutdown`) stops the daemon, which kills every command
/// and removes the socket.
pub struct LocalProcessShellSession {
    child: Child,
    client: VsockShellSession,
    /// Keeps the daemon's stdout open after the ready line.
    _stdout: BufReader<ChildStdout>,
    /// Forwards the daemon's log lines into this process's `tracing`.
    log_forwarder: JoinHandle<()>,
}

impl fmt::Debug for LocalProcessShellSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProcessShellSession")
            .field("pid", &self.child.id())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn launch_error(options: &LocalDaemonOptions, why: impl fmt::Display) -> ToolError {
    ToolError::Execution(format!(
        "could not start the local shell daemon {}: {why}",
        options.daemon_binary.display()
    ))
}

impl LocalProcessShellSession {
    /// Starts the daemon, waits until it listens, and spawns the session.
    pub async fn start(options: LocalDaemonOptions) -> Result<Self, ToolError> {
        let mut child = Command::new(&options.daemon_binary)
            .arg("--socket")
            .arg(&options.socket_path)
            .arg("--working-dir")
            .arg(&options.working_dir)
            // The daemon itself holds no host secrets either.
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| launch_error(&options, e))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(launch_error(&options, "its output pipes are missing"));
        };
        let log_forwarder = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "shell_daemon", "{line}");
            }
        });
        let mut stdout = BufReader::new(stdout);
        let ready = tokio::time::timeout(options.startup_timeout, async {
            let mut line = String::new();
            loop {
                line.clear();
                match stdout.read_line(&mut line).await {
                    Ok(0) => return Err("it exited before listening".to_owned()),
                    Ok(_) if line.starts_with(SHELL_DAEMON_READY_PREFIX) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("reading its output failed: {e}")),
                }
            }
        })
        .await;
        let failure = match ready {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(_) => Some(format!(
                "it did not listen within {}s",
                options.startup_timeout.as_secs_f64()
            )),
        };
        if let Some(why) = failure {
            log_forwarder.abort();
            // Best effort: it may already have exited.
            let _ = child.start_kill();
            let status = match child.try_wait() {
                Ok(Some(status)) => format!(" ({status})"),
                _ => String::new(),
            };
            return Err(launch_error(&options, format!("{why}{status}")));
        }
        let client = VsockShellSession::new(
            ShellDaemonEndpoint::Unix(options.socket_path.clone()),
            options.session_id.clone(),
        )
        .with_working_dir(options.working_dir.clone());
        let session = Self {
            child,
            client,
            _stdout: stdout,
            log_forwarder,
        };
        session.client.spawn().await?;
        Ok(session)
    }

    /// The client of the daemon's session (for streaming, kill, …).
    pub fn client(&self) -> &VsockShellSession {
        &self.client
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Asks the daemon to stop (SIGTERM) and waits until it has; kills it
    /// if it has not stopped within `grace`.
    pub async fn shutdown(mut self, grace: Duration) -> Result<(), ToolError> {
        self.terminate();
        let waited = tokio::time::timeout(grace, self.child.wait()).await;
        if waited.is_err() {
            // Best effort: it may have exited just now.
            let _ = self.child.kill().await;
        }
        Ok(())
    }

    fn terminate(&self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            // ESRCH: it is already gone, which is what we want.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Runs a command with its output streamed to `on_chunk`.
    pub async fn exec_streaming(
        &self,
        command: &str,
        timeout: Duration,
        on_chunk: &mut (dyn FnMut(StreamType, &str) + Send),
    ) -> Result<ShellOutput, ToolError> {
        self.client.exec_streaming(command, timeout, on_chunk).await
    }
}

impl Drop for LocalProcessShellSession {
    fn drop(&mut self) {
        // SIGTERM (not SIGKILL) so the daemon kills its sessions and
        // removes its socket; tokio reaps the exited child in the background.
        self.terminate();
        self.log_forwarder.abort();
    }
}

#[async_trait]
impl ShellSession for LocalProcessShellSession {
    async fn exec(
        &self,
        conversation: &SessionId,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ToolError> {
        self.client.exec(conversation, command, timeout).await
    }
}
