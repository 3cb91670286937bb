//! Runner configuration: the operator-owned `runner.toml`
//! (`RunnerGlobalConfig`) and each user's file (`RunnerUserConfig`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::channels_config::{
    ChannelsConfig, TELEGRAM_API_BASE_URL, TelegramAllowlists, TelegramConfig,
};
use crate::error::RunnerConfigError;
use crate::ids::UserId;

/// How strongly a user's guests are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxTier {
    /// A KVM microVM (Firecracker or QEMU `microvm`). Strongest.
    MicroVm,
    /// An OCI container through the Docker Engine API.
    Container,
    /// A host child process with best-effort hardening. Development only.
    Process,
}

impl fmt::Display for SandboxTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MicroVm => "micro_vm",
            Self::Container => "container",
            Self::Process => "process",
        })
    }
}

/// Where a user's own configuration lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRegistration {
    /// Path of the user's `RunnerUserConfig` file, relative to `runner.toml`.
    pub config_path: PathBuf,
}

/// The image `scripts/build-guest-images` tags for the `oxydra-vm` guest.
pub const DEFAULT_OXYDRA_VM_IMAGE: &str = "oxydra-vm:local";
/// The image `scripts/build-guest-images` tags for the shell sidecar.
pub const DEFAULT_SHELL_VM_IMAGE: &str = "oxydra-shell-vm:local";

/// Guest images for the container and microVM tiers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestImages {
    /// OCI image reference of the `oxydra-vm` guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oxydra_vm: Option<String>,
    /// OCI image reference of the `shell-vm` guest (shell-daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_vm: Option<String>,
    /// Firecracker configuration of the `oxydra-vm` microVM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firecracker_oxydra_vm_config: Option<PathBuf>,
    /// Firecracker configuration of the `shell-vm` microVM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firecracker_shell_vm_config: Option<PathBuf>,
}

impl GuestImages {
    /// The `oxydra-vm` image: configured, else [`DEFAULT_OXYDRA_VM_IMAGE`].
    pub fn oxydra_vm_image(&self) -> &str {
        self.oxydra_vm.as_deref().unwrap_or(DEFAULT_OXYDRA_VM_IMAGE)
    }

    /// The `shell-vm` image: configured, else [`DEFAULT_SHELL_VM_IMAGE`].
    pub fn shell_vm_image(&self) -> &str {
        self.shell_vm.as_deref().unwrap_or(DEFAULT_SHELL_VM_IMAGE)
    }
}

/// The operator's `runner.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerGlobalConfig {
    /// Per-user workspaces live at `<workspace_root>/<user_id>/`.
    pub workspace_root: PathBuf,
    #[serde(default)]
    pub users: BTreeMap<UserId, UserRegistration>,
    #[serde(default = "default_tier")]
    pub default_tier: SandboxTier,
    #[serde(default)]
    pub guest_images: GuestImages,
}

fn default_tier() -> SandboxTier {
    SandboxTier::Container
}

/// Host paths replacing a user's default `shared`/`tmp`/`vault` directories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<PathBuf>,
}

/// Resource limits for a user's guests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

/// The network a user's shell sidecar container gets (container tier).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShellNetwork {
    /// No network at all: only the loopback interface.
    #[default]
    None,
    /// The engine's default bridge network (outbound access, no host
    /// loopback).
    Bridge,
}

/// Network settings of a user's guests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// The shell sidecar's network; `none` unless the user needs commands
    /// such as `curl` or `git clone` to reach the network.
    #[serde(default)]
    pub shell: ShellNetwork,
}

/// Where the runner finds a credential's value. The value itself is never
/// written in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialRef {
    /// An environment variable of the runner's process.
    Env(String),
    /// A file whose (trimmed) contents are the secret.
    File(PathBuf),
}

/// Per-user behaviour overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserOverrides {
    /// A tier for this user instead of the runner's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<SandboxTier>,
    /// Tools that must not be registered for this user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_tools: Vec<String>,
}

/// One user's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerUserConfig {
    #[serde(default)]
    pub mounts: MountOverrides,
    #[serde(default)]
    pub resources: ResourceLimits,
    #[serde(default)]
    pub network: NetworkSettings,
    /// Credentials handed to the guest, by the name the guest looks up
    /// (e.g. `OPENAI_API_KEY`).
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialRef>,
    #[serde(default)]
    pub overrides: UserOverrides,
    /// Chat platforms the runner connects to this user's agent.
    #[serde(default)]
    pub channels: ChannelsConfig,
}

fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, RunnerConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunnerConfigError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| RunnerConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn known_users(users: &BTreeMap<UserId, UserRegistration>) -> String {
    users
        .keys()
        .map(UserId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl RunnerGlobalConfig {
    /// Reads and validates `runner.toml`. Relative paths inside it are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, RunnerConfigError> {
        let mut config: Self = load_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.workspace_root = base.join(&config.workspace_root);
        for registration in config.users.values_mut() {
            registration.config_path = base.join(&registration.config_path);
        }
        if config.users.is_empty() {
            return Err(RunnerConfigError::NoUsers {
                path: path.to_owned(),
            });
        }
        Ok(config)
    }

    /// The user to run: the one asked for, or the only one configured.
    pub fn select_user(&self, requested: Option<&str>) -> Result<&UserId, RunnerConfigError> {
        match requested {
            Some(name) => self
                .users
                .keys()
                .find(|id| id.as_str() == name)
                .ok_or_else(|| RunnerConfigError::UnknownUser {
                    user: name.to_owned(),
                    known: known_users(&self.users),
                }),
            None => {
                let mut users = self.users.keys();
                match (users.next(), users.next()) {
                    (Some(only), None) => Ok(only),
                    (Some(_), Some(_)) => Err(RunnerConfigError::AmbiguousUser {
                        known: known_users(&self.users),
                    }),
                    (None, _) => Err(RunnerConfigError::Invalid(
                        "no users are configured".to_owned(),
                    )),
                }
            }
        }
    }

    /// `<workspace_root>/<user_id>`.
    pub fn user_workspace(&self, user: &UserId) -> PathBuf {
        self.workspace_root.join(user.as_str())
    }
}

impl RunnerUserConfig {
    /// Reads the file and checks its `[channels]` tables.
    pub fn load(path: &Path) -> Result<Self, RunnerConfigError> {
        let config: Self = load_toml(path)?;
        if let Some(telegram) = &config.channels.telegram {
            telegram
                .validate()
                .map_err(|message| RunnerConfigError::Parse {
                    path: path.to_owned(),
                    message,
                })?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_runner_config_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "runner.toml",
            r#"
workspace_root = "workspaces"
default_tier = "process"
[users.alice]
config_path = "users/alice.toml"
[guest_images]
oxydra_vm = "oxydra-vm:local"
"#,
        );
        let config = RunnerGlobalConfig::load(&path).unwrap();
        assert_eq!(config.workspace_root, dir.path().join("workspaces"));
        assert_eq!(config.default_tier, SandboxTier::Process);
        let alice = config.select_user(None).unwrap().clone();
        assert_eq!(alice.as_str(), "alice");
        assert_eq!(
            config.users[&alice].config_path,
            dir.path().join("users/alice.toml")
        );
        assert_eq!(
            config.user_workspace(&alice),
            dir.path().join("workspaces/alice")
        );
    }

    #[test]
    fn user_selection_errors_are_specific() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "runner.toml",
            "workspace_root = \"w\"\n[users.alice]\nconfig_path = \"a.toml\"\n[users.bob]\nconfig_path = \"b.toml\"\n",
        );
        let config = RunnerGlobalConfig::load(&path).unwrap();
        assert_eq!(
            config.select_user(None).unwrap_err().to_string(),
            "several users are configured (alice, bob); choose one with --user"
        );
        assert_eq!(
            config.select_user(Some("carol")).unwrap_err().to_string(),
            "user 'carol' is not configured; configured users: alice, bob"
        );
        assert_eq!(config.select_user(Some("bob")).unwrap().as_str(), "bob");
    }

    #[test]
    fn runner_config_rejects_unknown_keys_unsafe_users_and_no_users() {
        let dir = tempfile::tempdir().unwrap();
        let typo = write(dir.path(), "typo.toml", "workspace_rot = \"w\"\n");
        let err = RunnerGlobalConfig::load(&typo).unwrap_err().to_string();
        assert!(
            err.contains("typo.toml") && err.contains("workspace_rot"),
            "{err}"
        );

        let unsafe_user = write(
            dir.path(),
            "unsafe.toml",
            "workspace_root = \"w\"\n[users.\"../root\"]\nconfig_path = \"x\"\n",
        );
        let err = RunnerGlobalConfig::load(&unsafe_user)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid user id"), "{err}");

        let empty = write(dir.path(), "empty.toml", "workspace_root = \"w\"\n");
        let err = RunnerGlobalConfig::load(&empty).unwrap_err();
        assert!(matches!(err, RunnerConfigError::NoUsers { .. }), "{err}");

        let missing = RunnerGlobalConfig::load(&dir.path().join("absent.toml")).unwrap_err();
        assert!(
            matches!(missing, RunnerConfigError::Read { .. }),
            "{missing}"
        );
    }

    #[test]
    fn user_config_round_trips_and_keeps_credentials_as_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "alice.toml",
            r#"
[mounts]
shared = "/data/alice"
[resources]
cpus = 1.5
memory_mib = 512
pids = 256
[credentials]
OPENAI_API_KEY = { env = "ALICE_OPENAI_KEY" }
ANTHROPIC_API_KEY = { file = "/run/secrets/anthropic" }
[overrides]
tier = "container"
disabled_tools = ["web_search"]
"#,
        );
        let config = RunnerUserConfig::load(&path).unwrap();
        assert_eq!(config.resources.memory_mib, Some(512));
        assert_eq!(
            config.credentials["OPENAI_API_KEY"],
            CredentialRef::Env("ALICE_OPENAI_KEY".into())
        );
        assert_eq!(config.overrides.tier, Some(SandboxTier::Container));
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<RunnerUserConfig>(&text).unwrap(), config);
    }

    #[test]
    fn tier_names() {
        for (tier, name) in [
            (SandboxTier::MicroVm, "micro_vm"),
            (SandboxTier::Container, "container"),
            (SandboxTier::Process, "process"),
        ] {
            assert_eq!(serde_json::to_string(&tier).unwrap(), format!("\"{name}\""));
            assert_eq!(tier.to_string(), name);
        }
    }
}
