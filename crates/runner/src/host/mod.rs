//! `oxydra-runner`, the host side: reads `runner.toml`, picks the user,
//! provisions the workspace, loads the agent configuration and credentials
//! on the host, and starts `oxydra-vm` with the bootstrap envelope on its
//! stdin (process tier). In the foreground it waits for the guest and
//! forwards signals; with `--daemon` it supervises the guest behind a Unix
//! control socket, captures its output into a log file and restarts it
//! when it crashes.
//!
//! It never runs user code, never reads user data (only the files it
//! provisions and the endpoint file) and never takes part in agent turns;
//! it must never call into `crate::guest`.

pub mod audit;
pub mod channels;
pub mod container;
pub mod context;
pub mod control;
pub mod foreground;
pub mod guest;
pub mod launch;
pub mod logs;
pub mod models;
pub mod paths;
pub mod start;
pub mod starter;
pub mod supervisor;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use types::error::{ConfigError, RunnerConfigError};
use types::protocol::framing::FrameError;
use types::runner::SandboxTier;

pub use context::{RunnerContext, TierChoice};
pub use paths::RunnerPaths;

/// The program name used in messages and suggested commands.
pub const RUNNER_BIN: &str = "oxydra-runner";
/// The guest binary's file name, looked up next to the runner.
pub const GUEST_BIN: &str = "oxydra-vm";
/// Overrides where the guest binary is found (unusual install layouts).
pub const GUEST_BIN_ENV: &str = "OXYDRA_VM_BIN";
/// How long a starting guest may take to write its endpoint file. The
/// first start in a fresh workspace compiles the WASM tool modules into the
/// user's cache, which takes seconds (tens of seconds for a debug build on
/// a busy machine); later starts are well under a second.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a guest may take to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Everything `oxydra-runner` can fail with. Returned by the `host`
/// functions to the binary, which prints it and exits non-zero. None of
/// them is worth retrying unchanged except `GuestNotReady` (a slow machine)
/// and `Control` (a supervisor that was busy stopping).
#[derive(Debug, Error)]
pub enum HostError {
    /// `runner.toml` or the user's configuration file is unreadable,
    /// invalid, or names no usable user. Fix the file.
    #[error(transparent)]
    RunnerConfig(#[from] RunnerConfigError),
    /// The agent configuration (`agent.toml`, `OXYDRA__*`) is invalid; the
    /// message names the key and where it came from. Fix the setting.
    #[error("agent configuration: {0}")]
    AgentConfig(ConfigError),
    /// A credential named in the user's configuration cannot be resolved.
    #[error("credential {name} of user '{user}' ({source_desc}): {problem}")]
    Credential {
        user: String,
        name: String,
        source_desc: String,
        problem: String,
    },
    /// The chosen sandbox tier has no backend in this build.
    #[error(
        "sandbox tier '{tier}' ({origin}) is not available in this build yet; start with --insecure to use the process tier"
    )]
    TierUnavailable { tier: SandboxTier, origin: String },
    /// The Docker Engine is unreachable, lacks an image, or refused a
    /// container operation (container tier). The message says what to do.
    #[error("container tier: {0}")]
    Engine(String),
    /// The user configuration asks for something the chosen tier cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// A file or directory the runner owns could not be created or used.
    #[error("{what} {}: {message}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The `oxydra-vm` binary is not where it should be.
    #[error(
        "cannot find the guest binary {}: {message}; install oxydra-vm next to oxydra-runner or set {GUEST_BIN_ENV} to its path",
        .path.display()
    )]
    GuestBinary { path: PathBuf, message: String },
    /// The bootstrap envelope could not be encoded (too large).
    #[error("cannot encode the bootstrap envelope: {0}")]
    Envelope(FrameError),
    /// The guest exited before it was serving. `detail` holds the end of
    /// its stderr (or where to find it).
    #[error("oxydra-vm exited with {status} before it was ready{detail}")]
    GuestExited { status: String, detail: String },
    /// The guest did not write its endpoint file in time; it was stopped.
    #[error("oxydra-vm did not become ready within {waited:?}; it was stopped{detail}")]
    GuestNotReady { waited: Duration, detail: String },
    /// Another runner already serves this user.
    #[error("{0}")]
    AlreadyRunning(String),
    /// No `--daemon` supervisor answers for this user.
    #[error(
        "no supervisor is running for user '{user}' (no control socket answers at {}); start one with: {start_command}",
        .socket.display()
    )]
    NoSupervisor {
        user: String,
        socket: PathBuf,
        start_command: String,
    },
    /// The control socket misbehaved (bad frame, unexpected answer, timeout).
    #[error("control socket {}: {message}", .socket.display())]
    Control { socket: PathBuf, message: String },
    /// The starter configuration was written but needs one more step.
    #[error("{0}")]
    StarterIncomplete(String),
}

// Not `#[from]`: that would also make the error its source, and the
// binary's `{:#}` would print its message twice.
impl From<ConfigError> for HostError {
    fn from(error: ConfigError) -> Self {
        Self::AgentConfig(error)
    }
}

impl From<FrameError> for HostError {
    fn from(error: FrameError) -> Self {
        Self::Envelope(error)
    }
}

impl HostError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            message: error.to_string(),
        }
    }
}
