//! Oxydra's security boundary. Everything that decides what an agent may
//! touch lives here: capability profiles and the path policy (which host
//! directories a tool invocation may read or write), the shell policy,
//! credential scrubbing of tool output, and the runners that execute file
//! operations inside those limits.
//!
//! It knows nothing about models, sessions or the gateway.

pub mod profile;
pub mod runner;
pub mod scrub;
pub mod shell_policy;
pub mod workspace;

pub use profile::{CapabilityProfile, MountAccess};
pub use runner::{FileRunner, HostFileRunner};
pub use workspace::{PathViolation, Workspace};
