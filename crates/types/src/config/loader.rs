//! Layered loading with figment. Later layers override earlier ones:
//!
//! 1. built-in defaults (`AgentConfig::default()`)
//! 2. `/etc/oxydra/{agent,providers}.toml`
//! 3. `~/.config/oxydra/{agent,providers}.toml`
//! 4. `.oxydra/{agent,providers}.toml`
//! 5. `OXYDRA__` environment variables, `__` nesting
//! 6. command-line overrides
//!
//! Every layer is a figment provider with its own metadata, so each
//! effective value can be traced back to its source (see `explain`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::AgentConfig;
use crate::error::ConfigError;

/// Prefix of configuration environment variables.
pub const CONFIG_ENV_PREFIX: &str = "OXYDRA__";
/// Nesting separator inside configuration environment variable names.
const ENV_NESTING: &str = "__";
/// The files read from each configuration directory, in order.
const CONFIG_FILES: [&str; 2] = ["agent.toml", "providers.toml"];
/// Top-level tables that make a file a profiled file.
const PROFILE_TABLES: [&str; 2] = ["default", "global"];
pub(super) const DEFAULTS_SOURCE: &str = "built-in defaults";
const CLI_SOURCE: &str = "command-line flags";
const ENV_SOURCE: &str = "environment";

/// A snapshot of environment variables. Loading reads variables only
/// from here, so a test can hand in exactly the variables it means without
/// touching the (process-global) environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The current process environment (variables that are not valid
    /// Unicode are skipped).
    pub fn process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

/// Where configuration is read from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// Directories holding `agent.toml` / `providers.toml`, lowest
    /// precedence first. Missing directories and files are skipped.
    pub dirs: Vec<PathBuf>,
    /// Variables to read `OXYDRA__*` settings from (empty: none).
    pub env: Environment,
}

impl ConfigSources {
    /// The standard layers: `/etc/oxydra`, the user's `~/.config/oxydra`
    /// (`$XDG_CONFIG_HOME/oxydra` when set), `<workspace>/.oxydra`, and the
    /// `OXYDRA__*` variables of `env`.
    pub fn standard(workspace: &Path, env: Environment) -> Self {
        let user_config_home = env
            .get("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                env.get("HOME")
                    .map(|home| PathBuf::from(home).join(".config"))
            });
        let mut dirs = vec![PathBuf::from("/etc/oxydra")];
        dirs.extend(user_config_home.map(|dir| dir.join("oxydra")));
        dirs.push(workspace.join(".oxydra"));
        Self { dirs, env }
    }
}

/// Values given on the command line; they override every other layer.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    /// `--provider`: `selection.provider`.
    pub provider: Option<String>,
    /// `--model`: `selection.model`.
    pub model: Option<String>,
    /// `--set key=value` pairs with dotted keys (`runtime.max_turns=3`);
    /// values are parsed as TOML values, falling back to plain strings.
    pub set: Vec<String>,
}

/// The effective configuration together with the layers it came from.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: AgentConfig,
    pub(super) figment: Figment,
}

impl LoadedConfig {
    /// Loads every layer and extracts the configuration (not yet validated:
    /// call `config.validate(catalog)`).
    pub fn load(sources: &ConfigSources, cli: &CliOverrides) -> Result<Self, ConfigError> {
        let defaults = Value::serialize(AgentConfig::default())
            .map_err(|e| invalid(None, Some(DEFAULTS_SOURCE), e.to_string()))?;
        let mut figment = Figment::from(Layer::new(
            Metadata::named(DEFAULTS_SOURCE),
            into_dict(defaults),
        ));
        for dir in &sources.dirs {
            for name in CONFIG_FILES {
                let path = dir.join(name);
                if path.is_file() {
                    figment = figment.merge(file_layer(&path)?);
                }
            }
        }
        figment = figment.merge(env_layer(&sources.env)?);
        figment = figment.merge(cli_layer(cli)?);
        let config = figment
            .extract::<AgentConfig>()
            .map_err(|e| config_error(&figment, e))?;
        Ok(Self { config, figment })
    }
}

/// One configuration layer: a dictionary with the metadata of its source.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    fn new(metadata: Metadata, dict: Dict) -> Self {
        Self { metadata, dict }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.dict.clone())]))
    }
}

fn into_dict(value: Value) -> Dict {
    match value {
        Value::Dict(_, dict) => dict,
        Value::String(..)
        | Value::Char(..)
        | Value::Bool(..)
        | Value::Num(..)
        | Value::Empty(..)
        | Value::Array(..) => Dict::new(),
    }
}

/// Reads one TOML file. A profiled file (top-level `[default]` and/or
/// `[global]`) contributes `[default]` with `[global]` merged over it.
/// Deliberately not figment's `nested()`: figment applies `[global]` above
/// *every* layer, so a system file's `[global]` would beat the user's
/// environment and flags — the layering must stay deterministic.
fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    let profiled = PROFILE_TABLES.iter().any(|p| table.contains_key(*p));
    let table = if profiled {
        flatten_profiles(path, table)?
    } else {
        table
    };
    let value = Value::serialize(table).map_err(|e| file_error(e.to_string()))?;
    Ok(Layer::new(
        Metadata::from("TOML file", Source::File(path.to_owned())),
        into_dict(value),
    ))
}

fn flatten_profiles(path: &Path, mut table: toml::Table) -> Result<toml::Table, ConfigError> {
    if let Some(stray) = table.keys().find(|k| !PROFILE_TABLES.contains(&k.as_str())) {
        return Err(invalid(
            Some(stray),
            Some(&path.display().to_string()),
            "a profiled file (one with a top-level [default] or [global] table) may only contain [default] and [global]".to_owned(),
        ));
    }
    let mut merged = toml::Table::new();
    for profile in PROFILE_TABLES {
        match table.remove(profile) {
            Some(toml::Value::Table(values)) => merge_tables(&mut merged, values),
            Some(other) => {
                return Err(invalid(
                    Some(profile),
                    Some(&path.display().to_string()),
                    format!("[{profile}] must be a table, found {}", other.type_str()),
                ));
            }
            None => {}
        }
    }
    Ok(merged)
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else
/// is replaced.
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => {
                merge_tables(base_table, over_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `OXYDRA__RUNTIME__MAX_TURNS=10` → `runtime.max_turns = 10`.
fn env_layer(env: &Environment) -> Result<Layer, ConfigError> {
    let mut pairs = Vec::new();
    for (name, raw) in &env.vars {
        let Some(rest) = name.strip_prefix(CONFIG_ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = rest
            .split(ENV_NESTING)
            .map(str::to_ascii_lowercase)
            .collect();
        if parts.iter().any(String::is_empty) {
            return Err(invalid(
                Some(name),
                Some(ENV_SOURCE),
                format!("nest keys with a single `{ENV_NESTING}`, e.g. OXYDRA__RUNTIME__MAX_TURNS"),
            ));
        }
        pairs.push((parts, parse_value(raw.trim())));
    }
    dotted_layer(ENV_SOURCE, pairs)
}

fn cli_layer(cli: &CliOverrides) -> Result<Layer, ConfigError> {
    let mut pairs = Vec::new();
    let key = |dotted: &str| dotted.split('.').map(str::to_owned).collect::<Vec<_>>();
    if let Some(provider) = &cli.provider {
        pairs.push((
            key("selection.provider"),
            toml::Value::String(provider.clone()),
        ));
    }
    if let Some(model) = &cli.model {
        pairs.push((key("selection.model"), toml::Value::String(model.clone())));
    }
    for assignment in &cli.set {
        let (name, raw) = assignment.split_once('=').ok_or_else(|| {
            invalid(
                Some(assignment),
                Some(CLI_SOURCE),
                "expected --set key=value".to_owned(),
            )
        })?;
        let parts = key(name.trim());
        if parts.iter().any(String::is_empty) {
            return Err(invalid(
                Some(name.trim()),
                Some(CLI_SOURCE),
                "keys are dotted names such as runtime.max_turns".to_owned(),
            ));
        }
        pairs.push((parts, parse_value(raw.trim())));
    }
    dotted_layer(CLI_SOURCE, pairs)
}

/// A layer from (key path, value) pairs; later pairs win.
fn dotted_layer(
    name: &'static str,
    pairs: Vec<(Vec<String>, toml::Value)>,
) -> Result<Layer, ConfigError> {
    let mut root = toml::Table::new();
    for (mut parts, value) in pairs {
        let mut nested = value;
        while let Some(part) = parts.pop() {
            nested = toml::Value::Table(toml::Table::from_iter([(part, nested)]));
        }
        if let toml::Value::Table(table) = nested {
            merge_tables(&mut root, table);
        }
    }
    let value = Value::serialize(root).map_err(|e| invalid(None, Some(name), e.to_string()))?;
    Ok(Layer::new(Metadata::named(name), into_dict(value)))
}

/// Values of flags and variables: `3` → integer, `true` → bool,
/// `[1, 2]` → array, `gpt-4.1` → string.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn invalid(key: Option<&str>, source: Option<&str>, message: String) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.map(str::to_owned),
        source_name: source.map(str::to_owned),
        message,
    }
}

/// Describes where the value at `key` came from: a file path, the exact
/// environment variable, the command line or the defaults.
pub(super) fn describe_source(figment: &Figment, key: &str) -> String {
    let Some(metadata) = figment.find_metadata(key) else {
        return DEFAULTS_SOURCE.to_owned();
    };
    match &metadata.source {
        Some(Source::File(path)) => path.display().to_string(),
        Some(Source::Code(_)) | Some(Source::Custom(_)) | None => {
            if metadata.name == ENV_SOURCE {
                format!("environment variable {}", env_var_name(key))
            } else {
                metadata.name.to_string()
            }
        }
        // `Source` is non-exhaustive; name the provider when its kind is new.
        Some(_) => metadata.name.to_string(),
    }
}

/// The `OXYDRA__` variable that sets `key` (figment's own interpolation
/// forgets the prefix and the `__` nesting).
fn env_var_name(key: &str) -> String {
    let nested: Vec<String> = key.split('.').map(str::to_ascii_uppercase).collect();
    format!("{CONFIG_ENV_PREFIX}{}", nested.join(ENV_NESTING))
}

/// Turns figment's error into a `ConfigError` naming the key and its source.
fn config_error(figment: &Figment, error: figment::Error) -> ConfigError {
    let mut path = error.path.clone();
    if let figment::error::Kind::UnknownField(field, _) = &error.kind {
        if path.last() != Some(field) {
            path.push(field.clone());
        }
        let key = path.join(".");
        return ConfigError::UnknownKey {
            source_name: describe_source(figment, &key),
            key,
        };
    }
    let key = (!path.is_empty()).then(|| path.join("."));
    let source_name = key.as_deref().map(|key| describe_source(figment, key));
    ConfigError::InvalidValue {
        key,
        source_name,
        message: error.kind.to_string(),
    }
}
