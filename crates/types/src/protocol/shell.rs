//! The shell-daemon protocol: JSON requests and responses, one per
//! length-prefixed frame (`protocol::framing`), over a Unix socket or vsock.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The line the `shell-daemon` binary prints on stdout once it accepts
/// connections, followed by its socket path. Launchers wait for it instead
/// of polling the socket.
pub const SHELL_DAEMON_READY_PREFIX: &str = "shell-daemon listening on ";

/// A request from `oxydra-vm` to the shell daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShellDaemonRequest {
    /// Starts a session with its own working directory and environment.
    SpawnSession {
        session_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        working_dir: Option<PathBuf>,
    },
    /// Runs one command in a session and waits for it (or its timeout).
    ExecCommand {
        session_id: String,
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Streams the output of the session's running command as chunks.
    StreamOutput { session_id: String },
    /// Ends a session and its whole process group.
    KillSession { session_id: String },
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamType {
    Stdout,
    Stderr,
}

/// A response from the shell daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShellDaemonResponse {
    SessionSpawned {
        session_id: String,
    },
    CommandOutput {
        stdout: String,
        stderr: String,
        exit_code: i32,
        /// The timeout fired and the process group was killed.
        #[serde(default)]
        timed_out: bool,
        /// Output was cut at the daemon's cap.
        #[serde(default)]
        truncated: bool,
    },
    StreamOutputChunk {
        data: String,
        stream_type: StreamType,
    },
    /// The streamed command ended; no more chunks follow.
    StreamFinished {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    SessionKilled {
        session_id: String,
    },
    /// Any failure: malformed or oversized frame, unknown session, …
    Error {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::{DEFAULT_MAX_FRAME_BYTES, encode_json_frame, read_json_frame};
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn every_request_round_trips_through_a_frame() {
        let requests = [
            ShellDaemonRequest::SpawnSession {
                session_id: "s1".into(),
                working_dir: Some("/shared".into()),
            },
            ShellDaemonRequest::ExecCommand {
                session_id: "s1".into(),
                command: "ls -la".into(),
                timeout_ms: Some(5_000),
            },
            ShellDaemonRequest::StreamOutput {
                session_id: "s1".into(),
            },
            ShellDaemonRequest::KillSession {
                session_id: "s1".into(),
            },
        ];
        for request in &requests {
            let frame = encode_json_frame(request, DEFAULT_MAX_FRAME_BYTES).unwrap();
            let back: ShellDaemonRequest =
                read_json_frame(&mut frame.as_slice(), DEFAULT_MAX_FRAME_BYTES).unwrap();
            assert_eq!(&back, request);
        }
    }

    #[test]
    fn every_response_round_trips() {
        for response in [
            ShellDaemonResponse::SessionSpawned {
                session_id: "s".into(),
            },
            ShellDaemonResponse::CommandOutput {
                stdout: "out".into(),
                stderr: "err".into(),
                exit_code: 2,
                timed_out: true,
                truncated: false,
            },
            ShellDaemonResponse::StreamOutputChunk {
                data: "x".into(),
                stream_type: StreamType::Stderr,
            },
            ShellDaemonResponse::StreamFinished { exit_code: Some(0) },
            ShellDaemonResponse::SessionKilled {
                session_id: "s".into(),
            },
            ShellDaemonResponse::Error {
                message: "unknown session".into(),
            },
        ] {
            round_trip(&response);
        }
    }

    #[test]
    fn wire_shape_is_tagged() {
        assert_eq!(
            serde_json::to_value(ShellDaemonRequest::KillSession {
                session_id: "s".into()
            })
            .unwrap(),
            json!({"type": "kill_session", "session_id": "s"})
        );
    }

    #[test]
    fn malformed_requests_are_clear_errors() {
        let err =
            serde_json::from_str::<ShellDaemonRequest>(r#"{"type":"format_disk"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `format_disk`"),
            "{err}"
        );
        let err =
            serde_json::from_str::<ShellDaemonRequest>(r#"{"type":"exec_command"}"#).unwrap_err();
        assert!(
            err.to_string().contains("missing field `session_id`"),
            "{err}"
        );
        let err = serde_json::from_str::<ShellDaemonRequest>(r#"{"session_id":"s"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `type`"), "{err}");
    }
}
