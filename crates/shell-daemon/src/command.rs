//! One command: `sh -c` in its own process group with a clean
//! environment and stdin closed, supervised until it exits, times out or
//! is killed — and in every case the whole process group is killed at the
//! end, so no descendant outlives the command.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use types::protocol::shell::StreamType;

use crate::error::ShellDaemonError;
use crate::output::{CommandResult, OutputLog, Utf8Decoder};

/// What to run and under which limits.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub command: String,
    pub working_dir: PathBuf,
    /// The complete environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub output_cap: usize,
    pub drain_grace: Duration,
}

/// A started command: its output log and a way to kill it.
#[derive(Debug)]
pub struct RunningCommand {
    log: Arc<OutputLog>,
    kill: CancellationToken,
    pgid: i32,
}

impl RunningCommand {
    pub fn log(&self) -> &Arc<OutputLog> {
        &self.log
    }

    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    pub fn is_finished(&self) -> bool {
        self.log.result().is_some()
    }

    /// Kills the whole process group; the result reports `killed`.
    pub fn kill(&self) {
        self.kill.cancel();
    }
}

/// Starts `spec`; the supervisor runs on `tracker`.
pub fn start(
    spec: CommandSpec,
    tracker: &TaskTracker,
) -> Result<Arc<RunningCommand>, ShellDaemonError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.working_dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(ShellDaemonError::Spawn)?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| {
            ShellDaemonError::Spawn(std::io::Error::other("the started shell has no pid"))
        })?;
    let log = OutputLog::new(spec.output_cap);
    let running = Arc::new(RunningCommand {
        log: Arc::clone(&log),
        kill: CancellationToken::new(),
        pgid,
    });
    let readers = [
        child
            .stdout
            .take()
            .map(|pipe| tracker.spawn(pump(pipe, StreamType::Stdout, Arc::clone(&log)))),
        child
            .stderr
            .take()
            .map(|pipe| tracker.spawn(pump(pipe, StreamType::Stderr, Arc::clone(&log)))),
    ];
    let kill = running.kill.clone();
    tracker.spawn(supervise(child, pgid, spec, kill, log, readers));
    Ok(running)
}

/// Copies one pipe into the log until it closes.
async fn pump(mut pipe: impl AsyncRead + Unpin, stream: StreamType, log: Arc<OutputLog>) {
    let mut decoder = Utf8Decoder::default();
    let mut buffer = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => log.push(stream, &decoder.push(&buffer[..n])),
        }
    }
    log.push(stream, &decoder.finish());
}

enum Ending {
    Exited,
    TimedOut,
    Killed,
}

async fn supervise(
    mut child: Child,
    pgid: i32,
    spec: CommandSpec,
    kill: CancellationToken,
    log: Arc<OutputLog>,
    readers: [Option<tokio::task::JoinHandle<()>>; 2],
) {
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    // The leader is watched without being reaped: until it is, its zombie
    // keeps its pid, and with it the group id, from being reused, so the
    // `killpg` below can never hit an unrelated group.
    let ending = tokio::select! {
        watched = leader_exited(pgid) => match watched {
            Ok(()) => Ending::Exited,
            Err(error) => {
                tracing::warn!(pgid, %error, "cannot watch a command without reaping it");
                tokio::select! {
                    _ = child.wait() => Ending::Exited,
                    () = &mut deadline => Ending::TimedOut,
                    () = kill.cancelled() => Ending::Killed,
                }
            }
        },
        () = &mut deadline => Ending::TimedOut,
        () = kill.cancelled() => Ending::Killed,
    };
    // Whatever happened, nothing of the command may survive it: kill the
    // group (background jobs of a finished command included), then reap.
    kill_group(pgid);
    let status = child.wait().await;
    // Readers end when every holder of the pipes is gone. A descendant that
    // left the group (setsid) may keep them open: stop reading after a
    // grace period instead of waiting for it.
    let mut readers: Vec<_> = readers.into_iter().flatten().collect();
    let drained = tokio::time::timeout(spec.drain_grace, async {
        for reader in &mut readers {
            // A reader that panicked has nothing more to give.
            let _ = reader.await;
        }
    })
    .await;
    if drained.is_err() {
        for reader in &readers {
            reader.abort();
        }
    }
    let exit_code = match status {
        Ok(status) => exit_code(status),
        Err(error) => {
            tracing::warn!(pgid, %error, "waiting for a command failed");
            -1
        }
    };
    log.finish(CommandResult {
        exit_code,
        timed_out: matches!(ending, Ending::TimedOut),
        killed: matches!(ending, Ending::Killed),
        finished_at: Instant::now(),
    });
}

/// Resolves once the child `pid` has exited, leaving it unreaped
/// (`waitid` with `WNOWAIT`, on a blocking thread: the call blocks until
/// the exit, which the kill after a timeout brings about too).
async fn leader_exited(pid: i32) -> Result<(), Errno> {
    let watch = move || {
        loop {
            match waitid(
                Id::Pid(Pid::from_raw(pid)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(error) => return Err(error),
            }
        }
    };
    tokio::task::spawn_blocking(watch)
        .await
        .unwrap_or(Err(Errno::ECANCELED))
}

/// `SIGKILL` to the whole group; a group that is already gone is fine.
pub fn kill_group(pgid: i32) {
    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pgid, %error, "could not kill a process group"),
    }
}

/// The shell convention: the exit status, or 128 + the signal number.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &str, timeout: Duration) -> CommandSpec {
        CommandSpec {
            command: command.into(),
            working_dir: std::env::temp_dir(),
            env: vec![("PATH".into(), crate::config::DEFAULT_PATH.into())],
            timeout,
            output_cap: 1024,
            drain_grace: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn exit_codes_and_output_are_reported() {
        let tracker = TaskTracker::new();
        let command = start(
            spec("echo out; echo err >&2; exit 3", Duration::from_secs(10)),
            &tracker,
        )
        .unwrap();
        let result = command.log().wait().await;
        assert_eq!(result.exit_code, 3);
        assert!(!result.timed_out && !result.killed);
        let (stdout, stderr, truncated) = command.log().collected();
        assert_eq!(
            (stdout.as_str(), stderr.as_str(), truncated),
            ("out\n", "err\n", false)
        );
    }

    #[tokio::test]
    async fn a_killed_command_reports_the_signal() {
        let tracker = TaskTracker::new();
        let command = start(spec("sleep 30", Duration::from_secs(30)), &tracker).unwrap();
        command.kill();
        let result = command.log().wait().await;
        assert!(result.killed);
        assert_eq!(result.exit_code, 128 + 9);
    }
}
