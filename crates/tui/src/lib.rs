//! `oxydra-tui`, the interactive terminal client of the gateway: a
//! transcript with streamed answers and tool activity, a multi-line prompt
//! with history, a status bar, approval prompts, cancellation and
//! automatic reconnection (through `channels::GatewayClient`).
//!
//! `state` is the whole UI as plain data with an update function, `render`
//! draws it with ratatui, `channel` is the terminal as a `Channel` adapter,
//! and `app` wires terminal and gateway together through
//! `channels::bridge`. The TUI is one client among many: it must never
//! reach the runtime or the gateway's internals, only the WebSocket
//! protocol.

pub mod app;
pub mod channel;
pub mod cli;
pub mod input;
pub mod render;
pub mod state;

pub use channel::TuiChannel;
pub use cli::Args;
pub use state::{Command, TuiUiState, UiEvent};
