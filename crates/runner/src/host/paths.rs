//! Where the runner and one user's guest keep their files, and the
//! provisioning of those directories.
//!
//! The runner's own files (control socket, logs) live under
//! `<workspace_root>/.runner/`, never inside a user's workspace, which the
//! guest can write. (`.runner` can never be a user id: ids may not start
//! with a dot.)

use std::fs::{self, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use types::UserId;
use types::protocol::gateway::GatewayEndpoint;

use super::HostError;

/// The runner's directory under the workspace root.
pub const RUNNER_DIR: &str = ".runner";
/// The mounts every workspace has.
pub const WORKSPACE_DIRS: [&str; 3] = ["shared", "tmp", "vault"];

/// Every path the runner uses for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerPaths {
    /// `<workspace_root>/<user>`: what the guest may write.
    pub user_workspace: PathBuf,
    /// `<workspace_root>/.runner`.
    pub runner_dir: PathBuf,
    /// `<workspace_root>/.runner/<user>.sock`.
    pub control_socket: PathBuf,
    /// `<workspace_root>/.runner/logs/<user>.log`.
    pub log_file: PathBuf,
    /// `<workspace_root>/<user>/tmp/gateway-endpoint`, written by the guest.
    pub endpoint_file: PathBuf,
    /// `<workspace_root>/.runner/audit/<user>.jsonl`: the runner's side of
    /// the audit log.
    pub audit_file: PathBuf,
}

impl RunnerPaths {
    pub fn new(workspace_root: &Path, user: &UserId) -> Self {
        let user_workspace = workspace_root.join(user.as_str());
        let runner_dir = workspace_root.join(RUNNER_DIR);
        Self {
            endpoint_file: user_workspace.join("tmp").join(GatewayEndpoint::FILE_NAME),
            control_socket: runner_dir.join(format!("{}.sock", user.as_str())),
            log_file: runner_dir
                .join("logs")
                .join(format!("{}.log", user.as_str())),
            audit_file: runner_dir
                .join("audit")
                .join(format!("{}.jsonl", user.as_str())),
            user_workspace,
            runner_dir,
        }
    }

    /// The guest's per-user cache (`XDG_CACHE_HOME`: compiled WASM modules).
    pub fn cache_dir(&self) -> PathBuf {
        self.user_workspace.join(".cache")
    }

    /// The guest's scratch directory (`TMPDIR`).
    pub fn tmp_dir(&self) -> PathBuf {
        self.user_workspace.join("tmp")
    }

    /// `<user>/tmp/bootstrap`: the container tier's envelope is written
    /// here and mounted read-only into the `oxydra-vm` container.
    pub fn bootstrap_dir(&self) -> PathBuf {
        self.tmp_dir().join("bootstrap")
    }

    /// `<user>/ipc`: holds the shell daemon's socket, the one directory the
    /// `oxydra-vm` and `shell-vm` containers share besides `shared`.
    pub fn ipc_dir(&self) -> PathBuf {
        self.user_workspace.join("ipc")
    }

    /// Creates `<user>/{shared,tmp,vault,.cache}` (vault 0700) and
    /// `.runner/logs` (`.runner` 0700: it holds the control socket).
    /// Existing directories are kept; the modes are enforced every time.
    pub fn provision(&self) -> Result<(), HostError> {
        for name in WORKSPACE_DIRS {
            create_dir(&self.user_workspace.join(name))?;
        }
        create_dir(&self.cache_dir())?;
        set_mode(&self.user_workspace.join("vault"), 0o700)?;
        let logs = self
            .log_file
            .parent()
            .map_or_else(|| self.runner_dir.join("logs"), Path::to_owned);
        create_dir(&logs)?;
        set_mode(&self.runner_dir, 0o700)
    }
}

impl RunnerPaths {
    /// The container tier's extra directories (`ipc`, `tmp/bootstrap`),
    /// and, when `owner` is given (the runner runs as root and the guests
    /// as an unprivileged id), the whole workspace handed to that owner so
    /// the guests can write it. Entries owned already are left alone.
    pub fn provision_for_containers(&self, owner: Option<(u32, u32)>) -> Result<(), HostError> {
        create_dir(&self.ipc_dir())?;
        create_dir(&self.bootstrap_dir())?;
        set_mode(&self.bootstrap_dir(), 0o700)?;
        if let Some((uid, gid)) = owner {
            chown_tree(&self.user_workspace, uid, gid)?;
        }
        Ok(())
    }
}

/// `lchown -R`: symlinks are re-owned, never followed.
fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), HostError> {
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta =
            fs::symlink_metadata(&path).map_err(|e| HostError::io("cannot inspect", &path, e))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| HostError::io("cannot hand to the guest user", &path, e))?;
        }
        if meta.is_dir() {
            let entries =
                fs::read_dir(&path).map_err(|e| HostError::io("cannot list", &path, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| HostError::io("cannot list", &path, e))?;
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), HostError> {
    fs::create_dir_all(path).map_err(|e| HostError::io("cannot create directory", path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), HostError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| HostError::io("cannot set the permissions of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_contract() {
        let paths = RunnerPaths::new(Path::new("/w"), &UserId::parse("alice").unwrap());
        assert_eq!(paths.user_workspace, Path::new("/w/alice"));
        assert_eq!(paths.control_socket, Path::new("/w/.runner/alice.sock"));
        assert_eq!(paths.log_file, Path::new("/w/.runner/logs/alice.log"));
        assert_eq!(
            paths.endpoint_file,
            Path::new("/w/alice/tmp/gateway-endpoint")
        );
        assert_eq!(paths.cache_dir(), Path::new("/w/alice/.cache"));
        assert_eq!(paths.bootstrap_dir(), Path::new("/w/alice/tmp/bootstrap"));
        assert_eq!(paths.ipc_dir(), Path::new("/w/alice/ipc"));
    }

    #[test]
    fn provisioning_creates_the_mounts_with_private_vault() {
        let root = tempfile::tempdir().unwrap();
        let paths = RunnerPaths::new(root.path(), &UserId::parse("bob").unwrap());
        paths.provision().unwrap();
        // A second run keeps what exists and re-applies the modes.
        fs::set_permissions(
            paths.user_workspace.join("vault"),
            Permissions::from_mode(0o755),
        )
        .unwrap();
        paths.provision().unwrap();
        for name in WORKSPACE_DIRS {
            assert!(paths.user_workspace.join(name).is_dir(), "{name}");
        }
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.user_workspace.join("vault")), 0o700);
        assert_eq!(mode(&paths.runner_dir), 0o700);
        assert!(paths.log_file.parent().unwrap().is_dir());
    }
}
