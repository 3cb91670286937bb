//! Credential resolution for a provider entry. First non-empty wins:
//! the explicit `api_key`, then the entry's `api_key_env` variable (default
//! per provider type), then the generic `API_KEY`. The value is wrapped in
//! `SecretString` the moment it is read, so it never reaches a log.

use std::fmt;

use super::ProviderEntry;
use crate::error::ConfigError;
use crate::secret::SecretString;

/// The development fallback variable, tried last.
pub const GENERIC_API_KEY_ENV: &str = "API_KEY";

/// Where a credential came from (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `api_key` in the provider entry.
    ExplicitConfig,
    /// An environment variable (or the runner-supplied equivalent).
    Environment(String),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExplicitConfig => f.write_str("api_key in the provider entry"),
            Self::Environment(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// A credential and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCredential {
    pub value: SecretString,
    pub source: CredentialSource,
}

impl ProviderEntry {
    /// The variable this entry reads its key from.
    pub fn api_key_env_name(&self) -> &str {
        self.api_key_env
            .as_deref()
            .unwrap_or_else(|| self.provider_type.default_api_key_env())
    }

    /// Resolves the key. `lookup` reads a variable: the process environment
    /// on a developer machine (`|name| std::env::var(name).ok()`), the
    /// bootstrap envelope's credentials inside a guest, a map in tests.
    pub fn resolve_api_key(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Option<ResolvedCredential> {
        if let Some(key) = self.api_key.as_ref().filter(|key| !key.is_empty()) {
            return Some(ResolvedCredential {
                value: key.clone(),
                source: CredentialSource::ExplicitConfig,
            });
        }
        [self.api_key_env_name(), GENERIC_API_KEY_ENV]
            .into_iter()
            .find_map(|name| {
                let value = lookup(name).filter(|v| !v.trim().is_empty())?;
                Some(ResolvedCredential {
                    value: SecretString::new(value),
                    source: CredentialSource::Environment(name.to_owned()),
                })
            })
    }

    /// Like `resolve_api_key`, but a missing key is an error naming where
    /// to put one.
    pub fn require_api_key(
        &self,
        provider_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedCredential, ConfigError> {
        self.resolve_api_key(lookup)
            .ok_or_else(|| ConfigError::MissingCredential {
                provider: provider_name.to_owned(),
                env_var: self.api_key_env_name().to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProviderType;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn resolved(
        entry: &ProviderEntry,
        pairs: &[(&str, &str)],
    ) -> Option<(String, CredentialSource)> {
        entry
            .resolve_api_key(env(pairs))
            .map(|c| (c.value.expose().to_owned(), c.source))
    }

    #[test]
    fn explicit_key_wins_over_everything() {
        let mut entry = ProviderEntry::new(ProviderType::Openai);
        entry.api_key = Some("explicit".into());
        assert_eq!(
            resolved(&entry, &[("OPENAI_API_KEY", "env"), ("API_KEY", "generic")]),
            Some(("explicit".into(), CredentialSource::ExplicitConfig))
        );
    }

    #[test]
    fn provider_env_var_wins_over_generic() {
        let entry = ProviderEntry::new(ProviderType::Anthropic);
        assert_eq!(
            resolved(
                &entry,
                &[("ANTHROPIC_API_KEY", "env"), ("API_KEY", "generic")]
            ),
            Some((
                "env".into(),
                CredentialSource::Environment("ANTHROPIC_API_KEY".into())
            ))
        );
    }

    #[test]
    fn custom_env_var_replaces_the_type_default() {
        let mut entry = ProviderEntry::new(ProviderType::Openai);
        entry.api_key_env = Some("OPENROUTER_KEY".into());
        assert_eq!(
            resolved(
                &entry,
                &[("OPENAI_API_KEY", "wrong"), ("OPENROUTER_KEY", "right")]
            ),
            Some((
                "right".into(),
                CredentialSource::Environment("OPENROUTER_KEY".into())
            ))
        );
    }

    #[test]
    fn generic_key_is_the_last_resort_and_empty_values_are_skipped() {
        let mut entry = ProviderEntry::new(ProviderType::Gemini);
        entry.api_key = Some(" ".into());
        assert_eq!(
            resolved(&entry, &[("GEMINI_API_KEY", ""), ("API_KEY", "generic")]),
            Some((
                "generic".into(),
                CredentialSource::Environment("API_KEY".into())
            ))
        );
        assert_eq!(resolved(&entry, &[]), None);
    }

    #[test]
    fn missing_key_error_says_where_to_put_one_without_values() {
        let entry = ProviderEntry::new(ProviderType::Gemini);
        let err = entry.require_api_key("google", env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no API key for provider 'google': set `api_key` in its entry, or the environment variable GEMINI_API_KEY, or API_KEY"
        );
        let found = entry
            .require_api_key("google", env(&[("GEMINI_API_KEY", "g-secret")]))
            .unwrap();
        assert!(!format!("{found:?}").contains("g-secret"));
        assert_eq!(
            found.source.to_string(),
            "environment variable GEMINI_API_KEY"
        );
    }
}
