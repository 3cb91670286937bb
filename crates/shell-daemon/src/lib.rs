//! The shell daemon: Oxydra's guest-side shell sidecar.
//!
//! It owns shell sessions (`SessionManager`: per-session working directory,
//! environment and idle lifetime), runs commands in their own process
//! groups with a clean environment, closed stdin, a timeout and capped
//! output (`command`, `output`), and serves the length-prefixed JSON
//! protocol of `types::protocol::shell` over a Unix socket or, with the
//! `vsock` feature, vsock (`server`, `connection`). It knows nothing about
//! agents, models, tools or the shell policy: the caller (`tools::shell` in
//! `oxydra-vm`) has already decided that a command may run; the daemon's
//! job is to contain it.
//!
//! The client side lives in `tools::shell` (a core crate), which must never
//! depend on this application crate.

pub mod command;
pub mod config;
mod connection;
pub mod error;
pub mod output;
pub mod server;
pub mod session;

pub use config::DaemonConfig;
pub use error::ShellDaemonError;
pub use server::{Acceptor, BoundSocket, bind_socket, serve};
#[cfg(feature = "vsock")]
pub use server::{BoundVsock, bind_vsock};
pub use session::SessionManager;

pub use types::protocol::shell::SHELL_DAEMON_READY_PREFIX as READY_PREFIX;
/// The environment variable holding the log filter (`tracing` syntax).
pub const LOG_ENV: &str = "OXYDRA_LOG";
