//! The daemon's limits and the environment its commands get.

use std::path::PathBuf;
use std::time::Duration;

use types::protocol::framing::DEFAULT_MAX_FRAME_BYTES;

/// `PATH` of every command: system directories only.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The environment variable naming the session a command runs in.
pub const SESSION_ENV: &str = "OXYDRA_SHELL_SESSION";

/// Limits and defaults of one daemon. `Default` gives the production
/// values; the binary's flags override them.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Working directory of sessions spawned without one, and the base that
    /// relative working directories are resolved against.
    pub default_working_dir: PathBuf,
    /// Extra variables every command gets (set explicitly by the operator;
    /// nothing is inherited from the daemon's own environment).
    pub extra_env: Vec<(String, String)>,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Bytes kept (and streamed) of each of stdout and stderr per command.
    pub output_cap: usize,
    /// Time limit of a command sent without `timeout_ms`.
    pub default_timeout: Duration,
    /// Largest `timeout_ms` accepted.
    pub max_timeout: Duration,
    /// A session with no running command is removed after this long.
    pub idle_timeout: Duration,
    /// Live sessions at once.
    pub max_sessions: usize,
    /// Client connections served at once; more get an error and are closed.
    pub max_connections: usize,
    /// After a command's leader exits, how long to keep reading output that
    /// an escaped descendant may still hold open.
    pub drain_grace: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            default_working_dir: PathBuf::from("/"),
            extra_env: Vec::new(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            output_cap: 256 * 1024,
            default_timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(30 * 60),
            max_sessions: 64,
            max_connections: 64,
            drain_grace: Duration::from_millis(500),
        }
    }
}
