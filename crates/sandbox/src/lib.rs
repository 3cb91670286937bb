//! Oxydra's security boundary. Everything that decides what an agent may
//! touch lives here: capability profiles and the path policy (which host
//! directories a tool invocation may read or write), the shell policy,
//! credential scrubbing of tool output, and the runners that execute file
//! operations inside those limits.
//!
//! It knows nothing about models, sessions or the gateway.

pub mod egress;
pub mod hardening;
pub mod profile;
pub mod runner;
pub mod scrub;
pub mod shell_policy;
#[cfg(feature = "wasm-isolation")]
pub mod wasm;
pub mod workspace;

pub use profile::{CapabilityProfile, MountAccess};
pub use runner::{FileRunner, HostFileRunner};
pub use workspace::{PathViolation, Workspace};

#[cfg(not(feature = "wasm-isolation"))]
pub use std::convert::Infallible as FileRunnerError;
#[cfg(feature = "wasm-isolation")]
pub use wasm::{
    LazyWasmRunner, WasmError as FileRunnerError, WasmRunnerConfig, WasmWasiToolRunner,
};

/// The file runner tools use by default: the WASM runner when the
/// `wasm-isolation` feature is on (the default), otherwise the weaker host
/// runner. Fails only when the WASM sandbox cannot be set up.
pub fn default_file_runner(
    workspace: Workspace,
) -> Result<std::sync::Arc<dyn FileRunner>, FileRunnerError> {
    #[cfg(feature = "wasm-isolation")]
    let runner = WasmWasiToolRunner::new(workspace)?;
    #[cfg(not(feature = "wasm-isolation"))]
    let runner = HostFileRunner::new(workspace);
    Ok(std::sync::Arc::new(runner))
}
