//! `VsockShellSession`: the production `ShellSession`, a client of the
//! shell daemon (`crates/shell-daemon`) in the shell sandbox, over a Unix
//! socket (container tier, development) or vsock (microVM tier, `vsock`
//! feature).
//!
//! A `VsockShellSession` names a base session; `shell_exec` runs each
//! conversation's commands in a daemon session of its own
//! (`for_conversation`), so a conversation keeps its working directory and
//! environment and two conversations never wait for each other (the daemon
//! runs one command at a time per session).
//!
//! Each call opens its own connection (a Unix connect costs microseconds)
//! and pipelines `SpawnSession` before its request: spawning is idempotent
//! for the same id and directory, so a session that expired or was killed
//! is recreated without any client-side bookkeeping, and concurrent calls
//! never share a connection. Only `connect` knows the transport: the
//! protocol above it runs on any byte stream.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;
use types::protocol::framing::{DEFAULT_MAX_FRAME_BYTES, FrameCodec};
use types::protocol::shell::{ShellDaemonRequest, ShellDaemonResponse, StreamType};
use types::{SessionId, ToolError};

use super::{ShellOutput, ShellSession};
use async_trait::async_trait;

/// The daemon's limit on session ids, in bytes.
const MAX_DAEMON_SESSION_ID: usize = 128;
/// The `vsock://` scheme of `ShellDaemonEndpoint::parse`.
const VSOCK_SCHEME: &str = "vsock://";
/// `VMADDR_CID_ANY` / `VMADDR_PORT_ANY`: wildcards for listening, never a
/// destination.
#[cfg(feature = "vsock")]
const VSOCK_ANY: u32 = u32::MAX;

/// Where the shell daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellDaemonEndpoint {
    /// A Unix socket path (container tier, development).
    Unix(PathBuf),
    /// A vsock address (microVM tier): the guest's context id and the port
    /// the daemon listens on (`shell-daemon --vsock-port`).
    #[cfg(feature = "vsock")]
    Vsock { cid: u32, port: u32 },
}

impl ShellDaemonEndpoint {
    /// Parses the bootstrap envelope's `sidecar_endpoint`: `unix:///path`,
    /// an absolute path, or (with the `vsock` feature) `vsock://CID:PORT`.
    pub fn parse(raw: &str) -> Result<Self, ToolError> {
        if let Some(address) = raw.strip_prefix(VSOCK_SCHEME) {
            return Self::parse_vsock(raw, address);
        }
        let path = raw.strip_prefix("unix://").unwrap_or(raw);
        if !Path::new(path).is_absolute() {
            return Err(ToolError::Execution(format!(
                "shell daemon endpoint '{raw}' is not unix:///absolute/path, an absolute socket path or vsock://CID:PORT"
            )));
        }
        Ok(Self::Unix(PathBuf::from(path)))
    }

    #[cfg(not(feature = "vsock"))]
    fn parse_vsock(raw: &str, _address: &str) -> Result<Self, ToolError> {
        Err(ToolError::Execution(format!(
            "shell daemon endpoint '{raw}': this build lacks the `vsock` feature (microVM tier); rebuild with `--features vsock` or use unix:///path"
        )))
    }

    #[cfg(feature = "vsock")]
    fn parse_vsock(raw: &str, address: &str) -> Result<Self, ToolError> {
        let invalid = |why: String| {
            ToolError::Execution(format!(
                "shell daemon endpoint '{raw}' is not vsock://CID:PORT: {why}"
            ))
        };
        let (cid, port) = address
            .split_once(':')
            .ok_or_else(|| invalid("the ':PORT' part is missing".into()))?;
        let number = |what: &str, text: &str| -> Result<u32, ToolError> {
            if text.is_empty() {
                return Err(invalid(format!("the {what} is missing")));
            }
            let value = text.parse::<u32>().map_err(|e| {
                invalid(format!(
                    "the {what} '{text}' is not a number from 0 to {}: {e}",
                    VSOCK_ANY - 1
                ))
            })?;
            if value == VSOCK_ANY {
                return Err(invalid(format!(
                    "the {what} {value} is the listening wildcard, not an address to connect to"
                )));
            }
            Ok(value)
        };
        Ok(Self::Vsock {
            cid: number("context id (CID)", cid)?,
            port: number("port", port)?,
        })
    }
}

impl fmt::Display for ShellDaemonEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            #[cfg(feature = "vsock")]
            Self::Vsock { cid, port } => write!(f, "{VSOCK_SCHEME}{cid}:{port}"),
        }
    }
}

/// Any connected byte stream to the daemon (Unix socket or vsock).
trait DaemonStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> DaemonStream for T {}

/// One named session in the shell daemon.
#[derive(Debug, Clone)]
pub struct VsockShellSession {
    endpoint: ShellDaemonEndpoint,
    session_id: String,
    working_dir: Option<PathBuf>,
    max_frame_bytes: usize,
}

type Connection = Framed<Box<dyn DaemonStream>, FrameCodec>;

fn protocol_error(expected: &str, got: &ShellDaemonResponse) -> ToolError {
    ToolError::Execution(format!(
        "shell daemon protocol error: expected {expected}, got {got:?}"
    ))
}

fn refused(message: &str) -> ToolError {
    ToolError::Execution(format!("shell daemon: {message}"))
}

impl VsockShellSession {
    /// A session `session_id` in the daemon at `endpoint`, in the daemon's
    /// default working directory unless `with_working_dir` says otherwise.
    pub fn new(endpoint: ShellDaemonEndpoint, session_id: impl Into<String>) -> Self {
        Self {
            endpoint,
            session_id: session_id.into(),
            working_dir: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// The session's working directory (as the daemon sees it).
    pub fn with_working_dir(mut self, working_dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(working_dir.into());
        self
    }

    pub fn endpoint(&self) -> &ShellDaemonEndpoint {
        &self.endpoint
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The daemon session for conversation `conversation`:
    /// `<base>:<conversation>`, or `<base>:h-<hash>` when the conversation
    /// id holds characters the daemon refuses in session ids or is too long.
    pub fn for_conversation(&self, conversation: &SessionId) -> Self {
        let id = conversation.as_str();
        let plain = format!("{}:{id}", self.session_id);
        let session_id = if plain.len() <= MAX_DAEMON_SESSION_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            plain
        } else {
            let digest = Sha256::digest(id.as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}:h-{hex}", self.session_id)
        };
        Self {
            session_id,
            ..self.clone()
        }
    }

    async fn connect(&self) -> Result<Connection, ToolError> {
        let stream: Box<dyn DaemonStream> = match &self.endpoint {
            ShellDaemonEndpoint::Unix(path) => UnixStream::connect(path)
                .await
                .map(|s| Box::new(s) as Box<dyn DaemonStream>),
            #[cfg(feature = "vsock")]
            ShellDaemonEndpoint::Vsock { cid, port } => {
                tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port))
                    .await
                    .map(|s| Box::new(s) as Box<dyn DaemonStream>)
            }
        }
        .map_err(|e| {
            ToolError::Execution(format!(
                "shell daemon at {} is unreachable: {e}",
                self.endpoint
            ))
        })?;
        Ok(Framed::new(stream, FrameCodec::new(self.max_frame_bytes)))
    }

    /// Queues a request (sent on the next flush).
    async fn feed(
        &self,
        connection: &mut Connection,
        request: &ShellDaemonRequest,
    ) -> Result<(), ToolError> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| ToolError::Execution(format!("encoding a shell daemon request: {e}")))?;
        connection
            .feed(Bytes::from(payload))
            .await
            .map_err(|e| self.io_error(e))
    }

    async fn flush(&self, connection: &mut Connection) -> Result<(), ToolError> {
        connection.flush().await.map_err(|e| self.io_error(e))
    }

    fn io_error(&self, error: impl fmt::Display) -> ToolError {
        ToolError::Execution(format!(
            "shell daemon connection {} failed: {error}",
            self.endpoint
        ))
    }

    async fn receive(&self, connection: &mut Connection) -> Result<ShellDaemonResponse, ToolError> {
        let payload = connection
            .next()
            .await
            .ok_or_else(|| self.io_error("the daemon closed the connection"))?
            .map_err(|e| self.io_error(e))?;
        serde_json::from_slice(&payload).map_err(|e| {
            ToolError::Execution(format!("shell daemon sent a malformed response: {e}"))
        })
    }

    fn spawn_request(&self) -> ShellDaemonRequest {
        ShellDaemonRequest::SpawnSession {
            session_id: self.session_id.clone(),
            working_dir: self.working_dir.clone(),
        }
    }

    async fn expect_spawned(&self, connection: &mut Connection) -> Result<(), ToolError> {
        match self.receive(connection).await? {
            ShellDaemonResponse::SessionSpawned { .. } => Ok(()),
            ShellDaemonResponse::Error { message } => Err(refused(&message)),
            other => Err(protocol_error("session_spawned", &other)),
        }
    }

    /// Creates the session (or confirms it exists). The runner uses this at
    /// start-up to tell whether the sidecar answers.
    pub async fn spawn(&self) -> Result<(), ToolError> {
        let mut connection = self.connect().await?;
        self.feed(&mut connection, &self.spawn_request()).await?;
        self.flush(&mut connection).await?;
        self.expect_spawned(&mut connection).await
    }

    /// Ends the session and every process it runs.
    pub async fn kill(&self) -> Result<(), ToolError> {
        let mut connection = self.connect().await?;
        let request = ShellDaemonRequest::KillSession {
            session_id: self.session_id.clone(),
        };
        self.feed(&mut connection, &request).await?;
        self.flush(&mut connection).await?;
        match self.receive(&mut connection).await? {
            ShellDaemonResponse::SessionKilled { .. } => Ok(()),
            ShellDaemonResponse::Error { message } => Err(refused(&message)),
            other => Err(protocol_error("session_killed", &other)),
        }
    }

    async fn start_exec(
        &self,
        command: &str,
        timeout: Duration,
        stream: bool,
    ) -> Result<Connection, ToolError> {
        let mut connection = self.connect().await?;
        self.feed(&mut connection, &self.spawn_request()).await?;
        let exec = ShellDaemonRequest::ExecCommand {
            session_id: self.session_id.clone(),
            command: command.to_owned(),
            timeout_ms: Some(
                u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            ),
        };
        self.feed(&mut connection, &exec).await?;
        if stream {
            let request = ShellDaemonRequest::StreamOutput {
                session_id: self.session_id.clone(),
            };
            self.feed(&mut connection, &request).await?;
        }
        self.flush(&mut connection).await?;
        self.expect_spawned(&mut connection).await?;
        Ok(connection)
    }

    /// Runs `command` and hands every output chunk to `on_chunk` as it
    /// arrives; returns the complete (capped) output at the end.
    pub async fn exec_streaming(
        &self,
        command: &str,
        timeout: Duration,
        on_chunk: &mut (dyn FnMut(StreamType, &str) + Send),
    ) -> Result<ShellOutput, ToolError> {
        let mut connection = self.start_exec(command, timeout, true).await?;
        let mut output = None;
        let mut stream_done = false;
        // The daemon sends the chunks and `StreamFinished`, and the
        // `CommandOutput` before or after them (see its connection docs).
        while output.is_none() || !stream_done {
            match self.receive(&mut connection).await? {
                ShellDaemonResponse::StreamOutputChunk { data, stream_type } => {
                    on_chunk(stream_type, &data);
                }
                ShellDaemonResponse::StreamFinished { .. } => stream_done = true,
                response @ ShellDaemonResponse::CommandOutput { .. } => {
                    output = Some(into_output(response)?);
                }
                ShellDaemonResponse::Error { message } => return Err(refused(&message)),
                other => return Err(protocol_error("stream_output_chunk", &other)),
            }
        }
        output.ok_or_else(|| self.io_error("the command's output never arrived"))
    }
}

fn into_output(response: ShellDaemonResponse) -> Result<ShellOutput, ToolError> {
    match response {
        ShellDaemonResponse::CommandOutput {
            stdout,
            stderr,
            exit_code,
            timed_out,
            truncated,
        } => Ok(ShellOutput {
            stdout,
            stderr,
            exit_code,
            timed_out,
            truncated,
        }),
        ShellDaemonResponse::Error { message } => Err(refused(&message)),
        other => Err(protocol_error("command_output", &other)),
    }
}

impl VsockShellSession {
    /// Runs `command` in this very daemon session.
    pub async fn run(&self, command: &str, timeout: Duration) -> Result<ShellOutput, ToolError> {
        let mut connection = self.start_exec(command, timeout, false).await?;
        // Dropping the connection early (the registry's timeout, a
        // cancelled turn) makes the daemon kill the command.
        into_output(self.receive(&mut connection).await?)
    }
}

#[async_trait]
impl ShellSession for VsockShellSession {
    async fn exec(
        &self,
        conversation: &SessionId,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ToolError> {
        self.for_conversation(conversation)
            .run(command, timeout)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_conversation_gets_a_daemon_session_of_its_own() {
        let base = VsockShellSession::new(ShellDaemonEndpoint::Unix("/s".into()), "agent");
        let a = base.for_conversation(&"s-18f-a1b2".into());
        assert_eq!(a.session_id(), "agent:s-18f-a1b2");
        assert_eq!(
            base.for_conversation(&"s-18f-a1b2".into()).session_id(),
            a.session_id()
        );
        // Ids the daemon would refuse, or too long ones, are hashed, and
        // two such ids still get different sessions.
        let odd = base.for_conversation(&"a/b c".into());
        let other = base.for_conversation(&"a_b_c".into());
        assert!(
            odd.session_id().starts_with("agent:h-"),
            "{}",
            odd.session_id()
        );
        assert_ne!(odd.session_id(), other.session_id());
        let long = base.for_conversation(&"x".repeat(200).as_str().into());
        assert!(long.session_id().len() <= MAX_DAEMON_SESSION_ID);
    }

    #[test]
    fn unix_endpoints_parse_from_the_envelope_forms() {
        assert_eq!(
            ShellDaemonEndpoint::parse("unix:///work/alice/tmp/shell.sock").unwrap(),
            ShellDaemonEndpoint::Unix("/work/alice/tmp/shell.sock".into())
        );
        assert_eq!(
            ShellDaemonEndpoint::parse("/run/shell.sock").unwrap(),
            ShellDaemonEndpoint::Unix("/run/shell.sock".into())
        );
        for bad in ["relative.sock", "unix://relative", ""] {
            let err = ShellDaemonEndpoint::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
            assert!(err.contains("unix:///absolute/path"), "{err}");
        }
        let endpoint = ShellDaemonEndpoint::Unix("/a/b".into());
        assert_eq!(endpoint.to_string(), "unix:///a/b");
        assert_eq!(
            ShellDaemonEndpoint::parse(&endpoint.to_string()).unwrap(),
            endpoint
        );
    }

    #[cfg(not(feature = "vsock"))]
    #[test]
    fn vsock_endpoints_name_the_missing_feature() {
        for raw in ["vsock://3:5000", "vsock://", "vsock://x:y"] {
            let err = ShellDaemonEndpoint::parse(raw).unwrap_err().to_string();
            assert!(err.contains(&format!("'{raw}'")), "{err}");
            assert!(err.contains("lacks the `vsock` feature"), "{err}");
        }
    }

    #[cfg(feature = "vsock")]
    #[test]
    fn vsock_endpoints_parse_and_round_trip() {
        for (raw, cid, port) in [
            ("vsock://3:5000", 3, 5000),
            ("vsock://1:0", 1, 0),
            ("vsock://4294967294:4294967294", u32::MAX - 1, u32::MAX - 1),
        ] {
            let endpoint = ShellDaemonEndpoint::parse(raw).unwrap();
            assert_eq!(endpoint, ShellDaemonEndpoint::Vsock { cid, port });
            assert_eq!(endpoint.to_string(), raw);
            assert_eq!(
                ShellDaemonEndpoint::parse(&endpoint.to_string()).unwrap(),
                endpoint
            );
        }
    }

    #[cfg(feature = "vsock")]
    #[test]
    fn bad_vsock_endpoints_say_what_is_wrong() {
        for (raw, expected) in [
            ("vsock://", "':PORT' part is missing"),
            ("vsock://3", "':PORT' part is missing"),
            ("vsock://:5000", "context id (CID) is missing"),
            ("vsock://3:", "port is missing"),
            ("vsock://x:5000", "context id (CID) 'x' is not a number"),
            ("vsock://3:port", "port 'port' is not a number"),
            ("vsock://-1:5000", "context id (CID) '-1' is not a number"),
            ("vsock://3:4294967296", "port '4294967296' is not a number"),
            ("vsock://3:50:00", "port '50:00' is not a number"),
            (
                "vsock://4294967295:5000",
                "context id (CID) 4294967295 is the listening wildcard",
            ),
            (
                "vsock://3:4294967295",
                "port 4294967295 is the listening wildcard",
            ),
        ] {
            let err = ShellDaemonEndpoint::parse(raw).unwrap_err().to_string();
            assert!(err.contains(&format!("'{raw}'")), "{err}");
            assert!(err.contains(expected), "{raw}: {err}");
        }
    }
}
