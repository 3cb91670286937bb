//! The runner → `oxydra-vm` bootstrap envelope and the startup status it
//! carries. Delivered without environment variables so secrets stay out of
//! `/proc/*/environ`: on stdin as one length-prefixed frame (process tier),
//! or as a read-only file (container tier).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;
use crate::ids::UserId;
use crate::runner::SandboxTier;
use crate::secret::SecretString;

/// Cap on the envelope's size on stdin.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;
/// Environment variable naming the envelope file in the container tier.
pub const BOOTSTRAP_FILE_ENV: &str = "OXYDRA_BOOTSTRAP_FILE";
/// Where the envelope directory is mounted inside a container.
pub const CONTAINER_BOOTSTRAP_DIR: &str = "/run/oxydra/bootstrap";
/// The envelope's file name, under `<workspace>/tmp/bootstrap/` on the host.
pub const BOOTSTRAP_FILE_NAME: &str = "runner_bootstrap.json";

/// Everything `oxydra-vm` needs from the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerBootstrapEnvelope {
    pub user_id: UserId,
    pub sandbox_tier: SandboxTier,
    /// The user's workspace (holding `shared/`, `tmp/`, `vault/`) as the
    /// guest sees it.
    pub workspace_root: PathBuf,
    /// The shell-daemon socket, when a sidecar runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_endpoint: Option<String>,
    pub runtime_policy: RunnerRuntimePolicy,
    pub startup_status: StartupStatusReport,
    /// The merged agent configuration. The runner loads its layers (files,
    /// `OXYDRA__*` variables) on the host and the guest validates it, so
    /// every tier sees the same configuration without host paths.
    pub agent_config: AgentConfig,
    /// Resolved credential values by the name the guest looks up
    /// (`OPENAI_API_KEY`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, SecretString>,
}

/// How `shell_exec` runs, decided by the runner from the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShellMode {
    /// Through a shell-daemon session in the sidecar (production).
    Session,
    /// Directly on the host (local development, explicit opt-in).
    Host,
    /// No safe environment: the tool is not registered.
    Disabled,
}

/// What happens to a `Privileged` tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Ask the human through the gateway; no answer in time means denied.
    #[default]
    Ask,
    /// Run without asking.
    Allow,
    /// Refuse every privileged call.
    Deny,
}

/// Outbound network policy of the web tools.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum EgressPolicy {
    /// Block internal addresses, allow the public internet.
    #[default]
    DefaultSafe,
    /// Only the listed domains, through a mandatory proxy.
    StrictAllowlistProxy {
        allowed_domains: Vec<String>,
        proxy_url: String,
    },
}

/// The runner's policy decisions for the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerRuntimePolicy {
    pub shell_mode: ShellMode,
    #[serde(default)]
    pub approval: ApprovalPolicy,
    #[serde(default)]
    pub egress: EgressPolicy,
    /// Tools that must not be registered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_tools: Vec<String>,
}

/// Which backends are actually available; tools whose backend is missing
/// are not registered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StartupStatusReport {
    pub sidecar_available: bool,
    pub shell_available: bool,
    pub browser_available: bool,
    #[serde(default)]
    pub degraded_reasons: Vec<StartupDegradedReason>,
}

/// Why the guest runs with less than full isolation or capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum StartupDegradedReason {
    InsecureProcessTier,
    SidecarUnavailable,
    SidecarConnectionFailed(String),
    ShellDaemonUnresponsive,
    BrowserPoolUnavailable,
}

impl std::fmt::Display for StartupDegradedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InsecureProcessTier => {
                f.write_str("insecure process tier: no VM or container isolation")
            }
            Self::SidecarUnavailable => f.write_str("shell sidecar unavailable"),
            Self::SidecarConnectionFailed(why) => {
                write!(f, "shell sidecar connection failed: {why}")
            }
            Self::ShellDaemonUnresponsive => f.write_str("shell daemon unresponsive"),
            Self::BrowserPoolUnavailable => f.write_str("browser pool unavailable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::{encode_json_frame, read_json_frame};
    use crate::test_support::round_trip;
    use serde_json::json;

    fn envelope() -> RunnerBootstrapEnvelope {
        RunnerBootstrapEnvelope {
            user_id: UserId::parse("alice").unwrap(),
            sandbox_tier: SandboxTier::Process,
            workspace_root: "/work/alice".into(),
            sidecar_endpoint: Some("unix:///work/alice/tmp/shell.sock".into()),
            runtime_policy: RunnerRuntimePolicy {
                shell_mode: ShellMode::Disabled,
                approval: ApprovalPolicy::Ask,
                egress: EgressPolicy::StrictAllowlistProxy {
                    allowed_domains: vec!["docs.rs".into()],
                    proxy_url: "http://127.0.0.1:3128".into(),
                },
                disabled_tools: vec!["web_search".into()],
            },
            startup_status: StartupStatusReport {
                sidecar_available: false,
                shell_available: false,
                browser_available: false,
                degraded_reasons: vec![
                    StartupDegradedReason::InsecureProcessTier,
                    StartupDegradedReason::SidecarConnectionFailed("refused".into()),
                ],
            },
            agent_config: AgentConfig::default(),
            credentials: BTreeMap::from([("OPENAI_API_KEY".into(), "sk-test".into())]),
        }
    }

    #[test]
    fn envelope_round_trips_through_a_frame() {
        let frame = encode_json_frame(&envelope(), MAX_ENVELOPE_BYTES).unwrap();
        let back: RunnerBootstrapEnvelope =
            read_json_frame(&mut frame.as_slice(), MAX_ENVELOPE_BYTES).unwrap();
        assert_eq!(back, envelope());
        round_trip(&envelope());
    }

    #[test]
    fn envelope_debug_masks_credentials() {
        let debug = format!("{:?}", envelope());
        assert!(!debug.contains("sk-test"), "{debug}");
    }

    #[test]
    fn degraded_reasons_wire_shape() {
        assert_eq!(
            serde_json::to_value(StartupDegradedReason::SidecarConnectionFailed("x".into()))
                .unwrap(),
            json!({"reason": "sidecar_connection_failed", "detail": "x"})
        );
        assert_eq!(
            serde_json::to_value(StartupDegradedReason::InsecureProcessTier).unwrap(),
            json!({"reason": "insecure_process_tier"})
        );
        for reason in [
            StartupDegradedReason::SidecarUnavailable,
            StartupDegradedReason::ShellDaemonUnresponsive,
            StartupDegradedReason::BrowserPoolUnavailable,
        ] {
            round_trip(&reason);
        }
    }

    #[test]
    fn envelope_errors_name_the_problem() {
        let mut value = serde_json::to_value(envelope()).unwrap();
        value["sandbox_tier"] = json!("chroot");
        let err = serde_json::from_value::<RunnerBootstrapEnvelope>(value).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `chroot`"),
            "{err}"
        );

        let mut value = serde_json::to_value(envelope()).unwrap();
        value.as_object_mut().unwrap().remove("runtime_policy");
        let err = serde_json::from_value::<RunnerBootstrapEnvelope>(value).unwrap_err();
        assert!(
            err.to_string().contains("missing field `runtime_policy`"),
            "{err}"
        );

        let mut value = serde_json::to_value(envelope()).unwrap();
        value["user_id"] = json!("../bob");
        let err = serde_json::from_value::<RunnerBootstrapEnvelope>(value).unwrap_err();
        assert!(err.to_string().contains("invalid user id"), "{err}");
    }

    #[test]
    fn policy_defaults() {
        let policy: RunnerRuntimePolicy =
            serde_json::from_value(json!({"shell_mode": "host"})).unwrap();
        assert_eq!(policy.approval, ApprovalPolicy::Ask);
        assert_eq!(policy.egress, EgressPolicy::DefaultSafe);
        round_trip(&policy);
    }
}
