//! The shipped example configurations load and validate, so the README's
//! commands work with them as they are.

use std::path::Path;

use types::ModelCatalog;
use types::config::{CliOverrides, ConfigSources, Environment, LoadedConfig};
use types::runner::{RunnerGlobalConfig, RunnerUserConfig};

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
}

fn agent_config(dir: &Path) -> types::AgentConfig {
    let sources = ConfigSources {
        dirs: vec![dir.to_owned()],
        env: Environment::default(),
    };
    let loaded = LoadedConfig::load(&sources, &CliOverrides::default()).unwrap();
    loaded.config.validate(ModelCatalog::pinned()).unwrap();
    loaded.config
}

#[test]
fn example_configurations_load_and_validate() {
    let config = agent_config(&examples().join("config"));
    assert_eq!(config.selection.provider.as_deref(), Some("openai"));
    let runner = RunnerGlobalConfig::load(&examples().join("config/runner.toml")).unwrap();
    let user = runner.select_user(None).unwrap();
    RunnerUserConfig::load(&runner.users[user].config_path).unwrap();

    let offline = agent_config(&examples().join("offline"));
    assert_eq!(offline.selection.provider.as_deref(), Some("fake"));
}
