//! A user's workspace on the host and the path policy over it.
//!
//! A workspace path (`/shared/notes.md`) is first normalised lexically
//! (`wasm_guest::VirtualPath`: `..` may not climb above its mount), then
//! mapped into the workspace and canonicalised — every symlink on the way
//! resolved — and only then checked: the real location must lie inside a
//! mount the invocation's capability profile allows, with the access it
//! needs. So a link in `/shared` that points at the vault, or out of the
//! workspace, is judged by where it really leads.
//!
//! This check runs on the host and can race with concurrent changes to the
//! directories (check-then-use); the WASM runner removes that window by
//! preopening only the allowed mounts. The check stays in front of it as a
//! fast first line of defence with clear messages.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;
use types::protocol::file_ops::{Access, Mount};
use wasm_guest::VirtualPath;

use crate::profile::{CapabilityProfile, MountAccess};

/// Why a path was refused. The texts are for the model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathViolation {
    #[error("{path} cannot be used by this tool: it may only use {allowed}")]
    MountNotAllowed { path: String, allowed: String },
    #[error(
        "{path} resolves to a location outside the workspace mounts this tool may use ({allowed})"
    )]
    OutsideAllowedRoots { path: String, allowed: String },
    #[error("{path} is read-only for this tool")]
    ReadOnly { path: String },
    #[error("{path} is a symbolic link whose target does not exist")]
    DanglingLink { path: String },
    #[error("{path} could not be checked: {message}")]
    Io { path: String, message: String },
}

/// The host directories behind `/shared`, `/tmp` and `/vault`, canonical.
#[derive(Debug, Clone)]
pub struct Workspace {
    shared: PathBuf,
    tmp: PathBuf,
    vault: PathBuf,
}

impl Workspace {
    /// The workspace at `root` (`<root>/shared`, `<root>/tmp`,
    /// `<root>/vault`), creating missing directories; the vault is made
    /// readable by its owner only.
    pub fn open(root: &Path) -> io::Result<Self> {
        let dir = |mount: Mount| -> io::Result<PathBuf> {
            let path = root.join(mount.name());
            fs::create_dir_all(&path)?;
            if mount == Mount::Vault {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
            }
            fs::canonicalize(&path)
        };
        Ok(Self {
            shared: dir(Mount::Shared)?,
            tmp: dir(Mount::Tmp)?,
            vault: dir(Mount::Vault)?,
        })
    }

    /// The host directory of `mount`.
    pub fn mount_dir(&self, mount: Mount) -> &Path {
        match mount {
            Mount::Shared => &self.shared,
            Mount::Tmp => &self.tmp,
            Mount::Vault => &self.vault,
        }
    }

    /// The mount whose directory contains `real` (a canonical path).
    fn mount_of(&self, real: &Path) -> Option<Mount> {
        Mount::ALL
            .into_iter()
            .find(|mount| real.starts_with(self.mount_dir(*mount)))
    }

    /// Resolves `path` for `access` under `profile`: the canonical host
    /// path, or why it is refused.
    pub fn resolve(
        &self,
        profile: CapabilityProfile,
        path: &VirtualPath,
        access: Access,
    ) -> Result<PathBuf, PathViolation> {
        let shown = path.to_string();
        let allowed = profile.mount_list();
        if profile.access_to(path.mount).is_none() {
            return Err(PathViolation::MountNotAllowed {
                path: shown,
                allowed,
            });
        }
        let mut candidate = self.mount_dir(path.mount).to_path_buf();
        candidate.extend(&path.components);
        let real = canonicalize_existing(&candidate).map_err(|e| match e {
            CanonicalError::Dangling => PathViolation::DanglingLink {
                path: shown.clone(),
            },
            CanonicalError::Io(error) => PathViolation::Io {
                path: shown.clone(),
                message: error.to_string(),
            },
        })?;
        let Some(mount) = self.mount_of(&real) else {
            return Err(PathViolation::OutsideAllowedRoots {
                path: shown,
                allowed,
            });
        };
        match (profile.access_to(mount), access) {
            (None, _) => Err(PathViolation::OutsideAllowedRoots {
                path: shown,
                allowed,
            }),
            (Some(MountAccess::ReadOnly), Access::Write) => {
                Err(PathViolation::ReadOnly { path: shown })
            }
            (Some(_), _) => Ok(real),
        }
    }
}

enum CanonicalError {
    Dangling,
    Io(io::Error),
}

/// Canonicalises the longest existing prefix of `path` (resolving every
/// symlink in it) and appends the rest, which does not exist yet and so
/// contains no links. `path` has no `..` components (normalised before).
fn canonicalize_existing(path: &Path) -> Result<PathBuf, CanonicalError> {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        match fs::symlink_metadata(existing) {
            Ok(metadata) => {
                let real = fs::canonicalize(existing).map_err(|error| {
                    if metadata.file_type().is_symlink() && error.kind() == io::ErrorKind::NotFound
                    {
                        CanonicalError::Dangling
                    } else {
                        CanonicalError::Io(error)
                    }
                })?;
                let mut real = real;
                real.extend(missing.iter().rev());
                return Ok(real);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let (Some(parent), Some(Component::Normal(name))) =
                    (existing.parent(), existing.components().next_back())
                else {
                    return Err(CanonicalError::Io(error));
                };
                missing.push(name.to_owned());
                existing = parent;
            }
            Err(error) => return Err(CanonicalError::Io(error)),
        }
    }
}
