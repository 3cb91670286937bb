//! Oxydra's core tools and the registry pipeline.
//!
//! Every call goes through `ToolRegistry::execute_with_policy`: lookup →
//! argument validation → security policy → safety gate → timeout → execute
//! → truncate → scrub. Tools run inside the limits `sandbox` defines; this
//! crate never decides on its own what a path or command may touch.

pub mod file;
pub mod memory;
pub mod registry;
pub mod send_file;
pub mod settings;
pub mod shell;
pub mod vault;
pub mod web;

pub use registry::{
    ApprovalDecision, ApprovalGate, ApprovalRequest, ArgumentPolicy, RegistryError, StaticApproval,
    ToolRegistry, failure_message,
};
