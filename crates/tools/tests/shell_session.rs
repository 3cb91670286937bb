//! The shell-daemon client (`VsockShellSession`) against scripted servers
//! on real Unix sockets: the exact requests it sends, how it maps answers,
//! and how it fails when the daemon misbehaves. The real daemon is driven
//! end to end in `crates/shell-daemon/tests/daemon/shell_exec.rs`.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;
use tools::shell::{ShellDaemonEndpoint, ShellOutput, VsockShellSession};
use types::protocol::framing::FrameCodec;
use types::protocol::shell::{ShellDaemonRequest, ShellDaemonResponse, StreamType};

type Conn = Framed<UnixStream, FrameCodec>;

struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    listener: UnixListener,
}

impl Server {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("daemon.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        Self {
            _dir: dir,
            socket,
            listener,
        }
    }

    fn session(&self) -> VsockShellSession {
        VsockShellSession::new(ShellDaemonEndpoint::Unix(self.socket.clone()), "agent-1")
            .with_working_dir("/shared")
    }

    async fn accept(&self) -> Conn {
        let (stream, _) = self.listener.accept().await.unwrap();
        Framed::new(stream, FrameCodec::default())
    }
}

async fn read_request(conn: &mut Conn) -> ShellDaemonRequest {
    let payload = conn.next().await.unwrap().unwrap();
    serde_json::from_slice(&payload).unwrap()
}

async fn reply(conn: &mut Conn, response: ShellDaemonResponse) {
    let payload = serde_json::to_vec(&response).unwrap();
    conn.send(Bytes::from(payload)).await.unwrap();
}

fn spawned() -> ShellDaemonResponse {
    ShellDaemonResponse::SessionSpawned {
        session_id: "agent-1".into(),
    }
}

#[tokio::test]
async fn exec_pipelines_spawn_and_exec_and_maps_the_output() {
    let server = Server::new();
    let session = server.session();
    let client = tokio::spawn(async move {
        session
            .run("grep -rn TODO src", Duration::from_millis(1500))
            .await
    });
    let mut conn = server.accept().await;
    // Both requests arrive before any answer: one round trip per call.
    assert_eq!(
        read_request(&mut conn).await,
        ShellDaemonRequest::SpawnSession {
            session_id: "agent-1".into(),
            working_dir: Some("/shared".into()),
        }
    );
    assert_eq!(
        read_request(&mut conn).await,
        ShellDaemonRequest::ExecCommand {
            session_id: "agent-1".into(),
            command: "grep -rn TODO src".into(),
            timeout_ms: Some(1500),
        }
    );
    reply(&mut conn, spawned()).await;
    reply(
        &mut conn,
        ShellDaemonResponse::CommandOutput {
            stdout: "src/a.rs:1: TODO\n".into(),
            stderr: "warning\n".into(),
            exit_code: 137,
            timed_out: true,
            truncated: true,
        },
    )
    .await;
    assert_eq!(
        client.await.unwrap().unwrap(),
        ShellOutput {
            stdout: "src/a.rs:1: TODO\n".into(),
            stderr: "warning\n".into(),
            exit_code: 137,
            timed_out: true,
            truncated: true,
        }
    );
}

#[tokio::test]
async fn streaming_accepts_the_final_output_before_or_after_the_stream() {
    for output_first in [false, true] {
        let server = Server::new();
        let session = server.session();
        let client = tokio::spawn(async move {
            let mut chunks = Vec::new();
            let output = session
                .exec_streaming("make", Duration::from_secs(5), &mut |stream, data| {
                    chunks.push((stream, data.to_owned()))
                })
                .await;
            (output, chunks)
        });
        let mut conn = server.accept().await;
        for _ in 0..2 {
            read_request(&mut conn).await;
        }
        assert_eq!(
            read_request(&mut conn).await,
            ShellDaemonRequest::StreamOutput {
                session_id: "agent-1".into()
            }
        );
        let output = ShellDaemonResponse::CommandOutput {
            stdout: "built\n".into(),
            stderr: String::new(),
            exit_code: 0,
            timed_out: false,
            truncated: false,
        };
        reply(&mut conn, spawned()).await;
        if output_first {
            reply(&mut conn, output.clone()).await;
        }
        reply(
            &mut conn,
            ShellDaemonResponse::StreamOutputChunk {
                data: "built\n".into(),
                stream_type: StreamType::Stdout,
            },
        )
        .await;
        reply(
            &mut conn,
            ShellDaemonResponse::StreamFinished { exit_code: Some(0) },
        )
        .await;
        if !output_first {
            reply(&mut conn, output).await;
        }
        let (output, chunks) = client.await.unwrap();
        assert_eq!(output.unwrap().stdout, "built\n");
        assert_eq!(chunks, vec![(StreamType::Stdout, "built\n".to_owned())]);
    }
}

#[tokio::test]
async fn daemon_errors_and_broken_answers_become_clear_tool_errors() {
    let error = ShellDaemonResponse::Error {
        message: "unknown session 'agent-1'".into(),
    };
    let wrong = ShellDaemonResponse::SessionKilled {
        session_id: "agent-1".into(),
    };
    let mut truncated = 50u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(b"{\"type\"");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            frame(&serde_json::to_vec(&error).unwrap()),
            "shell daemon: unknown session 'agent-1'",
        ),
        (
            frame(b"{not json"),
            "shell daemon sent a malformed response: key must be a string",
        ),
        (
            frame(&serde_json::to_vec(&wrong).unwrap()),
            "shell daemon protocol error: expected session_spawned, got SessionKilled",
        ),
        (
            vec![0xff, 0xff, 0xff, 0xff],
            "failed: frame of 4294967295 bytes exceeds the limit of 1048576 bytes",
        ),
        (
            truncated,
            "failed: truncated frame: expected 50 payload bytes, received 7",
        ),
        (Vec::new(), "failed: the daemon closed the connection"),
    ];
    for (answer, expected) in cases {
        let server = Server::new();
        let session = server.session();
        let client = tokio::spawn(async move { session.run("ls", Duration::from_secs(5)).await });
        let mut conn = server.accept().await;
        read_request(&mut conn).await;
        read_request(&mut conn).await;
        let stream = conn.get_mut();
        stream.write_all(&answer).await.unwrap();
        stream.shutdown().await.unwrap();
        let err = client.await.unwrap().unwrap_err().to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test]
async fn an_abandoned_call_closes_its_connection_so_the_daemon_kills_the_command() {
    let server = Server::new();
    let session = server.session();
    let client = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_millis(100),
            session.run("sleep 600", Duration::from_secs(600)),
        )
        .await
    });
    let mut conn = server.accept().await;
    read_request(&mut conn).await;
    read_request(&mut conn).await;
    // Never answer: the caller gives up (a registry timeout or cancelled
    // turn) and the daemon must see the connection end.
    assert!(
        client.await.unwrap().is_err(),
        "the call should have timed out"
    );
    assert!(conn.next().await.is_none(), "the connection was left open");
}

#[tokio::test]
async fn kill_and_spawn_map_their_answers() {
    let server = Server::new();
    let session = server.session();
    let client = tokio::spawn(async move { (session.spawn().await, session.kill().await) });
    let mut conn = server.accept().await;
    assert!(matches!(
        read_request(&mut conn).await,
        ShellDaemonRequest::SpawnSession { .. }
    ));
    reply(&mut conn, spawned()).await;
    let mut conn = server.accept().await;
    assert_eq!(
        read_request(&mut conn).await,
        ShellDaemonRequest::KillSession {
            session_id: "agent-1".into()
        }
    );
    reply(
        &mut conn,
        ShellDaemonResponse::Error {
            message: "unknown session 'agent-1'".into(),
        },
    )
    .await;
    let (spawn, kill) = client.await.unwrap();
    spawn.unwrap();
    assert_eq!(
        kill.unwrap_err().to_string(),
        "shell daemon: unknown session 'agent-1'"
    );
}
