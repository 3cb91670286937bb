//! `GatewayError`: what the gateway's library surface can fail with.
//! Problems with a client's frames never become a `GatewayError`; they are
//! answered with an `Error` frame and the connection lives on.

use std::path::PathBuf;

use thiserror::Error;
use types::RuntimeError;

/// Failures of starting, running or using the gateway.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// `Gateway::start` could not bind. Retrying helps only once the
    /// address is free.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The accept loop failed. Fatal for this gateway; start a new one.
    #[error("the gateway server stopped with an error: {0}")]
    Serve(std::io::Error),
    /// `Gateway::new` was given limits that cannot work (a zero capacity,
    /// an empty token). Fix the configuration; never retried.
    #[error("invalid gateway configuration: {0}")]
    InvalidConfig(String),
    /// A `SessionDirectory` could not read or record sessions. Returned by
    /// directory implementations; usually retriable (storage busy).
    #[error("the session directory failed: {0}")]
    Directory(String),
    /// Writing or removing the endpoint file failed; `path` names it.
    /// Check the workspace's `tmp/` directory and its permissions.
    #[error("endpoint file {path}: {source}")]
    EndpointFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The background lane is full (`submit_background`). Retry later.
    #[error("the background lane is full ({depth} runs waiting); try again later")]
    BackgroundBusy { depth: usize },
    /// The gateway is stopping or stopped; nothing new is accepted.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// A background turn ended without an answer (cancelled, budget, …).
    #[error(transparent)]
    Turn(#[from] RuntimeError),
}

impl GatewayError {
    /// Whether trying the same thing again later can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Directory(_) | Self::BackgroundBusy { .. } => true,
            Self::Turn(error) => !error.is_fatal(),
            Self::Bind { .. }
            | Self::Serve(_)
            | Self::InvalidConfig(_)
            | Self::EndpointFile { .. }
            | Self::ShuttingDown => false,
        }
    }
}
