//! The file operations behind Oxydra's file tools (`file_read`,
//! `file_search`, `file_list`, `file_write`, `file_edit`, `file_delete` and
//! the two vault-copy steps), written once over plain `std::fs`.
//!
//! The same code runs in two places: on the host behind the path policy
//! (`sandbox`'s host runner), and compiled for `wasm32-wasip1` inside
//! wasmtime, where only the allowed mounts are preopened. A `PathMap`
//! decides how a workspace path becomes an openable path in each.

pub mod ops;
pub mod path;

pub use ops::execute;
pub use path::{OpError, PathMap, VirtualPath};
