//! Integration tests of the `shell-daemon` binary over a real Unix socket
//! (and vsock with the `vsock` feature), and of `shell_exec` in Session
//! mode through the tool registry to it.

mod protocol;
mod shell_exec;
mod support;
#[cfg(feature = "vsock")]
mod vsock;
