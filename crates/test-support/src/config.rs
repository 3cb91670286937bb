//! Agent configurations and bootstrap envelopes for tests and benchmarks
//! that run Oxydra against a fake LLM.

use std::path::Path;

use types::config::ProviderEntry;
use types::protocol::bootstrap::{
    ApprovalPolicy, EgressPolicy, RunnerBootstrapEnvelope, RunnerRuntimePolicy, ShellMode,
    StartupDegradedReason, StartupStatusReport,
};
use types::runner::SandboxTier;
use types::{AgentConfig, ProviderType, UserId};

/// An agent configuration whose provider `fake` speaks the OpenAI chat
/// format at `base_url` (e.g. `FakeLlm::base_url`), model `gpt-4.1`, one
/// attempt per call (a fault reaches the client instead of a retry).
pub fn openai_agent_config(base_url: String) -> AgentConfig {
    let mut config = AgentConfig::default();
    let mut entry = ProviderEntry::new(ProviderType::Openai);
    entry.base_url = Some(base_url);
    config.providers.insert("fake".into(), entry);
    config.selection.provider = Some("fake".into());
    config.selection.model = Some("gpt-4.1".into());
    config.reliability.max_attempts = 1;
    config
}

/// The process-tier envelope the runner sends for `user` in `workspace`
/// running `config`: shell off, privileged tools asking for approval, the
/// default egress policy, a placeholder OpenAI key.
pub fn process_envelope(
    user: &str,
    workspace: &Path,
    config: AgentConfig,
) -> RunnerBootstrapEnvelope {
    RunnerBootstrapEnvelope {
        user_id: UserId::parse(user).expect("a valid user id"),
        sandbox_tier: SandboxTier::Process,
        workspace_root: workspace.to_owned(),
        sidecar_endpoint: None,
        runtime_policy: RunnerRuntimePolicy {
            shell_mode: ShellMode::Disabled,
            approval: ApprovalPolicy::Ask,
            egress: EgressPolicy::DefaultSafe,
            disabled_tools: Vec::new(),
        },
        startup_status: StartupStatusReport {
            degraded_reasons: vec![StartupDegradedReason::InsecureProcessTier],
            ..StartupStatusReport::default()
        },
        agent_config: config,
        credentials: [("OPENAI_API_KEY".to_owned(), "sk-fake".into())].into(),
    }
}
