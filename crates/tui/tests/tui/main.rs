//! oxydra-tui: the state machine without a terminal, rendering with
//! ratatui's `TestBackend`, and the real binary inside tmux against a
//! scripted gateway on 127.0.0.1.

mod channel;
mod e2e;
mod render;
mod server;
mod state;
