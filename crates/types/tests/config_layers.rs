//! Layered configuration through the public API: real files in temporary
//! directories, and environment variables handed in as an explicit
//! `Environment` (the loader never reads the process environment itself).

use std::fs;
use std::path::{Path, PathBuf};

use types::config::{CliOverrides, ConfigSources, Environment, LoadedConfig};
use types::{ConfigError, ModelCatalog, ProviderType};

/// Three layer directories (system, user, workspace) in a temp dir.
struct Layers {
    _root: tempfile::TempDir,
    dirs: [PathBuf; 3],
}

impl Layers {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let dirs = ["etc", "home", "workspace"].map(|d| {
            let dir = root.path().join(d);
            fs::create_dir_all(&dir).unwrap();
            dir
        });
        Self { _root: root, dirs }
    }

    fn write(&self, layer: usize, file: &str, text: &str) -> PathBuf {
        let path = self.dirs[layer].join(file);
        fs::write(&path, text).unwrap();
        path
    }

    fn sources(&self, env: &[(&str, &str)]) -> ConfigSources {
        ConfigSources {
            dirs: self.dirs.to_vec(),
            env: Environment::from_pairs(env.iter().copied()),
        }
    }

    fn load(&self) -> Result<LoadedConfig, ConfigError> {
        self.load_with_env(&[])
    }

    fn load_with_env(&self, env: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
        LoadedConfig::load(&self.sources(env), &CliOverrides::default())
    }
}

const SYSTEM: usize = 0;
const USER: usize = 1;
const WORKSPACE: usize = 2;

fn source_of(loaded: &LoadedConfig, key: &str) -> String {
    loaded
        .explain()
        .into_iter()
        .find(|v| v.key == key)
        .unwrap_or_else(|| panic!("{key} not explained"))
        .source
}

#[test]
fn no_files_gives_the_defaults() {
    let layers = Layers::new();
    let loaded = layers.load().unwrap();
    assert_eq!(loaded.config, types::AgentConfig::default());
    assert_eq!(source_of(&loaded, "runtime.max_turns"), "built-in defaults");
}

#[test]
fn each_layer_overrides_the_previous_one() {
    let layers = Layers::new();
    let system = layers.write(
        SYSTEM,
        "agent.toml",
        r#"
[runtime]
max_turns = 2
turn_timeout_secs = 20
stream_buffer_size = 40
[memory]
db_path = "system.db"
[memory.retrieval]
max_results = 9
[selection]
model = "system-model"
"#,
    );
    let user = layers.write(
        USER,
        "agent.toml",
        "[runtime]\nturn_timeout_secs = 30\nstream_buffer_size = 50\n[memory]\ndb_path = \"user.db\"\n",
    );
    let workspace = layers.write(
        WORKSPACE,
        "agent.toml",
        "[runtime]\nstream_buffer_size = 60\n[memory]\ndb_path = \"workspace.db\"\n",
    );
    let sources = layers.sources(&[
        ("OXYDRA__MEMORY__DB_PATH", "env.db"),
        ("OXYDRA__SELECTION__MODEL", "gpt-4o"),
        ("OXYDRA__RUNTIME__SUMMARIZATION__MIN_TURNS", "6"),
        ("UNRELATED", "ignored"),
    ]);
    let cli = CliOverrides {
        model: Some("gpt-4.1".into()),
        set: vec!["runtime.max_cost=2.5".into()],
        ..CliOverrides::default()
    };
    let loaded = LoadedConfig::load(&sources, &cli).unwrap();
    let config = &loaded.config;
    assert_eq!(config.runtime.max_turns, 2);
    assert_eq!(config.memory.retrieval.max_results, 9);
    assert_eq!(config.runtime.turn_timeout_secs, 30);
    assert_eq!(config.runtime.stream_buffer_size, 60);
    assert_eq!(config.memory.db_path, Path::new("env.db"));
    assert_eq!(config.runtime.summarization.min_turns, 6);
    assert_eq!(config.selection.model.as_ref().unwrap().as_str(), "gpt-4.1");
    assert_eq!(config.runtime.max_cost, Some(2.5));
    // Values nobody set keep their defaults.
    assert_eq!(config.reliability.max_attempts, 3);

    assert_eq!(
        source_of(&loaded, "runtime.max_turns"),
        system.display().to_string()
    );
    assert_eq!(
        source_of(&loaded, "runtime.turn_timeout_secs"),
        user.display().to_string()
    );
    assert_eq!(
        source_of(&loaded, "runtime.stream_buffer_size"),
        workspace.display().to_string()
    );
    assert_eq!(
        source_of(&loaded, "memory.db_path"),
        "environment variable OXYDRA__MEMORY__DB_PATH"
    );
    assert_eq!(source_of(&loaded, "selection.model"), "command-line flags");
    assert_eq!(source_of(&loaded, "runtime.max_cost"), "command-line flags");
    assert_eq!(
        source_of(&loaded, "reliability.max_attempts"),
        "built-in defaults"
    );
}

#[test]
fn environment_nesting_and_value_types() {
    let layers = Layers::new();
    let loaded = layers
        .load_with_env(&[
            ("OXYDRA__RUNTIME__MAX_TURNS", "10"),
            ("OXYDRA__MEMORY__ENABLED", "false"),
            ("OXYDRA__PROVIDERS__LOCAL__PROVIDER_TYPE", "openai"),
            (
                "OXYDRA__PROVIDERS__LOCAL__BASE_URL",
                "http://127.0.0.1:11434/v1",
            ),
        ])
        .unwrap();
    assert_eq!(loaded.config.runtime.max_turns, 10);
    assert!(!loaded.config.memory.enabled);
    let local = &loaded.config.providers["local"];
    assert_eq!(local.provider_type, ProviderType::Openai);
    assert_eq!(local.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
}

#[test]
fn providers_files_merge_with_agent_files_and_across_layers() {
    let layers = Layers::new();
    layers.write(
        USER,
        "providers.toml",
        "[providers.openai]\nprovider_type = \"openai\"\napi_key_env = \"MY_OPENAI\"\n",
    );
    layers.write(
        WORKSPACE,
        "providers.toml",
        r#"
[providers.openai]
base_url = "http://127.0.0.1:9999/v1"
[providers.local]
provider_type = "openai"
base_url = "http://127.0.0.1:11434/v1"
[[providers.local.models]]
id = "llama3.1:8b"
max_input_tokens = 131072
"#,
    );
    layers.write(
        WORKSPACE,
        "agent.toml",
        "[selection]\nprovider = \"local\"\nmodel = \"llama3.1:8b\"\n",
    );
    let config = layers.load().unwrap().config;
    let openai = &config.providers["openai"];
    assert_eq!(openai.api_key_env.as_deref(), Some("MY_OPENAI"));
    assert_eq!(openai.base_url.as_deref(), Some("http://127.0.0.1:9999/v1"));
    assert_eq!(config.providers["local"].models.len(), 1);
    config.validate(ModelCatalog::pinned()).unwrap();
}

#[test]
fn profiled_files_read_default_then_global() {
    let layers = Layers::new();
    layers.write(
        SYSTEM,
        "agent.toml",
        r#"
[default.runtime]
max_turns = 3
turn_timeout_secs = 15
[global.runtime]
turn_timeout_secs = 25
"#,
    );
    let config = layers.load().unwrap().config;
    assert_eq!(config.runtime.max_turns, 3);
    assert_eq!(
        config.runtime.turn_timeout_secs, 25,
        "[global] wins inside its file"
    );

    // A later layer still overrides a profiled file's [global]: the
    // layering is deterministic.
    layers.write(
        WORKSPACE,
        "agent.toml",
        "[runtime]\nturn_timeout_secs = 99\n",
    );
    assert_eq!(layers.load().unwrap().config.runtime.turn_timeout_secs, 99);
}

#[test]
fn profiled_files_reject_stray_tables() {
    let layers = Layers::new();
    let path = layers.write(
        USER,
        "agent.toml",
        "[default.runtime]\nmax_turns = 3\n[runtime]\nmax_turns = 4\n",
    );
    let err = layers.load().unwrap_err().to_string();
    assert!(
        err.contains("'runtime'") && err.contains(&path.display().to_string()),
        "{err}"
    );
    assert!(
        err.contains("may only contain [default] and [global]"),
        "{err}"
    );
}

#[test]
fn unknown_keys_in_files_name_the_file_and_key() {
    let layers = Layers::new();
    let path = layers.write(WORKSPACE, "agent.toml", "[runtime]\nmax_turnz = 3\n");
    let err = layers.load().unwrap_err();
    assert_eq!(
        err,
        ConfigError::UnknownKey {
            key: "runtime.max_turnz".into(),
            source_name: path.display().to_string(),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "unknown configuration key 'runtime.max_turnz' in {}",
            path.display()
        )
    );
}

#[test]
fn unknown_top_level_and_provider_keys_are_rejected() {
    let layers = Layers::new();
    let path = layers.write(SYSTEM, "agent.toml", "colour = \"blue\"\n");
    let err = layers.load().unwrap_err().to_string();
    assert!(
        err.contains("'colour'") && err.contains(&path.display().to_string()),
        "{err}"
    );

    let layers = Layers::new();
    let path = layers.write(
        USER,
        "providers.toml",
        "[providers.openai]\nprovider_type = \"openai\"\napi_kee = \"x\"\n",
    );
    let err = layers.load().unwrap_err().to_string();
    assert!(
        err.contains("'providers.openai.api_kee'") && err.contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn unknown_keys_from_the_environment_name_the_variable() {
    let layers = Layers::new();
    let err = layers
        .load_with_env(&[("OXYDRA__RUNTIME__MAX_TRUNS", "3")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown configuration key 'runtime.max_truns' in environment variable OXYDRA__RUNTIME__MAX_TRUNS"
    );
}

#[test]
fn wrong_value_types_name_key_and_source() {
    let layers = Layers::new();
    let path = layers.write(USER, "agent.toml", "[runtime]\nmax_turns = \"many\"\n");
    let err = layers.load().unwrap_err().to_string();
    assert!(err.contains("'runtime.max_turns'"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("invalid type"), "{err}");

    let layers = Layers::new();
    layers.write(
        USER,
        "providers.toml",
        "[providers.x]\nprovider_type = \"cohere\"\n",
    );
    let err = layers.load().unwrap_err().to_string();
    assert!(
        err.contains("'providers.x.provider_type'") && err.contains("cohere"),
        "{err}"
    );
}

#[test]
fn an_unknown_shell_syntax_names_key_source_and_choices() {
    // `tools.shell.syntax` decides how much shell syntax the model gets; a
    // typo must stop the start-up rather than fall back to a default.
    let layers = Layers::new();
    let path = layers.write(USER, "agent.toml", "[tools.shell]\nsyntax = \"bash\"\n");
    let err = layers.load().unwrap_err().to_string();
    for needle in [
        "'tools.shell.syntax'",
        &path.display().to_string(),
        "bash",
        "strict",
        "compound",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let err = Layers::new()
        .load_with_env(&[("OXYDRA__TOOLS__SHELL__SYNTAX", "pipes")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OXYDRA__TOOLS__SHELL__SYNTAX") && err.contains("compound"),
        "{err}"
    );
    let loaded = Layers::new()
        .load_with_env(&[("OXYDRA__TOOLS__SHELL__SYNTAX", "compound")])
        .unwrap();
    assert_eq!(
        loaded.config.tools.shell.syntax,
        Some(types::config::ShellSyntax::Compound)
    );
}

#[test]
fn memory_durability_is_one_of_two_named_levels() {
    let layers = Layers::new();
    assert_eq!(
        layers.load().unwrap().config.memory.durability,
        types::config::Durability::ProcessCrash
    );
    layers.write(
        USER,
        "agent.toml",
        "[memory]\ndurability = \"power_loss\"\n",
    );
    assert_eq!(
        layers.load().unwrap().config.memory.durability,
        types::config::Durability::PowerLoss
    );
    let err = Layers::new()
        .load_with_env(&[("OXYDRA__MEMORY__DURABILITY", "fsync")])
        .unwrap_err()
        .to_string();
    for needle in [
        "OXYDRA__MEMORY__DURABILITY",
        "fsync",
        "process_crash",
        "power_loss",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn broken_toml_names_the_file() {
    let layers = Layers::new();
    let path = layers.write(WORKSPACE, "agent.toml", "[runtime\nmax_turns = 1\n");
    let err = layers.load().unwrap_err();
    assert!(
        matches!(&err, ConfigError::File { path: p, .. } if *p == path),
        "{err}"
    );
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn cli_set_parses_values_and_rejects_malformed_pairs() {
    let layers = Layers::new();
    let cli = CliOverrides {
        provider: Some("openai".into()),
        set: vec![
            "runtime.max_turns=12".into(),
            "memory.enabled = false".into(),
            "memory.db_path=/var/lib/oxydra/db".into(),
        ],
        ..CliOverrides::default()
    };
    let config = LoadedConfig::load(&layers.sources(&[]), &cli)
        .unwrap()
        .config;
    assert_eq!(config.runtime.max_turns, 12);
    assert!(!config.memory.enabled);
    assert_eq!(config.memory.db_path, Path::new("/var/lib/oxydra/db"));
    assert_eq!(config.selection.provider.as_deref(), Some("openai"));

    for (bad, expected) in [
        ("runtime.max_turns", "expected --set key=value"),
        ("runtime..max_turns=1", "dotted names"),
        (
            "runtime.nope=1",
            "unknown configuration key 'runtime.nope' in command-line flags",
        ),
    ] {
        let cli = CliOverrides {
            set: vec![bad.into()],
            ..CliOverrides::default()
        };
        let err = LoadedConfig::load(&layers.sources(&[]), &cli)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{bad}: {err}");
    }
}

#[test]
fn explained_config_masks_secrets() {
    let layers = Layers::new();
    layers.write(
        WORKSPACE,
        "providers.toml",
        r#"
[providers.openai]
provider_type = "openai"
api_key = "sk-very-secret-value"
headers = { "Authorization" = "Bearer hidden-token", "X-Title" = "oxydra" }
"#,
    );
    layers.write(
        WORKSPACE,
        "agent.toml",
        "[memory]\nremote_url = \"libsql://db\"\nauth_token = \"db-secret-token\"\n",
    );
    let loaded = layers.load().unwrap();
    let text = loaded.render_explained();
    for secret in ["sk-very-secret-value", "hidden-token", "db-secret-token"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(!format!("{:?}", loaded.config).contains("sk-very-secret-value"));
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
            .to_owned()
    };
    assert!(line("providers.openai.api_key").contains("= ****"));
    assert!(line("providers.openai.headers.Authorization").contains("= ****"));
    assert!(line("providers.openai.headers.X-Title").contains("\"oxydra\""));
    assert!(line("memory.auth_token").contains("= ****"));
    assert!(line("runtime.max_turns").ends_with("# built-in defaults"));
}

#[test]
fn standard_sources_follow_xdg_and_the_workspace() {
    let env = Environment::from_pairs([("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/home/a")]);
    let sources = ConfigSources::standard(Path::new("/project"), env);
    assert_eq!(
        sources.dirs,
        vec![
            PathBuf::from("/etc/oxydra"),
            PathBuf::from("/xdg/oxydra"),
            PathBuf::from("/project/.oxydra"),
        ]
    );
    let env = Environment::from_pairs([("HOME", "/home/a")]);
    let sources = ConfigSources::standard(Path::new("/p"), env);
    assert_eq!(sources.dirs[1], PathBuf::from("/home/a/.config/oxydra"));
}

#[test]
fn malformed_environment_keys_are_named() {
    let layers = Layers::new();
    let err = layers
        .load_with_env(&[("OXYDRA__RUNTIME____MAX_TURNS", "3")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("OXYDRA__RUNTIME____MAX_TURNS"), "{err}");
    assert!(err.contains("single `__`"), "{err}");
}
