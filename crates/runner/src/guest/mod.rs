//! `oxydra-vm`: the guest. Reads the bootstrap envelope, validates the
//! agent configuration it carries, and wires provider (with retries and
//! fallbacks), memory, tools, runtime and gateway together (spec 06,
//! "Guest start"); then serves until stopped, removing its endpoint file
//! on the way out.
//!
//! Self-hardening (Landlock) happens in the binary's `main`, before any
//! thread exists; everything here runs afterwards, so it may only touch the
//! workspace and read-only system paths.

mod assemble;
mod directory;
pub mod envelope;
mod knowledge;
mod tools;

pub use assemble::{RunningGuest, start};
pub use directory::MemorySessionDirectory;

use thiserror::Error;

/// Why the guest could not start or stop cleanly.
#[derive(Debug, Error)]
pub enum GuestError {
    /// The envelope is missing, truncated, oversized or not valid JSON.
    /// The runner (or whoever started the guest) must fix its input.
    #[error("{0}")]
    Envelope(String),
    /// The agent configuration is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The provider could not be built (e.g. no API key for it).
    #[error("cannot set up the model provider: {0}")]
    Provider(String),
    /// The memory database could not be opened or migrated.
    #[error("cannot open memory: {0}")]
    Memory(String),
    /// A tool could not be set up.
    #[error("cannot set up tools: {0}")]
    Tools(String),
    /// The workspace directories could not be created or written.
    #[error("workspace {path}: {message}")]
    Workspace { path: String, message: String },
    /// The gateway could not start, or its endpoint file not be written.
    #[error("gateway: {0}")]
    Gateway(String),
}

impl GuestError {
    /// The process exit code: 2 for input the operator must fix (envelope,
    /// configuration, credentials), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Envelope(_) | Self::Config(_) | Self::Provider(_) => 2,
            Self::Memory(_) | Self::Tools(_) | Self::Workspace { .. } | Self::Gateway(_) => 1,
        }
    }
}
