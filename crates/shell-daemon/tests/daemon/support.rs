//! The real `shell-daemon` binary on a real Unix socket, and a raw
//! protocol client that can also send broken bytes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio_util::codec::Framed;
use types::protocol::framing::{DEFAULT_MAX_FRAME_BYTES, FrameCodec};
use types::protocol::shell::{
    SHELL_DAEMON_READY_PREFIX, ShellDaemonRequest, ShellDaemonResponse, StreamType,
};

pub const BINARY: &str = env!("CARGO_BIN_EXE_shell-daemon");
/// Longest wait for any single response in these tests.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(20);

/// Spawns the daemon as `command` says (quiet logs, killed on drop) and
/// waits for its first stdout line, which must be `ready_line`.
pub async fn spawn_ready(mut command: Command, ready_line: &str) -> Child {
    let mut child = command
        .env("OXYDRA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(RESPONSE_DEADLINE, lines.next_line())
        .await
        .expect("the daemon did not get ready")
        .unwrap()
        .expect("the daemon exited before getting ready");
    assert_eq!(line, ready_line);
    child
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon with `args` and waits for its ready line. Its own
    /// environment carries a fake secret that commands must never see.
    pub async fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("shell.sock");
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let mut command = Command::new(BINARY);
        command
            .arg("--socket")
            .arg(&socket)
            .arg("--working-dir")
            .arg(dir.path().join("work"))
            .args(args)
            .env("OXYDRA_TEST_SECRET", "hunter2-daemon-secret");
        let child = spawn_ready(
            command,
            &format!("{SHELL_DAEMON_READY_PREFIX}{}", socket.display()),
        )
        .await;
        Self { dir, child, socket }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work").canonicalize().unwrap()
    }

    pub async fn connect(&self) -> Client {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        Client {
            framed: Framed::new(stream, FrameCodec::new(DEFAULT_MAX_FRAME_BYTES)),
        }
    }

    /// A client with session `id` already spawned in the default directory.
    pub async fn session(&self, id: &str) -> Client {
        let mut client = self.connect().await;
        assert_eq!(
            client.call(spawn(id, None)).await,
            ShellDaemonResponse::SessionSpawned {
                session_id: id.into()
            }
        );
        client
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, tempfile::TempDir, PathBuf) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(RESPONSE_DEADLINE, self.child.wait())
            .await
            .expect("the daemon did not stop on SIGTERM")
            .unwrap();
        (status, self.dir, self.socket)
    }
}

pub struct Client {
    pub framed: Framed<UnixStream, FrameCodec>,
}

impl Client {
    pub async fn send(&mut self, request: ShellDaemonRequest) {
        let payload = serde_json::to_vec(&request).unwrap();
        self.framed.send(Bytes::from(payload)).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stream = self.framed.get_mut();
        stream.write_all(bytes).await.unwrap();
        stream.flush().await.unwrap();
    }

    /// The next response, or `None` once the daemon closed the connection.
    pub async fn recv_or_closed(&mut self) -> Option<ShellDaemonResponse> {
        let frame = tokio::time::timeout(RESPONSE_DEADLINE, self.framed.next())
            .await
            .expect("no response from the daemon")?;
        match frame {
            Ok(payload) => Some(serde_json::from_slice(&payload).unwrap()),
            // A reset after the daemon closed counts as closed.
            Err(_) => None,
        }
    }

    pub async fn recv(&mut self) -> ShellDaemonResponse {
        self.recv_or_closed()
            .await
            .expect("the daemon closed the connection")
    }

    pub async fn call(&mut self, request: ShellDaemonRequest) -> ShellDaemonResponse {
        self.send(request).await;
        self.recv().await
    }

    /// Runs a command and returns its `CommandOutput`.
    pub async fn exec(&mut self, session: &str, command: &str, timeout_ms: Option<u64>) -> Output {
        Output::from(self.call(exec(session, command, timeout_ms)).await)
    }
}

#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    pub timed_out: bool,
    pub truncated: bool,
}

impl From<ShellDaemonResponse> for Output {
    fn from(response: ShellDaemonResponse) -> Self {
        match response {
            ShellDaemonResponse::CommandOutput {
                stdout,
                stderr,
                exit_code,
                timed_out,
                truncated,
            } => Self {
                stdout,
                stderr,
                exit_code,
                timed_out,
                truncated,
            },
            other => panic!("expected command_output, got {other:?}"),
        }
    }
}

pub fn spawn(id: &str, working_dir: Option<&Path>) -> ShellDaemonRequest {
    ShellDaemonRequest::SpawnSession {
        session_id: id.into(),
        working_dir: working_dir.map(Path::to_path_buf),
    }
}

pub fn exec(id: &str, command: &str, timeout_ms: Option<u64>) -> ShellDaemonRequest {
    ShellDaemonRequest::ExecCommand {
        session_id: id.into(),
        command: command.into(),
        timeout_ms,
    }
}

pub fn stream(id: &str) -> ShellDaemonRequest {
    ShellDaemonRequest::StreamOutput {
        session_id: id.into(),
    }
}

pub fn kill(id: &str) -> ShellDaemonRequest {
    ShellDaemonRequest::KillSession {
        session_id: id.into(),
    }
}

/// The message of an `Error` response.
pub fn error_message(response: ShellDaemonResponse) -> String {
    match response {
        ShellDaemonResponse::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Everything one streamed exec produced on its connection.
#[derive(Debug, Default)]
pub struct Streamed {
    pub chunks: Vec<(StreamType, String)>,
    pub finished_exit_code: Option<i32>,
    pub output: Option<Output>,
    /// `CommandOutput` came after `StreamFinished`.
    pub output_after_stream: bool,
}

impl Client {
    /// Reads until both `StreamFinished` and `CommandOutput` arrived.
    pub async fn collect_stream(&mut self) -> Streamed {
        let mut streamed = Streamed::default();
        let mut stream_done = false;
        while streamed.output.is_none() || !stream_done {
            match self.recv().await {
                ShellDaemonResponse::StreamOutputChunk { data, stream_type } => {
                    streamed.chunks.push((stream_type, data));
                }
                ShellDaemonResponse::StreamFinished { exit_code } => {
                    stream_done = true;
                    streamed.finished_exit_code = exit_code;
                }
                response @ ShellDaemonResponse::CommandOutput { .. } => {
                    streamed.output_after_stream = stream_done;
                    streamed.output = Some(Output::from(response));
                }
                other => panic!("unexpected response while streaming: {other:?}"),
            }
        }
        streamed
    }
}

/// True once `pid` no longer runs (gone, or a zombie awaiting its reaper).
pub fn process_gone(pid: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.is_empty() || status.contains("State:\tZ")
}

/// Waits (bounded) until `pid` is gone; SIGKILL is asynchronous, so the
/// kernel may need a moment after the daemon's answer.
pub async fn assert_gone(pid: i32) {
    for _ in 0..250 {
        if process_gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("process {pid} survived");
}

/// Waits (bounded) until `path` exists.
pub async fn wait_for_file(path: &Path) -> String {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never appeared", path.display());
}
