//! `AgentConfig::validate`: the six start-up rules of spec 01. Each rule
//! fails with its own `ConfigError` variant.

use super::{AgentConfig, EmbeddingConfig};
use crate::catalog::ModelCatalog;
use crate::error::ConfigError;
use crate::ids::ModelId;

/// Tolerance for the retrieval weights summing to 1.0.
const WEIGHT_TOLERANCE: f64 = 1e-6;

impl AgentConfig {
    /// Checks every start-up rule; the first violated rule is reported.
    pub fn validate(&self, catalog: &ModelCatalog) -> Result<(), ConfigError> {
        self.check_version()?;
        let provider = self.selection.provider.as_deref().ok_or_else(|| {
            ConfigError::MissingProviderSelection {
                known: self.known_providers(),
            }
        })?;
        let model = self
            .selection
            .model
            .as_ref()
            .filter(|m| !m.as_str().trim().is_empty())
            .ok_or(ConfigError::MissingModelSelection)?;
        self.check_selection(catalog, provider, model)?;
        for fallback in &self.reliability.fallbacks {
            self.check_selection(catalog, &fallback.provider, &fallback.model)?;
        }
        self.check_runtime()?;
        self.check_memory()?;
        self.check_reliability()
    }

    /// Rule 1: the major version is 1.
    fn check_version(&self) -> Result<(), ConfigError> {
        let major = self
            .config_version
            .trim()
            .split('.')
            .next()
            .and_then(|major| major.parse::<u64>().ok());
        match major {
            Some(super::SUPPORTED_CONFIG_MAJOR) => Ok(()),
            Some(_) | None => Err(ConfigError::UnsupportedVersion {
                found: self.config_version.clone(),
            }),
        }
    }

    /// Rules 2 and 3: the provider names an entry and the model is known to
    /// the catalog or declared by that entry.
    fn check_selection(
        &self,
        catalog: &ModelCatalog,
        provider: &str,
        model: &ModelId,
    ) -> Result<(), ConfigError> {
        let entry = self
            .providers
            .get(provider)
            .ok_or_else(|| ConfigError::UnknownProvider {
                name: provider.to_owned(),
                known: self.known_providers(),
            })?;
        let declared = entry.models.iter().any(|m| &m.id == model);
        if !declared && catalog.get(entry.provider_type, model.as_str()).is_none() {
            return Err(ConfigError::UnknownModel {
                provider: provider.to_owned(),
                provider_type: entry.provider_type.to_string(),
                model: model.to_string(),
            });
        }
        Ok(())
    }

    /// Rule 4.
    fn check_runtime(&self) -> Result<(), ConfigError> {
        if self.runtime.max_turns == 0 {
            return Err(ConfigError::NonPositiveLimit {
                field: "runtime.max_turns",
            });
        }
        if self.runtime.turn_timeout_secs == 0 {
            return Err(ConfigError::NonPositiveLimit {
                field: "runtime.turn_timeout_secs",
            });
        }
        if self.tools.shell.max_timeout_secs == 0 {
            return Err(ConfigError::NonPositiveLimit {
                field: "tools.shell.max_timeout_secs",
            });
        }
        for (name, entry) in &self.providers {
            for (field, secs) in [
                ("stream_idle_timeout_secs", entry.stream_idle_timeout_secs),
                ("first_token_timeout_secs", entry.first_token_timeout_secs),
            ] {
                if secs == 0 {
                    return Err(ConfigError::NonPositiveProviderLimit {
                        provider: name.clone(),
                        field,
                    });
                }
            }
        }
        let gateway = &self.gateway;
        let limits = [
            ("gateway.max_connections", gateway.max_connections),
            ("gateway.max_frame_bytes", gateway.max_frame_bytes),
            ("gateway.lane_depth", gateway.lane_depth),
            ("gateway.replay_frames", gateway.replay_frames),
        ];
        if let Some((field, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::NonPositiveLimit { field });
        }
        for (field, secs) in [
            (
                "gateway.approval_timeout_secs",
                gateway.approval_timeout_secs,
            ),
            ("gateway.idle_session_secs", gateway.idle_session_secs),
        ] {
            if secs == 0 {
                return Err(ConfigError::NonPositiveLimit { field });
            }
        }
        Ok(())
    }

    /// Rule 5.
    fn check_memory(&self) -> Result<(), ConfigError> {
        let (indexing, knowledge) = (&self.memory.indexing, &self.memory.knowledge);
        for (field, zero) in [
            ("memory.indexing.max_backlog", indexing.max_backlog == 0),
            ("memory.indexing.batch_events", indexing.batch_events == 0),
            ("memory.knowledge.poll_secs", knowledge.poll_secs == 0),
            (
                "memory.knowledge.max_file_bytes",
                knowledge.max_file_bytes == 0,
            ),
        ] {
            if zero {
                return Err(ConfigError::NonPositiveLimit { field });
            }
        }
        knowledge
            .relative_to_shared()
            .map_err(ConfigError::KnowledgePath)?;
        let has_token = self
            .memory
            .auth_token
            .as_ref()
            .is_some_and(|token| !token.is_empty());
        if self.memory.remote_url.is_some() && !has_token {
            return Err(ConfigError::RemoteWithoutAuthToken);
        }
        let retrieval = &self.memory.retrieval;
        if (retrieval.vector_weight + retrieval.fts_weight - 1.0).abs() > WEIGHT_TOLERANCE {
            return Err(ConfigError::RetrievalWeights {
                vector_weight: retrieval.vector_weight,
                fts_weight: retrieval.fts_weight,
            });
        }
        match &self.memory.embedding {
            EmbeddingConfig::Auto {}
            | EmbeddingConfig::Lexical {}
            | EmbeddingConfig::Semantic { .. } => Ok(()),
            EmbeddingConfig::OpenaiCompatible { provider, .. } => {
                if self.providers.contains_key(provider) {
                    Ok(())
                } else {
                    Err(ConfigError::UnknownEmbeddingProvider {
                        name: provider.clone(),
                        known: self.known_providers(),
                    })
                }
            }
        }
    }

    /// Rule 6.
    fn check_reliability(&self) -> Result<(), ConfigError> {
        let reliability = &self.reliability;
        if reliability.backoff_base_ms == 0 {
            return Err(ConfigError::NonPositiveBackoff {
                field: "backoff_base_ms",
            });
        }
        if reliability.backoff_max_ms == 0 {
            return Err(ConfigError::NonPositiveBackoff {
                field: "backoff_max_ms",
            });
        }
        if reliability.backoff_base_ms > reliability.backoff_max_ms {
            return Err(ConfigError::BackoffBaseAboveMax {
                base_ms: reliability.backoff_base_ms,
                max_ms: reliability.backoff_max_ms,
            });
        }
        Ok(())
    }

    fn known_providers(&self) -> String {
        if self.providers.is_empty() {
            return "(none; add a [providers.<name>] table)".to_owned();
        }
        self.providers
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProviderType;
    use crate::config::{DeclaredModel, FallbackSelection, ProviderEntry};

    fn valid() -> AgentConfig {
        let mut config = AgentConfig::default();
        config
            .providers
            .insert("openai".into(), ProviderEntry::new(ProviderType::Openai));
        config.selection.provider = Some("openai".into());
        config.selection.model = Some("gpt-4.1".into());
        config
    }

    /// Applies `change` to a valid config and returns the validation message.
    fn check(change: impl FnOnce(&mut AgentConfig)) -> String {
        let mut config = valid();
        change(&mut config);
        match config.validate(ModelCatalog::pinned()) {
            Ok(()) => "ok".to_owned(),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_complete_config_is_valid() {
        assert_eq!(check(|_| {}), "ok");
        assert_eq!(check(|c| c.config_version = "1.4.2".into()), "ok");
    }

    #[test]
    fn rule_1_config_version_major() {
        assert_eq!(
            check(|c| c.config_version = "2.0".into()),
            "unsupported config_version '2.0': this build reads major version 1 (e.g. \"1.0\")"
        );
        assert!(check(|c| c.config_version = "one".into()).contains("'one'"));
        assert!(check(|c| c.config_version = String::new()).starts_with("unsupported"));
    }

    #[test]
    fn rule_2_provider_names_a_registry_entry() {
        assert_eq!(
            check(|c| c.selection.provider = None),
            "selection.provider is not set; add `[selection] provider = \"<name>\"` naming one of: openai"
        );
        assert_eq!(
            check(|c| c.selection.provider = Some("anthropic".into())),
            "selection.provider 'anthropic' is not in the provider registry; configured providers: openai"
        );
        assert!(
            check(|c| {
                c.providers.clear();
            })
            .contains("(none; add a [providers.<name>] table)")
        );
    }

    #[test]
    fn rule_3_model_is_known() {
        assert_eq!(
            check(|c| c.selection.model = None),
            "selection.model is not set; add `[selection] model = \"<model id>\"`"
        );
        assert_eq!(
            check(|c| c.selection.model = Some(" ".into())),
            check(|c| c.selection.model = None)
        );
        assert_eq!(
            check(|c| c.selection.model = Some("gpt-9".into())),
            "model 'gpt-9' is unknown for provider 'openai' (type openai); use a catalog model or declare it under [[providers.openai.models]]"
        );
        // A model of another provider type is unknown here.
        assert!(check(|c| c.selection.model = Some("gemini-2.5-pro".into())).contains("unknown"));
        // Declared models are accepted.
        assert_eq!(
            check(|c| {
                c.selection.model = Some("llama3.1:8b".into());
                c.providers
                    .get_mut("openai")
                    .unwrap()
                    .models
                    .push(DeclaredModel {
                        id: "llama3.1:8b".into(),
                        display_name: None,
                        max_input_tokens: 8192,
                        max_output_tokens: 1024,
                        supports_tools: true,
                        supports_streaming: true,
                        supports_reasoning_traces: false,
                        supports_json_mode: false,
                        input_price_per_million: 0.0,
                        output_price_per_million: 0.0,
                    });
            }),
            "ok"
        );
        // Fallback selections are held to the same rules.
        assert!(
            check(|c| c.reliability.fallbacks.push(FallbackSelection {
                provider: "openai".into(),
                model: "nope".into(),
            }))
            .contains("model 'nope' is unknown")
        );
    }

    #[test]
    fn rule_4_turn_limits() {
        assert_eq!(
            check(|c| c.runtime.max_turns = 0),
            "runtime.max_turns must be greater than 0"
        );
        assert_eq!(
            check(|c| c.runtime.turn_timeout_secs = 0),
            "runtime.turn_timeout_secs must be greater than 0"
        );
        assert_eq!(
            check(|c| c.gateway.lane_depth = 0),
            "gateway.lane_depth must be greater than 0"
        );
        assert_eq!(
            check(|c| c.gateway.approval_timeout_secs = 0),
            "gateway.approval_timeout_secs must be greater than 0"
        );
        assert_eq!(
            check(|c| c.gateway.idle_session_secs = 0),
            "gateway.idle_session_secs must be greater than 0"
        );
        assert_eq!(
            check(|c| c.tools.shell.max_timeout_secs = 0),
            "tools.shell.max_timeout_secs must be greater than 0"
        );
        assert_eq!(
            check(|c| c
                .providers
                .get_mut("openai")
                .unwrap()
                .stream_idle_timeout_secs = 0),
            "providers.openai.stream_idle_timeout_secs must be greater than 0"
        );
        assert_eq!(
            check(|c| c
                .providers
                .get_mut("openai")
                .unwrap()
                .first_token_timeout_secs = 0),
            "providers.openai.first_token_timeout_secs must be greater than 0"
        );
    }

    #[test]
    fn rule_5_remote_memory_and_weights() {
        assert_eq!(
            check(|c| c.memory.remote_url = Some("libsql://db.example".into())),
            "memory.remote_url is set but memory.auth_token is missing"
        );
        assert_eq!(
            check(|c| {
                c.memory.remote_url = Some("libsql://db.example".into());
                c.memory.auth_token = Some("".into());
            }),
            "memory.remote_url is set but memory.auth_token is missing"
        );
        assert_eq!(
            check(|c| {
                c.memory.remote_url = Some("libsql://db.example".into());
                c.memory.auth_token = Some("tok".into());
            }),
            "ok"
        );
        assert_eq!(
            check(|c| c.memory.indexing.max_backlog = 0),
            "memory.indexing.max_backlog must be greater than 0"
        );
        assert_eq!(
            check(|c| c.memory.indexing.batch_events = 0),
            "memory.indexing.batch_events must be greater than 0"
        );
        assert_eq!(
            check(|c| c.memory.knowledge.poll_secs = 0),
            "memory.knowledge.poll_secs must be greater than 0"
        );
        assert_eq!(
            check(|c| c.memory.knowledge.path = "/vault/docs".into()),
            "memory.knowledge.path '/vault/docs' must be a directory under /shared, e.g. /shared/knowledge"
        );
        assert_eq!(
            check(|c| c.memory.knowledge.path = "/shared/../vault".into()),
            "memory.knowledge.path '/shared/../vault' must be a plain path under /shared (no '.', '..' or empty parts)"
        );
        assert_eq!(
            check(|c| c.memory.knowledge.path = "/shared/team/docs/".into()),
            "ok"
        );
        assert_eq!(
            check(|c| c.memory.retrieval.fts_weight = 0.4),
            "memory.retrieval.vector_weight (0.7) + fts_weight (0.4) must equal 1.0"
        );
        assert_eq!(
            check(|c| {
                c.memory.retrieval.vector_weight = 0.1 + 0.2;
                c.memory.retrieval.fts_weight = 0.7;
            }),
            "ok",
            "floating-point noise is tolerated"
        );
        assert_eq!(
            check(|c| {
                c.memory.embedding = crate::config::EmbeddingConfig::OpenaiCompatible {
                    provider: "ollama".into(),
                    model: "nomic-embed-text".into(),
                }
            }),
            "memory.embedding.provider 'ollama' is not in the provider registry; configured providers: openai"
        );
        assert_eq!(
            check(|c| {
                c.memory.embedding = crate::config::EmbeddingConfig::OpenaiCompatible {
                    provider: "openai".into(),
                    model: "text-embedding-3-small".into(),
                }
            }),
            "ok"
        );
    }

    #[test]
    fn rule_6_backoff_bounds() {
        assert_eq!(
            check(|c| c.reliability.backoff_base_ms = 0),
            "reliability.backoff_base_ms must be greater than 0"
        );
        assert_eq!(
            check(|c| c.reliability.backoff_max_ms = 0),
            "reliability.backoff_max_ms must be greater than 0"
        );
        assert_eq!(
            check(|c| c.reliability.backoff_base_ms = 60_000),
            "reliability.backoff_base_ms (60000) must not exceed reliability.backoff_max_ms (30000)"
        );
    }
}
