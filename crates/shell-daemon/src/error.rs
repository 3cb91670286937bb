//! The daemon's error type. Every request-level variant becomes an
//! `Error { message }` response with its `Display` text; the connection
//! stays open unless the framing itself broke.

use std::path::PathBuf;

use thiserror::Error;

/// Everything the shell daemon can refuse or fail at.
#[derive(Debug, Error)]
pub enum ShellDaemonError {
    /// Returned by every request naming a session that was never spawned,
    /// was killed, or expired while idle. Retry after `SpawnSession`.
    #[error(
        "unknown session '{session_id}': spawn it with spawn_session first (sessions end on kill_session or after being idle)"
    )]
    UnknownSession { session_id: String },

    /// Returned by `SpawnSession` for an id that is not a safe, short
    /// identifier. Not retriable with the same id.
    #[error("invalid session id '{session_id}': {reason}")]
    InvalidSessionId {
        session_id: String,
        reason: &'static str,
    },

    /// Returned by `SpawnSession` when the id is live with another working
    /// directory. Kill the session first, or use another id.
    #[error(
        "session '{session_id}' already exists with working directory {existing}; kill it first or use another id"
    )]
    SessionExists {
        session_id: String,
        existing: PathBuf,
    },

    /// Returned by `SpawnSession` when the working directory cannot be used.
    /// Not retriable with the same path.
    #[error("working directory {path} cannot be used: {reason}")]
    InvalidWorkingDir { path: PathBuf, reason: String },

    /// Returned by `SpawnSession` when the daemon holds its maximum number
    /// of sessions. Retry after killing a session.
    #[error("the daemon already holds its maximum of {max} sessions; kill one first")]
    TooManySessions { max: usize },

    /// Returned by `ExecCommand` while the session runs another command.
    /// Retry when that command has finished.
    #[error(
        "session '{session_id}' is already running a command; wait for it or use another session"
    )]
    SessionBusy { session_id: String },

    /// Returned by `StreamOutput` when the session runs nothing to stream.
    #[error(
        "session '{session_id}' has no running command to stream; send stream_output while an exec_command is in progress"
    )]
    NoRunningCommand { session_id: String },

    /// Returned by `ExecCommand` for an empty command line.
    #[error("the command is empty")]
    EmptyCommand,

    /// Returned by `ExecCommand` for a timeout of zero or above the maximum.
    #[error("timeout_ms {timeout_ms} is out of range: use 1 to {max_ms} milliseconds")]
    InvalidTimeout { timeout_ms: u64, max_ms: u64 },

    /// Returned for a request sent while this connection is busy with
    /// another one. Wait for the earlier response or open a second
    /// connection.
    #[error(
        "out of order: {request} was sent while {in_progress} is in progress on this connection; wait for its response or use another connection"
    )]
    OutOfOrder {
        request: &'static str,
        in_progress: String,
    },

    /// Returned by `ExecCommand` when the shell could not be started
    /// (missing `sh`, process limit). Retriable once resources free up.
    #[error("could not start the command: {0}")]
    Spawn(#[source] std::io::Error),

    /// Returned by `bind_socket` when another daemon answers on the path.
    #[error("another shell daemon is already listening on {0}")]
    SocketInUse(PathBuf),

    /// Returned by `bind_socket` when the socket cannot be created.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Returned by `bind_vsock` when the port cannot be bound: the port is
    /// taken (another daemon; retry once it stopped), below 1024 without
    /// `CAP_NET_BIND_SERVICE`, the wildcard port, or the kernel has no vsock
    /// support (`/dev/vsock` missing). Not retriable otherwise.
    #[cfg(feature = "vsock")]
    #[error("cannot listen on vsock port {port}: {source}")]
    BindVsock {
        port: u32,
        #[source]
        source: std::io::Error,
    },
}
