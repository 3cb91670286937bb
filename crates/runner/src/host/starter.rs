//! The starter configuration `start` writes when no `--config` was given
//! and `.oxydra/runner.toml` does not exist: a process-tier runner with one
//! user named after `$USER`, that user's (empty, commented) file, and an
//! agent configuration whose provider is chosen from the API keys in the
//! environment. Files that exist already are never overwritten.

use std::path::{Path, PathBuf};

use types::config::Environment;
use types::{ProviderType, UserId};

use super::HostError;

/// The starter's directory, relative to the working directory.
pub const STARTER_DIR: &str = ".oxydra";
/// The default `--config`.
pub const DEFAULT_CONFIG: &str = ".oxydra/runner.toml";
/// The user name when `$USER` is unset or unusable.
pub const FALLBACK_USER: &str = "me";

const RUNNER_TEMPLATE: &str = r#"# oxydra-runner configuration, created by `oxydra-runner start`.
# Relative paths are resolved against this file's directory.
# Reference: docs/configuration.md ("Runner configuration").

# Each user's workspace is <workspace_root>/<user>/{shared,tmp,vault}; the
# runner keeps its control sockets and logs in <workspace_root>/.runner/.
workspace_root = "workspaces"

# process: the guest runs as a plain host process with best-effort Landlock
# hardening; shell and browser tools are disabled (development only).
# container / micro_vm are stronger and need their backends.
default_tier = "process"

[users.{user}]
config_path = "users/{user}.toml"
"#;

const USER_TEMPLATE: &str = r#"# Settings of user {user}, created by `oxydra-runner start`.
# Everything is optional; see docs/configuration.md ("Runner configuration").

# Credentials handed to the guest, by the name the guest looks up. Values
# are never written here: they come from the runner's environment or a file.
# Provider keys already set in the runner's environment are passed on
# without being listed.
# [credentials]
# OPENAI_API_KEY = { env = "OPENAI_API_KEY" }
# BRAVE_API_KEY = { file = "/run/secrets/brave" }

# [overrides]
# tier = "process"
# disabled_tools = ["web_search"]
"#;

const AGENT_TEMPLATE: &str = r#"# Oxydra agent configuration, created by `oxydra-runner start`.
# Every key is documented in docs/configuration.md; run
# `oxydra-runner config show` for the effective values and their sources.
config_version = "1.0"

[selection]
provider = "{name}"
model = "{model}"

# The provider registry. The API key is read from {key_env} in the
# runner's environment; it is never written in this file.
[providers.{name}]
provider_type = "{provider_type}"
# A local OpenAI-compatible server (Ollama, llama.cpp, vLLM) instead: use
# provider_type = "openai", set base_url, declare the model, and select it.
# base_url = "http://127.0.0.1:11434/v1"
# [[providers.{name}.models]]
# id = "llama3.2"
# max_input_tokens = 131072
"#;

/// A provider the starter can configure: (key variable, entry name, type,
/// a model of the pinned catalog), in order of preference.
const PROVIDERS: [(&str, ProviderType, &str); 3] = [
    ("openai", ProviderType::Openai, "gpt-4.1-mini"),
    ("anthropic", ProviderType::Anthropic, "claude-sonnet-4-5"),
    ("gemini", ProviderType::Gemini, "gemini-2.5-flash"),
];

/// What the starter wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterOutcome {
    pub user: UserId,
    /// The files created (existing ones are left alone and not listed).
    pub created: Vec<PathBuf>,
    /// The variable whose key the agent configuration uses, when one was
    /// found in the environment.
    pub key_found: Option<&'static str>,
}

impl StarterOutcome {
    /// Whether the starter wrote the agent configuration and it selects a
    /// provider whose key is not set (an existing `agent.toml` is the
    /// user's own choice, e.g. a local server, and needs no key here).
    pub fn needs_key(&self) -> bool {
        self.key_found.is_none() && self.created.iter().any(|path| path.ends_with("agent.toml"))
    }
}

/// `$USER` made into a valid user id (`me` when that fails).
pub fn starter_user(env: &Environment) -> UserId {
    let raw = env.get("USER").unwrap_or_default();
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(UserId::MAX_LEN)
        .collect();
    UserId::parse(cleaned).unwrap_or_else(|_| fallback_user())
}

fn fallback_user() -> UserId {
    match UserId::parse(FALLBACK_USER) {
        Ok(user) => user,
        // "me" is alphanumeric, short and has no leading dot.
        Err(_) => unreachable!("the fallback user id is valid"),
    }
}

/// Writes the starter files into `dir` (normally `<cwd>/.oxydra`).
pub fn write_starter(dir: &Path, env: &Environment) -> Result<StarterOutcome, HostError> {
    let user = starter_user(env);
    let (name, provider_type, model) = PROVIDERS
        .iter()
        .copied()
        .find(|(_, provider_type, _)| has_value(env, provider_type.default_api_key_env()))
        .unwrap_or(PROVIDERS[0]);
    let key_env = provider_type.default_api_key_env();
    let key_found = has_value(env, key_env).then_some(key_env);
    let agent = AGENT_TEMPLATE
        .replace("{name}", name)
        .replace("{model}", model)
        .replace("{provider_type}", provider_type.as_str())
        .replace("{key_env}", key_env);
    let files = [
        (
            dir.join("runner.toml"),
            RUNNER_TEMPLATE.replace("{user}", user.as_str()),
        ),
        (
            dir.join("users").join(format!("{user}.toml")),
            USER_TEMPLATE.replace("{user}", user.as_str()),
        ),
        (dir.join("agent.toml"), agent),
    ];
    let mut created = Vec::new();
    for (path, text) in files {
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| HostError::io("cannot create directory", parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| HostError::io("cannot write", &path, e))?;
        created.push(path);
    }
    Ok(StarterOutcome {
        user,
        created,
        key_found,
    })
}

/// What to do when no key was found: the exact variables, or a local server.
pub fn missing_key_message(agent_toml: &Path) -> String {
    format!(
        "no provider API key was found in the environment. Set OPENAI_API_KEY \
         (or ANTHROPIC_API_KEY / GEMINI_API_KEY and change [selection] and [providers.*] in {path} \
         to that provider), or, for a local OpenAI-compatible server, set base_url under \
         [providers.openai] in {path} (no key needed) and declare and select its model there; \
         then run `oxydra-runner start` again",
        path = agent_toml.display()
    )
}

fn has_value(env: &Environment, name: &str) -> bool {
    env.get(name).is_some_and(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::ModelCatalog;
    use types::config::{ConfigSources, LoadedConfig};
    use types::runner::{RunnerGlobalConfig, RunnerUserConfig, SandboxTier};

    #[test]
    fn user_names_are_sanitised() {
        let user = |v: &str| starter_user(&Environment::from_pairs([("USER", v)])).to_string();
        assert_eq!(user("alice"), "alice");
        assert_eq!(user("Jane Doe"), "jane-doe");
        assert_eq!(user(".hidden"), "hidden");
        assert_eq!(user("..."), "me");
        assert_eq!(starter_user(&Environment::default()).as_str(), "me");
        assert_eq!(user(&"x".repeat(100)).len(), UserId::MAX_LEN);
    }

    fn load_all(dir: &Path) -> (RunnerGlobalConfig, LoadedConfig) {
        let runner = RunnerGlobalConfig::load(&dir.join("runner.toml")).unwrap();
        let user = runner.select_user(None).unwrap().clone();
        RunnerUserConfig::load(&runner.users[&user].config_path).unwrap();
        let sources = ConfigSources {
            dirs: vec![dir.to_owned()],
            env: Environment::default(),
        };
        let agent = LoadedConfig::load(&sources, &Default::default()).unwrap();
        (runner, agent)
    }

    #[test]
    fn each_key_yields_a_valid_configuration() {
        for (var, provider, model) in [
            ("OPENAI_API_KEY", "openai", "gpt-4.1-mini"),
            ("ANTHROPIC_API_KEY", "anthropic", "claude-sonnet-4-5"),
            ("GEMINI_API_KEY", "gemini", "gemini-2.5-flash"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let env = Environment::from_pairs([("USER", "sam"), (var, "k")]);
            let outcome = write_starter(dir.path(), &env).unwrap();
            assert_eq!(outcome.key_found, Some(var));
            assert_eq!(outcome.created.len(), 3);
            let (runner, agent) = load_all(dir.path());
            assert_eq!(runner.default_tier, SandboxTier::Process);
            assert!(runner.users.keys().any(|u| u.as_str() == "sam"));
            assert_eq!(agent.config.selection.provider.as_deref(), Some(provider));
            assert_eq!(
                agent.config.selection.model.as_ref().map(|m| m.as_str()),
                Some(model)
            );
            agent.config.validate(ModelCatalog::pinned()).unwrap();
        }
    }

    #[test]
    fn no_key_still_writes_valid_files_and_existing_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.toml"), "# mine\n").unwrap();
        let outcome = write_starter(dir.path(), &Environment::default()).unwrap();
        assert_eq!(outcome.key_found, None);
        assert_eq!(outcome.created.len(), 2);
        assert!(
            !outcome.needs_key(),
            "the user's own agent.toml needs no key"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("agent.toml")).unwrap(),
            "# mine\n"
        );
        std::fs::remove_file(dir.path().join("agent.toml")).unwrap();
        assert!(
            write_starter(dir.path(), &Environment::default())
                .unwrap()
                .needs_key()
        );
        let (_, agent) = load_all(dir.path());
        assert_eq!(agent.config.selection.provider.as_deref(), Some("openai"));
        agent.config.validate(ModelCatalog::pinned()).unwrap();
        let message = missing_key_message(&dir.path().join("agent.toml"));
        assert!(message.contains("OPENAI_API_KEY") && message.contains("base_url"));
    }
}
