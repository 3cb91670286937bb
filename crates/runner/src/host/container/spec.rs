//! What the container tier asks the Docker Engine for: the names, mounts,
//! limits and security settings of one user's `oxydra-vm` + `shell-vm`
//! pair, as engine API bodies. Pure: building a spec touches nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use sha2::{Digest, Sha256};
use types::UserId;
use types::config::EmbeddingConfig;
use types::protocol::bootstrap::{
    BOOTSTRAP_FILE_ENV, BOOTSTRAP_FILE_NAME, CONTAINER_BOOTSTRAP_DIR,
};
use types::runner::{ResourceLimits, ShellNetwork};

/// Where the user's workspace appears inside the `oxydra-vm` container
/// (the envelope's `workspace_root`).
pub const GUEST_WORKSPACE: &str = "/workspace";
/// Where a local embedding model's directory appears, read-only, inside
/// the `oxydra-vm` container.
pub const GUEST_MODEL_DIR: &str = "/run/oxydra/model";
/// The directory holding the shell daemon's socket, in both containers.
pub const GUEST_IPC_DIR: &str = "/run/oxydra/ipc";
/// The shell daemon's socket file name inside the IPC directory.
pub const SHELL_SOCKET_NAME: &str = "shell.sock";
/// The uid and gid guests run as when the runner itself runs as root (the
/// images name it `oxydra`).
pub const GUEST_ROOTLESS_ID: u32 = 65532;
/// Label every container of ours carries: the user it belongs to.
pub const USER_LABEL: &str = "org.oxydra.user";
/// Label naming the role (`oxydra-vm` or `shell-vm`).
pub const ROLE_LABEL: &str = "org.oxydra.role";
/// Size of each container's private `/tmp` (memory-backed).
const TMPFS_OPTIONS: &str = "rw,nosuid,nodev,size=256m";

/// One user's container pair, before it exists.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSpec {
    pub user: UserId,
    pub agent_name: String,
    pub shell_name: String,
    pub agent_image: String,
    pub shell_image: String,
    /// The uid and gid both containers run as.
    pub run_as: (u32, u32),
    /// Host directory mounted at [`GUEST_WORKSPACE`] (`<root>/<user>`).
    pub workspace: PathBuf,
    /// Host directory of `shared` (the workspace's, or the user's override).
    pub shared: PathBuf,
    /// A host directory replacing the workspace's `vault`.
    pub vault_override: Option<PathBuf>,
    /// Host directory of the envelope file, mounted read-only.
    pub bootstrap_dir: PathBuf,
    /// Host directory of the shell daemon's socket.
    pub ipc_dir: PathBuf,
    pub resources: ResourceLimits,
    pub shell_network: ShellNetwork,
    /// `RUST_LOG` passed on to both guests when the runner has one.
    pub rust_log: Option<String>,
    /// Host directory of the semantic embedding model, mounted read-only
    /// at [`GUEST_MODEL_DIR`] (set by [`PairSpec::mount_model`]).
    pub model_dir: Option<PathBuf>,
}

/// `oxydra-<user>-<8 hex digits of the workspace path>`: unique per user
/// and workspace root, so two runners with different roots never clash.
pub fn container_prefix(user: &UserId, workspace: &Path) -> String {
    let digest = Sha256::digest(workspace.as_os_str().as_encoded_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("oxydra-{}-{short}", user.as_str())
}

/// The sidecar endpoint the `oxydra-vm` guest is given.
pub fn guest_shell_endpoint() -> String {
    format!("unix://{GUEST_IPC_DIR}/{SHELL_SOCKET_NAME}")
}

impl PairSpec {
    /// Makes a `semantic` embedding configuration work inside the
    /// container: its host directory (relative paths are relative to the
    /// user's workspace, as for a process-tier guest) is mounted read-only
    /// at [`GUEST_MODEL_DIR`] and the configuration names that path. The
    /// stored model name stays the host directory's, so moving between
    /// tiers never changes which vectors a query compares with.
    pub fn mount_model(&mut self, embedding: &mut EmbeddingConfig) {
        let EmbeddingConfig::Semantic {
            model_dir,
            model_name,
        } = embedding
        else {
            return;
        };
        if model_name.is_none() {
            *model_name = model_dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
        }
        self.model_dir = Some(self.workspace.join(&*model_dir));
        *model_dir = PathBuf::from(GUEST_MODEL_DIR);
    }

    /// The `oxydra-vm` container: the whole user workspace read-write, the
    /// envelope directory and the embedding model (when there is one)
    /// read-only, the IPC directory, the host's network
    /// (its gateway listens on host loopback and providers may be local;
    /// its egress is policed by the guest's egress guard).
    pub fn agent_body(&self) -> ContainerCreateBody {
        let mut mounts = vec![
            bind(&self.workspace, GUEST_WORKSPACE, false),
            bind(&self.bootstrap_dir, CONTAINER_BOOTSTRAP_DIR, true),
            bind(&self.ipc_dir, GUEST_IPC_DIR, false),
        ];
        if self.shared != self.workspace.join("shared") {
            mounts.push(bind(&self.shared, &guest_path("shared"), false));
        }
        if let Some(vault) = &self.vault_override {
            mounts.push(bind(vault, &guest_path("vault"), false));
        }
        if let Some(model) = &self.model_dir {
            mounts.push(bind(model, GUEST_MODEL_DIR, true));
        }
        let mut env = vec![
            format!("{BOOTSTRAP_FILE_ENV}={CONTAINER_BOOTSTRAP_DIR}/{BOOTSTRAP_FILE_NAME}"),
            format!("HOME={GUEST_WORKSPACE}"),
            format!("TMPDIR={}", guest_path("tmp")),
            format!("XDG_CACHE_HOME={}", guest_path(".cache")),
        ];
        env.extend(self.rust_log.iter().map(|v| format!("RUST_LOG={v}")));
        ContainerCreateBody {
            image: Some(self.agent_image.clone()),
            user: Some(self.user_spec()),
            env: Some(env),
            working_dir: Some(GUEST_WORKSPACE.to_owned()),
            labels: Some(self.labels("oxydra-vm")),
            host_config: Some(self.host_config(mounts, "host")),
            ..ContainerCreateBody::default()
        }
    }

    /// The `shell-vm` container: only `shared` and the IPC directory, no
    /// network unless the user configured one.
    pub fn shell_body(&self) -> ContainerCreateBody {
        let mounts = vec![
            bind(&self.shared, &guest_path("shared"), false),
            bind(&self.ipc_dir, GUEST_IPC_DIR, false),
        ];
        let network = match self.shell_network {
            ShellNetwork::None => "none",
            ShellNetwork::Bridge => "bridge",
        };
        let mut env = vec!["LANG=C.UTF-8".to_owned()];
        env.extend(self.rust_log.iter().map(|v| format!("RUST_LOG={v}")));
        ContainerCreateBody {
            image: Some(self.shell_image.clone()),
            user: Some(self.user_spec()),
            cmd: Some(vec![
                "--socket".to_owned(),
                format!("{GUEST_IPC_DIR}/{SHELL_SOCKET_NAME}"),
                "--working-dir".to_owned(),
                guest_path("shared"),
            ]),
            env: Some(env),
            working_dir: Some(guest_path("shared")),
            labels: Some(self.labels("shell-vm")),
            host_config: Some(self.host_config(mounts, network)),
            ..ContainerCreateBody::default()
        }
    }

    /// `uid:gid` for the engine.
    fn user_spec(&self) -> String {
        format!("{}:{}", self.run_as.0, self.run_as.1)
    }

    fn labels(&self, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (USER_LABEL.to_owned(), self.user.as_str().to_owned()),
            (ROLE_LABEL.to_owned(), role.to_owned()),
        ])
    }

    /// Read-only root, a private `/tmp`, every capability dropped, no
    /// privilege gain, an init process as PID 1 (it reaps orphaned
    /// processes and forwards signals), and the user's resource limits.
    fn host_config(&self, mounts: Vec<Mount>, network: &str) -> HostConfig {
        let limits = &self.resources;
        let memory = limits
            .memory_mib
            .and_then(|mib| i64::try_from(mib.saturating_mul(1024 * 1024)).ok());
        HostConfig {
            mounts: Some(mounts),
            network_mode: Some(network.to_owned()),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                TMPFS_OPTIONS.to_owned(),
            )])),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            init: Some(true),
            memory,
            // No swap beyond the memory limit.
            memory_swap: memory,
            // `as` saturates; CPU counts are validated positive on load.
            nano_cpus: limits.cpus.map(|cpus| (cpus * 1e9) as i64),
            pids_limit: limits.pids.and_then(|p| i64::try_from(p).ok()),
            ..HostConfig::default()
        }
    }
}

fn guest_path(name: &str) -> String {
    format!("{GUEST_WORKSPACE}/{name}")
}

fn bind(source: &Path, target: &str, read_only: bool) -> Mount {
    Mount {
        source: Some(source.display().to_string()),
        target: Some(target.to_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Mount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PairSpec {
        PairSpec {
            user: UserId::parse("alice").unwrap(),
            agent_name: "oxydra-alice-0-vm".into(),
            shell_name: "oxydra-alice-0-shell".into(),
            agent_image: "oxydra-vm:local".into(),
            shell_image: "oxydra-shell-vm:local".into(),
            run_as: (65532, 65532),
            workspace: "/w/alice".into(),
            shared: "/w/alice/shared".into(),
            vault_override: None,
            bootstrap_dir: "/w/alice/tmp/bootstrap".into(),
            ipc_dir: "/w/alice/ipc".into(),
            resources: ResourceLimits {
                cpus: Some(1.5),
                memory_mib: Some(256),
                pids: Some(128),
            },
            shell_network: ShellNetwork::None,
            rust_log: None,
            model_dir: None,
        }
    }

    fn targets(body: &ContainerCreateBody) -> Vec<(String, String, bool)> {
        let mounts = body.host_config.as_ref().unwrap().mounts.clone().unwrap();
        mounts
            .into_iter()
            .map(|m| (m.source.unwrap(), m.target.unwrap(), m.read_only.unwrap()))
            .collect()
    }

    #[test]
    fn shell_sees_only_shared_and_the_socket_directory_without_network() {
        let body = spec().shell_body();
        assert_eq!(
            targets(&body),
            [
                ("/w/alice/shared".into(), "/workspace/shared".into(), false),
                ("/w/alice/ipc".into(), "/run/oxydra/ipc".into(), false),
            ]
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.memory, Some(256 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.pids_limit, Some(128));
        assert_eq!(body.user.as_deref(), Some("65532:65532"));
    }

    #[test]
    fn agent_gets_its_workspace_and_a_read_only_envelope() {
        let mut spec = spec();
        spec.shared = "/data/alice".into();
        let body = spec.agent_body();
        assert_eq!(
            targets(&body),
            [
                ("/w/alice".into(), "/workspace".into(), false),
                (
                    "/w/alice/tmp/bootstrap".into(),
                    "/run/oxydra/bootstrap".into(),
                    true
                ),
                ("/w/alice/ipc".into(), "/run/oxydra/ipc".into(), false),
                ("/data/alice".into(), "/workspace/shared".into(), false),
            ]
        );
        let env = body.env.unwrap();
        assert!(env.contains(
            &"OXYDRA_BOOTSTRAP_FILE=/run/oxydra/bootstrap/runner_bootstrap.json".to_owned()
        ));
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("host")
        );
    }

    #[test]
    fn a_semantic_model_is_mounted_read_only_and_keeps_its_name() {
        let mut spec = spec();
        let mut lexical = EmbeddingConfig::Lexical {};
        spec.mount_model(&mut lexical);
        assert_eq!(lexical, EmbeddingConfig::Lexical {});
        assert_eq!(spec.model_dir, None);

        let mut installed = EmbeddingConfig::Semantic {
            model_dir: "/w/.models/all-MiniLM-L6-v2".into(),
            model_name: None,
        };
        spec.mount_model(&mut installed);
        assert_eq!(
            installed,
            EmbeddingConfig::Semantic {
                model_dir: GUEST_MODEL_DIR.into(),
                model_name: Some("all-MiniLM-L6-v2".into()),
            }
        );
        let mounts = targets(&spec.agent_body());
        assert_eq!(
            mounts.last().unwrap(),
            &(
                "/w/.models/all-MiniLM-L6-v2".into(),
                GUEST_MODEL_DIR.into(),
                true
            )
        );
        // The sidecar never sees it.
        assert!(
            !targets(&spec.shell_body())
                .iter()
                .any(|(_, target, _)| target == GUEST_MODEL_DIR)
        );

        // A relative directory is the workspace's, as on the process tier;
        // an explicit name is kept.
        let mut own = EmbeddingConfig::Semantic {
            model_dir: "models/bge".into(),
            model_name: Some("bge-small".into()),
        };
        spec.mount_model(&mut own);
        assert_eq!(spec.model_dir, Some(PathBuf::from("/w/alice/models/bge")));
        assert!(
            matches!(own, EmbeddingConfig::Semantic { model_name: Some(n), .. } if n == "bge-small")
        );
    }

    #[test]
    fn names_differ_per_workspace_root() {
        let alice = UserId::parse("alice").unwrap();
        let a = container_prefix(&alice, Path::new("/srv/a/alice"));
        let b = container_prefix(&alice, Path::new("/srv/b/alice"));
        assert_ne!(a, b);
        assert!(a.starts_with("oxydra-alice-") && a.len() == "oxydra-alice-".len() + 8);
    }
}
