//! Agent configurations for tests and benchmarks that run Oxydra against a
//! fake LLM.

use types::config::ProviderEntry;
use types::{AgentConfig, ProviderType};

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
