//! The two processes that put an agent on a machine.
//!
//! - [`host`]: `oxydra-runner`, the host supervisor. It reads `runner.toml`,
//!   provisions each user's workspace, loads the agent configuration on the
//!   host, and launches the guest with the bootstrap envelope; in daemon
//!   mode it supervises the guest behind a Unix control socket. It never
//!   runs user code, reads user data or takes part in agent turns.
//! - [`guest`]: `oxydra-vm`, the guest. It reads the envelope, validates the
//!   configuration, hardens itself, and wires provider, memory, tools,
//!   runtime and gateway together, then serves until told to stop.
//!
//! Both binaries live in this one package so the end-to-end tests can run
//! them together; `host` must never call into `guest` (the guest's heavy
//! dependencies stay out of the supervisor's code paths).

pub mod guest;
pub mod host;
