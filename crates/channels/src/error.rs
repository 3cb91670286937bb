//! `ChannelsError`: everything the channel registry and the gateway client
//! can fail with.

use std::path::PathBuf;

use thiserror::Error;
use types::error::ChannelError;

/// Failures of the registry and of the gateway WebSocket client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelsError {
    /// `ChannelRegistry::register` with an id that is already taken. Not
    /// retriable: remove the old adapter first or pick another id.
    #[error("a channel with id '{id}' is already registered")]
    DuplicateChannel { id: String },
    /// The endpoint file does not exist, which means the guest (and its
    /// gateway) is not running. Retriable once the guest has been started.
    #[error("no gateway endpoint file at {}: the guest is not running", .path.display())]
    EndpointMissing { path: PathBuf },
    /// The endpoint file exists but could not be read (permissions, IO).
    /// Not retriable without fixing the file.
    #[error("cannot read the gateway endpoint file {}: {message}", .path.display())]
    EndpointUnreadable { path: PathBuf, message: String },
    /// The endpoint file is not the one line of JSON the guest writes
    /// (`{"url":…,"token":…}`). Not retriable: restart the guest.
    #[error("the gateway endpoint file {} is malformed: {message}", .path.display())]
    EndpointMalformed { path: PathBuf, message: String },
    /// The WebSocket connection could not be opened or broke during the
    /// handshake. Retriable: the client reconnects with backoff.
    #[error("cannot connect to the gateway at {url}: {message}")]
    Connect { url: String, message: String },
    /// The gateway refused the token. Not retriable: the token is wrong or
    /// stale (the guest was restarted; read the endpoint file again).
    #[error("the gateway refused the connection: {message}")]
    Unauthorized { message: String },
    /// The gateway answered the handshake with something other than
    /// `HelloAck` (an error frame, an unexpected frame, bad JSON).
    /// Retriable only if the server's message says so.
    #[error("gateway handshake failed: {message}")]
    Handshake { message: String },
    /// A frame was sent while the client is reconnecting. Retriable once
    /// the connection is back; nothing was sent.
    #[error("not connected to the gateway (reconnecting); nothing was sent")]
    NotConnected,
    /// The client has stopped for good (shut down, or gave up
    /// reconnecting). Not retriable on this client.
    #[error("the gateway client is closed: {reason}")]
    Closed { reason: String },
}

impl ChannelsError {
    /// Whether trying the same thing again later can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::EndpointMissing { .. } | Self::Connect { .. } | Self::NotConnected => true,
            Self::DuplicateChannel { .. }
            | Self::EndpointUnreadable { .. }
            | Self::EndpointMalformed { .. }
            | Self::Unauthorized { .. }
            | Self::Handshake { .. }
            | Self::Closed { .. } => false,
        }
    }
}

impl From<ChannelsError> for ChannelError {
    fn from(err: ChannelsError) -> Self {
        match err {
            ChannelsError::Unauthorized { message } => ChannelError::Unauthorized(message),
            ChannelsError::Closed { .. } => ChannelError::Closed,
            ChannelsError::Handshake { .. }
            | ChannelsError::EndpointMalformed { .. }
            | ChannelsError::DuplicateChannel { .. } => ChannelError::Protocol(err.to_string()),
            ChannelsError::EndpointMissing { .. }
            | ChannelsError::EndpointUnreadable { .. }
            | ChannelsError::Connect { .. }
            | ChannelsError::NotConnected => ChannelError::Transport(err.to_string()),
        }
    }
}
