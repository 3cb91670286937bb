//! Starting and stopping one `oxydra-vm` process (process tier): the binary
//! next to the runner, a cleared environment, the envelope as one frame on
//! stdin, the guest's output forwarded line by line (to the terminal or
//! the log file), the wait for its endpoint file, and SIGTERM → grace →
//! SIGKILL on stop.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use types::protocol::bootstrap::{MAX_ENVELOPE_BYTES, RunnerBootstrapEnvelope};
use types::protocol::framing::encode_json_frame;
use types::protocol::gateway::GatewayEndpoint;

use super::paths::RunnerPaths;
use super::{GUEST_BIN, GUEST_BIN_ENV, HostError};

/// Lines of the guest's stderr kept for the "exited before ready" message.
const STDERR_TAIL_LINES: usize = 20;
/// How often the endpoint file and the child are checked while starting.
const READY_POLL: Duration = Duration::from_millis(50);
/// How long the forwarders may take to drain after the guest exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the guest's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum OutputSink {
    /// The runner's own stdout and stderr (foreground).
    Terminal,
    /// Appended to this file, lines as they are (daemon).
    LogFile(PathBuf),
}

/// The guest binary: `$OXYDRA_VM_BIN`, else `oxydra-vm` next to the
/// running executable.
pub fn locate_guest_binary() -> Result<PathBuf, HostError> {
    let path = match std::env::var_os(GUEST_BIN_ENV).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().map_err(|e| HostError::GuestBinary {
                path: PathBuf::from(GUEST_BIN),
                message: format!("cannot locate the running oxydra-runner: {e}"),
            })?;
            exe.with_file_name(GUEST_BIN)
        }
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(HostError::GuestBinary {
            path,
            message: "not a file".to_owned(),
        }),
        Err(e) => Err(HostError::GuestBinary {
            path,
            message: e.to_string(),
        }),
    }
}

/// `binary` with the process-tier guest's environment (cleared, then the
/// user's workspace as home and current directory, its `tmp/` and
/// `.cache/`), output piped, killed when dropped.
fn guest_command(binary: &Path, paths: &RunnerPaths) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .current_dir(&paths.user_workspace)
        .env("TMPDIR", paths.tmp_dir())
        .env("HOME", &paths.user_workspace)
        .env("XDG_CACHE_HOME", paths.cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in ["PATH", "RUST_LOG"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// Runs `oxydra-vm --compile-wasm` in the guest's environment, its output
/// to `sink`, and waits for it: the guest's first file call then loads the
/// compiled file-tool module from the user's cache instead of compiling it
/// on the turn path (~1 s on 2 cores). Only the first start of a workspace
/// (or of a new build) compiles; later starts find the module cached in
/// tens of milliseconds. A failure is reported in the child's output and
/// costs nothing else: the guest then compiles on first use.
async fn compile_ahead(binary: &Path, paths: &RunnerPaths, sink: &OutputSink) {
    let mut command = guest_command(binary, paths);
    command.arg("--compile-wasm").stdin(Stdio::null());
    // A binary that cannot start is reported by the guest's own spawn.
    let Ok(mut child) = command.spawn() else {
        return;
    };
    let mut forwarders = JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        forwarders.spawn(forward(stdout, Stream::Stdout, sink.clone(), None));
    }
    if let Some(stderr) = child.stderr.take() {
        forwarders.spawn(forward(stderr, Stream::Stderr, sink.clone(), None));
    }
    let _ = child.wait().await;
    while forwarders.join_next().await.is_some() {}
}

/// How a guest process ended, for messages and status.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by {}", signal.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "an unknown status".to_owned(),
    }
}

/// The runner's exit code for a guest that ended by itself: its own code,
/// or 128 + the signal that killed it.
pub fn exit_code_of(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

/// A started guest process, ready or not.
#[derive(Debug)]
pub struct GuestProcess {
    child: Child,
    pid: u32,
    started: Instant,
    endpoint_file: PathBuf,
    stderr_tail: Tail,
    /// The output forwarders; they end when the guest closes its pipes.
    forwarders: JoinSet<()>,
    sink: OutputSink,
}

impl GuestProcess {
    /// Removes a stale endpoint file, starts `oxydra-vm --bootstrap-stdin`
    /// with the process-tier environment, writes the envelope and closes
    /// its stdin.
    pub async fn spawn(
        binary: &Path,
        paths: &RunnerPaths,
        envelope: &RunnerBootstrapEnvelope,
        sink: OutputSink,
    ) -> Result<Self, HostError> {
        let frame = encode_json_frame(envelope, MAX_ENVELOPE_BYTES)?;
        remove_if_present(&paths.endpoint_file)?;
        compile_ahead(binary, paths, &sink).await;
        let mut command = guest_command(binary, paths);
        command.arg("--bootstrap-stdin").stdin(Stdio::piped());
        let mut child = command.spawn().map_err(|e| HostError::GuestBinary {
            path: binary.to_owned(),
            message: format!("cannot start it: {e}"),
        })?;
        let pid = child.id().unwrap_or_default();
        if let Some(mut stdin) = child.stdin.take() {
            // A guest that rejects the envelope may exit before reading it
            // all; its exit status and stderr tell why, not the broken pipe.
            let _ = stdin.write_all(&frame).await;
            let _ = stdin.shutdown().await;
        }
        let stderr_tail = Tail::default();
        let mut forwarders = JoinSet::new();
        if let Some(stdout) = child.stdout.take() {
            forwarders.spawn(forward(stdout, Stream::Stdout, sink.clone(), None));
        }
        if let Some(stderr) = child.stderr.take() {
            let tail = Some(Arc::clone(&stderr_tail));
            forwarders.spawn(forward(stderr, Stream::Stderr, sink.clone(), tail));
        }
        Ok(Self {
            child,
            pid,
            started: Instant::now(),
            endpoint_file: paths.endpoint_file.clone(),
            stderr_tail,
            forwarders,
            sink,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How long ago the process was started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until the guest wrote its endpoint file. If it exits first,
    /// its status and the end of its stderr are the error; if `timeout`
    /// passes or `cancel` fires, it is stopped.
    pub async fn wait_ready(
        &mut self,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<GatewayEndpoint>, HostError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| self.wait_error(e))? {
                self.drain().await;
                return Err(HostError::GuestExited {
                    status: describe_exit(status),
                    detail: self.stderr_detail(),
                });
            }
            if let Some(endpoint) = written_endpoint(&self.endpoint_file) {
                return Ok(Some(endpoint));
            }
            if Instant::now() >= deadline {
                self.stop(Duration::from_secs(2)).await?;
                return Err(HostError::GuestNotReady {
                    waited: timeout,
                    detail: self.stderr_detail(),
                });
            }
            tokio::select! {
                () = tokio::time::sleep(READY_POLL) => {}
                () = cancel.cancelled() => return Ok(None),
            }
        }
    }

    /// Waits for the guest to exit by itself. An endpoint file it left
    /// behind (it crashed) is removed: nothing serves there any more.
    pub async fn wait(&mut self) -> Result<ExitStatus, HostError> {
        let status = self.child.wait().await.map_err(|e| self.wait_error(e))?;
        self.drain().await;
        remove_if_present(&self.endpoint_file)?;
        Ok(status)
    }

    /// SIGTERM, up to `grace` for a clean stop, then SIGKILL. The endpoint
    /// file is removed if the guest could not remove it itself.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, HostError> {
        if let Ok(None) = self.child.try_wait()
            && let Ok(pid) = i32::try_from(self.pid)
        {
            // ESRCH: it exited in between, which is what we want.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.map_err(|e| self.wait_error(e))?,
            Err(_) => {
                let _ = self.child.start_kill();
                self.child.wait().await.map_err(|e| self.wait_error(e))?
            }
        };
        self.drain().await;
        remove_if_present(&self.endpoint_file)?;
        Ok(status)
    }

    fn stderr_detail(&self) -> String {
        tail_detail(&self.sink, &self.stderr_tail)
    }

    fn wait_error(&self, error: std::io::Error) -> HostError {
        HostError::GuestBinary {
            path: PathBuf::from(GUEST_BIN),
            message: format!("cannot wait for process {}: {error}", self.pid),
        }
    }

    /// Lets the forwarders copy the last output; a grandchild holding the
    /// pipes open must not keep the runner waiting.
    async fn drain(&mut self) {
        let forwarders = &mut self.forwarders;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while forwarders.join_next().await.is_some() {}
        })
        .await;
        self.forwarders.abort_all();
    }
}

/// The endpoint in `path` once the guest has written it whole (it renames
/// the file into place, so a parsable file is a complete one).
pub(super) fn written_endpoint(path: &Path) -> Option<GatewayEndpoint> {
    let text = std::fs::read_to_string(path).ok()?;
    GatewayEndpoint::parse(&text).ok()
}

pub(super) fn remove_if_present(path: &Path) -> Result<(), HostError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HostError::io("cannot remove the stale file", path, e)),
    }
}

/// Which of a guest's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The last lines a guest wrote to stderr, for error messages.
pub type Tail = Arc<Mutex<VecDeque<String>>>;

/// Writes one guest stream's lines to the sink, keeping the last lines in
/// `tail` when given. A sink that fails is dropped (the guest must never
/// block on it); the tail is still kept.
pub struct OutputWriter {
    out: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    tail: Option<Tail>,
}

impl std::fmt::Debug for OutputWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputWriter")
            .field("open", &self.out.is_some())
            .field("keeps_tail", &self.tail.is_some())
            .finish()
    }
}

impl OutputWriter {
    pub async fn open(sink: &OutputSink, stream: Stream, tail: Option<Tail>) -> Self {
        let out: Option<Box<dyn AsyncWrite + Unpin + Send>> = match (sink, stream) {
            (OutputSink::Terminal, Stream::Stdout) => Some(Box::new(tokio::io::stdout())),
            (OutputSink::Terminal, Stream::Stderr) => Some(Box::new(tokio::io::stderr())),
            (OutputSink::LogFile(path), _) => open_append(path)
                .await
                .ok()
                .map(|file| Box::new(file) as Box<dyn AsyncWrite + Unpin + Send>),
        };
        Self { out, tail }
    }

    /// Writes one line (bytes as they are, newline included when present).
    pub async fn line(&mut self, line: &[u8]) {
        if let Some(tail) = &self.tail
            && let Ok(mut lines) = tail.lock()
        {
            if lines.len() == STDERR_TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(String::from_utf8_lossy(line).trim_end().to_owned());
        }
        if let Some(writer) = self.out.as_mut()
            && (writer.write_all(line).await.is_err() || writer.flush().await.is_err())
        {
            self.out = None;
        }
    }
}

/// The tail's lines for an error message: the lines themselves in a
/// log-file setup, a pointer to them on a terminal (where they were shown
/// already).
pub fn tail_detail(sink: &OutputSink, tail: &Tail) -> String {
    match sink {
        OutputSink::Terminal => "; its output is above".to_owned(),
        OutputSink::LogFile(path) => {
            let tail = tail
                .lock()
                .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n  "))
                .unwrap_or_default();
            if tail.is_empty() {
                format!(" (no output; log: {})", path.display())
            } else {
                format!("; its last output (log: {}):\n  {tail}", path.display())
            }
        }
    }
}

/// Copies `from` to the sink line by line; the writer keeps draining after
/// a sink failure, so the guest never blocks on a full pipe.
async fn forward<R: AsyncRead + Unpin>(
    from: R,
    stream: Stream,
    sink: OutputSink,
    tail: Option<Tail>,
) {
    let mut reader = BufReader::new(from);
    let mut writer = OutputWriter::open(&sink, stream, tail).await;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => writer.line(&line).await,
        }
    }
}

/// Opens a log file for appending (created 0600 if missing).
pub async fn open_append(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exits_are_described_and_mapped() {
        let exited = ExitStatus::from_raw(2 << 8);
        assert_eq!(describe_exit(exited), "exit status 2");
        assert_eq!(exit_code_of(exited), 2);
        let killed = ExitStatus::from_raw(9);
        assert_eq!(describe_exit(killed), "killed by SIGKILL");
        assert_eq!(exit_code_of(killed), 137);
    }
}
