//! The channel layer: `ChannelRegistry` (channel adapters by id) with
//! `collect_channel_health`, and `GatewayClient`, the WebSocket client of
//! the gateway's `/ws` protocol that `oxydra-tui` (and any other remote
//! client) uses, with automatic reconnection and resume; and `bridge`, which
//! joins a channel adapter outside the gateway's process (the TUI's) to the
//! gateway through that client. Chat-platform adapters are modules behind
//! a feature each (`telegram`); the runner runs them on the host.
//!
//! This crate speaks only the wire types of `types::protocol::gateway`. It
//! must never know about the gateway's internals, the runtime, or any
//! terminal: adapters route everything through the gateway.

mod bridge;
mod client;
mod endpoint;
mod error;
mod registry;
#[cfg(feature = "telegram")]
pub mod telegram;

pub use bridge::{LinkEvent, LinkedChannel, bridge, client_frame};
pub use client::{
    ClientEvent, ClientEvents, ConnectionState, GatewayClient, GatewayClientConfig, ReconnectPolicy,
};
pub use endpoint::{EndpointSource, endpoint_file_in, read_endpoint_file};
pub use error::ChannelsError;
pub use registry::{ChannelRegistry, collect_channel_health};
