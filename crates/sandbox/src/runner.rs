//! Runners execute file operations with the capabilities of a profile.
//! `HostFileRunner` applies the path policy and runs the operations with
//! `std::fs` on the host; the WASM runner (same trait) runs them inside
//! wasmtime with only the allowed mounts preopened.

use std::fmt;
use std::path::PathBuf;

use types::protocol::file_ops::{Access, FileErrorKind, FileRequest, FileResponse};
use wasm_guest::{OpError, PathMap, VirtualPath};

use crate::profile::CapabilityProfile;
use crate::workspace::Workspace;

/// Executes file operations. Blocking: call from `spawn_blocking`.
pub trait FileRunner: Send + Sync + fmt::Debug {
    /// Runs `request` with the capabilities of `profile`. Every failure,
    /// including a refused path, is a `FileResponse::Error`.
    fn run(&self, profile: CapabilityProfile, request: &FileRequest) -> FileResponse;
}

/// Runs operations on the host, behind the path policy.
///
/// Weaker than the WASM runner: the policy check and the operation are two
/// steps, so a concurrent change to the workspace (swapping a directory for
/// a symlink between them) could redirect the operation. Use it only where
/// WASM isolation is not built (`--no-default-features`) or in tests.
#[derive(Debug, Clone)]
pub struct HostFileRunner {
    workspace: Workspace,
}

impl HostFileRunner {
    pub fn new(workspace: Workspace) -> Self {
        Self { workspace }
    }
}

/// The path policy as a `PathMap` for one invocation.
struct CheckedMap<'a> {
    workspace: &'a Workspace,
    profile: CapabilityProfile,
}

impl PathMap for CheckedMap<'_> {
    fn open_path(&self, path: &VirtualPath, access: Access) -> Result<PathBuf, OpError> {
        self.workspace
            .resolve(self.profile, path, access)
            .map_err(|violation| {
                OpError::new(FileErrorKind::PermissionDenied, violation.to_string())
            })
    }
}

impl FileRunner for HostFileRunner {
    fn run(&self, profile: CapabilityProfile, request: &FileRequest) -> FileResponse {
        let map = CheckedMap {
            workspace: &self.workspace,
            profile,
        };
        wasm_guest::execute(request, &map)
    }
}
