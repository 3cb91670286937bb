//! One client connection: a loop over request frames, running at most one
//! operation at a time.
//!
//! Ordering rules (what "out of order" means):
//! - A connection runs one operation at a time: an `ExecCommand` until its
//!   `CommandOutput`, or a `StreamOutput` until its `StreamFinished`. A
//!   request sent meanwhile gets an `Error` and changes nothing — with one
//!   exception:
//! - `StreamOutput` for the session of this connection's running
//!   `ExecCommand` may be pipelined right after it. The daemon then sends
//!   the command's output as `StreamOutputChunk`s, `StreamFinished`, and
//!   only then the `CommandOutput`. If the command finished before the
//!   `StreamOutput` was read, the `CommandOutput` comes first and the
//!   stream replays the captured output. Either way the client reads until
//!   it has both.
//! - `StreamOutput` from another connection follows the session's running
//!   command from its first byte (a watcher); with nothing running it is an
//!   `Error`.
//!
//! A well-framed but malformed request gets an `Error` and the connection
//! stays usable. A broken frame (oversized, truncated) gets an `Error` and
//! the connection is closed, because the stream cannot be resynchronised.
//! A client that disconnects during `ExecCommand` has its command killed.

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use types::protocol::framing::{FrameCodec, FrameError};
use types::protocol::shell::{ShellDaemonRequest, ShellDaemonResponse};

use crate::command::RunningCommand;
use crate::error::ShellDaemonError;
use crate::output::{CommandResult, OutputCursor, OutputEvent};
use crate::session::SessionManager;

/// This connection's running `ExecCommand`. Dropping it (client gone,
/// daemon stopping) kills the command.
#[derive(Debug)]
struct InFlight {
    session_id: String,
    command: Arc<RunningCommand>,
    /// A `StreamOutput` is attached; its end completes the exec.
    streaming: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.command.is_finished() {
            tracing::info!(session_id = %self.session_id, "client left during a command; killing it");
            self.command.kill();
        }
    }
}

/// A `StreamOutput` being served.
#[derive(Debug)]
struct Streaming {
    session_id: String,
    cursor: OutputCursor,
    /// Attached to this connection's `InFlight`.
    of_exec: bool,
}

fn request_name(request: &ShellDaemonRequest) -> &'static str {
    match request {
        ShellDaemonRequest::SpawnSession { .. } => "spawn_session",
        ShellDaemonRequest::ExecCommand { .. } => "exec_command",
        ShellDaemonRequest::StreamOutput { .. } => "stream_output",
        ShellDaemonRequest::KillSession { .. } => "kill_session",
    }
}

fn error_response(error: impl std::fmt::Display) -> ShellDaemonResponse {
    ShellDaemonResponse::Error {
        message: error.to_string(),
    }
}

fn command_output(command: &RunningCommand, result: CommandResult) -> ShellDaemonResponse {
    let (stdout, stderr, truncated) = command.log().collected();
    ShellDaemonResponse::CommandOutput {
        stdout,
        stderr,
        exit_code: result.exit_code,
        timed_out: result.timed_out,
        truncated,
    }
}

fn halve(text: &mut String) {
    let cut = text.floor_char_boundary(text.len() / 2);
    text.truncate(cut);
}

/// Serialises a response into at most `max` bytes. A `CommandOutput` whose
/// JSON (escaping can grow text up to six-fold) does not fit is cut further
/// and marked truncated.
fn encode(response: ShellDaemonResponse, max: usize) -> Bytes {
    let mut response = response;
    loop {
        let bytes = match serde_json::to_vec(&response) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "a response could not be serialised");
                return Bytes::from_static(br#"{"type":"error","message":"internal error: the response could not be serialised"}"#);
            }
        };
        if bytes.len() <= max {
            return Bytes::from(bytes);
        }
        match &mut response {
            ShellDaemonResponse::CommandOutput {
                stdout,
                stderr,
                truncated,
                ..
            } if !(stdout.is_empty() && stderr.is_empty()) => {
                halve(stdout);
                halve(stderr);
                *truncated = true;
            }
            _ => {
                response = error_response(format!(
                    "the response ({} bytes) exceeds the frame limit of {max} bytes",
                    bytes.len()
                ));
            }
        }
    }
}

type Conn<S> = Framed<S, FrameCodec>;

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Conn<S>,
    response: ShellDaemonResponse,
    max: usize,
) -> Result<(), FrameError> {
    framed.send(encode(response, max)).await
}

/// Answers a connection over the cap with one error, then closes it.
pub(crate) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    max_connections: usize,
    max_frame: usize,
) {
    let mut framed = Framed::new(stream, FrameCodec::new(max_frame));
    let message = format!(
        "the daemon is serving its maximum of {max_connections} connections; retry shortly"
    );
    // The client may already be gone; there is nothing else to tell it.
    let _ = send(&mut framed, error_response(message), max_frame).await;
}

struct ConnectionState {
    manager: Arc<SessionManager>,
    exec: Option<InFlight>,
    stream: Option<Streaming>,
    /// The exec that finished on the previous response, for a pipelined
    /// `StreamOutput` that arrives just after; valid for one frame.
    replayable: Option<(String, Arc<RunningCommand>)>,
}

impl ConnectionState {
    fn in_progress(&self) -> Option<String> {
        if let Some(exec) = &self.exec {
            return Some(format!("exec_command in session '{}'", exec.session_id));
        }
        self.stream
            .as_ref()
            .map(|s| format!("stream_output of session '{}'", s.session_id))
    }

    /// Handles one decoded request; returns the immediate response, if any.
    fn handle(&mut self, request: ShellDaemonRequest) -> Option<ShellDaemonResponse> {
        let replayable = self.replayable.take();
        if let Some(in_progress) = self.in_progress() {
            if let (ShellDaemonRequest::StreamOutput { session_id }, Some(exec)) =
                (&request, self.exec.as_mut())
                && *session_id == exec.session_id
                && !exec.streaming
            {
                exec.streaming = true;
                self.stream = Some(Streaming {
                    session_id: session_id.clone(),
                    cursor: exec.command.log().cursor(),
                    of_exec: true,
                });
                return None;
            }
            return Some(error_response(ShellDaemonError::OutOfOrder {
                request: request_name(&request),
                in_progress,
            }));
        }
        let manager = Arc::clone(&self.manager);
        match request {
            ShellDaemonRequest::SpawnSession {
                session_id,
                working_dir,
            } => Some(
                match manager.spawn_session(&session_id, working_dir.as_deref()) {
                    Ok(_) => ShellDaemonResponse::SessionSpawned { session_id },
                    Err(error) => error_response(error),
                },
            ),
            ShellDaemonRequest::ExecCommand {
                session_id,
                command,
                timeout_ms,
            } => match manager.exec(&session_id, &command, timeout_ms) {
                Ok(command) => {
                    self.exec = Some(InFlight {
                        session_id,
                        command,
                        streaming: false,
                    });
                    None
                }
                Err(error) => Some(error_response(error)),
            },
            ShellDaemonRequest::StreamOutput { session_id } => {
                let command = match replayable {
                    Some((id, command)) if id == session_id => Ok(command),
                    _ => manager.running_command(&session_id),
                };
                match command {
                    Ok(command) => {
                        self.stream = Some(Streaming {
                            session_id,
                            cursor: command.log().cursor(),
                            of_exec: false,
                        });
                        None
                    }
                    Err(error) => Some(error_response(error)),
                }
            }
            ShellDaemonRequest::KillSession { session_id } => {
                Some(match manager.kill_session(&session_id) {
                    Ok(()) => ShellDaemonResponse::SessionKilled { session_id },
                    Err(error) => error_response(error),
                })
            }
        }
    }
}

async fn next_event(stream: &mut Option<Streaming>) -> Option<OutputEvent> {
    match stream {
        Some(streaming) => streaming.cursor.next().await,
        None => std::future::pending().await,
    }
}

async fn exec_result(exec: &Option<InFlight>) -> CommandResult {
    match exec {
        Some(exec) => exec.command.log().wait().await,
        None => std::future::pending().await,
    }
}

/// Serves one client until it disconnects, breaks the framing, or `stop`
/// is cancelled.
pub(crate) async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    manager: Arc<SessionManager>,
    stop: CancellationToken,
) {
    let max = manager.config().max_frame_bytes;
    let mut framed = Framed::new(stream, FrameCodec::new(max));
    let mut state = ConnectionState {
        manager,
        exec: None,
        stream: None,
        replayable: None,
    };
    loop {
        let waiting_for_exec = state.exec.as_ref().is_some_and(|e| !e.streaming);
        let response = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            event = next_event(&mut state.stream), if state.stream.is_some() => {
                match event {
                    Some(OutputEvent::Chunk { stream, data }) => {
                        ShellDaemonResponse::StreamOutputChunk { data, stream_type: stream }
                    }
                    Some(OutputEvent::Finished(result)) => {
                        let finished = ShellDaemonResponse::StreamFinished {
                            exit_code: Some(result.exit_code),
                        };
                        let streaming = state.stream.take();
                        if send(&mut framed, finished, max).await.is_err() {
                            break;
                        }
                        match (streaming, state.exec.take()) {
                            (Some(Streaming { of_exec: true, .. }), Some(exec)) => {
                                command_output(&exec.command, result)
                            }
                            (_, exec) => {
                                state.exec = exec;
                                continue;
                            }
                        }
                    }
                    None => {
                        // Unreachable: a cursor yields `Finished` before
                        // `None`. Drop the stream rather than spin.
                        state.stream = None;
                        continue;
                    }
                }
            }
            result = exec_result(&state.exec), if waiting_for_exec => {
                let Some(exec) = state.exec.take() else { continue };
                let response = command_output(&exec.command, result);
                state.replayable = Some((exec.session_id.clone(), Arc::clone(&exec.command)));
                response
            }
            frame = framed.next() => match frame {
                None => break,
                Some(Ok(payload)) => {
                    let handled = match serde_json::from_slice::<ShellDaemonRequest>(&payload) {
                        Ok(request) => state.handle(request),
                        Err(error) => {
                            state.replayable = None;
                            Some(error_response(format!("malformed request: {error}")))
                        }
                    };
                    match handled {
                        Some(response) => response,
                        None => continue,
                    }
                }
                Some(Err(FrameError::Io(error))) => {
                    tracing::debug!(%error, "connection read failed");
                    break;
                }
                Some(Err(error)) => {
                    // Oversized or truncated: answer, then close, since the
                    // byte stream cannot be resynchronised.
                    let _ = send(&mut framed, error_response(format!("bad frame: {error}")), max).await;
                    break;
                }
            },
        };
        if send(&mut framed, response, max).await.is_err() {
            break;
        }
    }
}
