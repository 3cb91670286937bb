//! Explains the effective configuration: every value with the layer it came
//! from, secrets masked. The runner's `config show` prints this.

use figment::value::{Dict, Value};

use super::loader::{LoadedConfig, describe_source};
use crate::secret::SecretString;

/// Keys whose values are always secret.
const SECRET_KEYS: [&str; 2] = ["api_key", "auth_token"];
/// Header names (lower-cased substrings) whose values are treated as secret.
const SECRET_HEADER_HINTS: [&str; 5] = ["authorization", "key", "token", "secret", "cookie"];

/// One effective value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedValue {
    /// Dotted key (`runtime.max_turns`).
    pub key: String,
    /// The value as TOML/JSON text, or `****` for secrets.
    pub value: String,
    /// A file path, `environment variable OXYDRA__…`, `command-line flags`
    /// or `built-in defaults`.
    pub source: String,
}

impl LoadedConfig {
    /// Every leaf value of the effective configuration, sorted by key.
    pub fn explain(&self) -> Vec<ExplainedValue> {
        let mut out = Vec::new();
        // `AgentConfig` always serialises to a table.
        if let Ok(Value::Dict(_, dict)) = Value::serialize(&self.config) {
            self.walk("", &dict, &mut out);
        }
        out
    }

    /// `explain()` as aligned text: `key = value  # source`.
    pub fn render_explained(&self) -> String {
        let values = self.explain();
        let width = values
            .iter()
            .map(|v| v.key.len() + v.value.len() + 3)
            .max()
            .unwrap_or(0);
        values
            .iter()
            .map(|v| {
                let assignment = format!("{} = {}", v.key, v.value);
                format!("{assignment:<width$}  # {}\n", v.source)
            })
            .collect()
    }

    fn walk(&self, prefix: &str, dict: &Dict, out: &mut Vec<ExplainedValue>) {
        for (name, value) in dict {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Value::Dict(_, child) = value
                && !child.is_empty()
            {
                self.walk(&key, child, out);
                continue;
            }
            let text = if is_secret(&key) {
                SecretString::MASK.to_owned()
            } else {
                serde_json::to_string(value).unwrap_or_else(|e| format!("<{e}>"))
            };
            out.push(ExplainedValue {
                source: describe_source(&self.figment, &key),
                key,
                value: text,
            });
        }
    }
}

fn is_secret(key: &str) -> bool {
    let mut parts = key.rsplit('.');
    let last = parts.next().unwrap_or_default();
    if SECRET_KEYS.contains(&last) {
        return true;
    }
    let is_header = parts.next() == Some("headers");
    let lower = last.to_ascii_lowercase();
    is_header && SECRET_HEADER_HINTS.iter().any(|hint| lower.contains(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        assert!(is_secret("providers.openai.api_key"));
        assert!(is_secret("memory.auth_token"));
        assert!(is_secret("providers.x.headers.Authorization"));
        assert!(is_secret("providers.x.headers.X-Api-Key"));
        assert!(!is_secret("providers.x.headers.X-Title"));
        assert!(!is_secret("providers.x.api_key_env"));
        assert!(!is_secret("runtime.max_turns"));
    }
}
