//! The runner's view of one user: `runner.toml`, the selected user and
//! their configuration file, the sandbox tier, the layered agent
//! configuration, the resolved credentials, and the bootstrap envelope
//! built from all of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use types::config::{
    CliOverrides, ConfigSources, Environment, GENERIC_API_KEY_ENV, LoadedConfig, SearchConfig,
};
use types::protocol::bootstrap::{
    ApprovalPolicy, EgressPolicy, RunnerBootstrapEnvelope, RunnerRuntimePolicy, ShellMode,
    StartupDegradedReason, StartupStatusReport,
};
use types::runner::{CredentialRef, RunnerGlobalConfig, RunnerUserConfig, SandboxTier};
use types::{AgentConfig, SecretString, UserId};

use super::container::spec::{GUEST_WORKSPACE, PairSpec, container_prefix};
use super::models::{EffectiveEmbedding, ModelStore};
use super::paths::RunnerPaths;
use super::{HostError, RUNNER_BIN};

/// The tier a start uses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierChoice {
    pub tier: SandboxTier,
    pub origin: TierOrigin,
}

/// Where the tier came from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierOrigin {
    InsecureFlag,
    UserOverride,
    RunnerDefault,
}

impl std::fmt::Display for TierOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InsecureFlag => "forced by --insecure",
            Self::UserOverride => "the user's overrides.tier",
            Self::RunnerDefault => "default_tier of runner.toml",
        })
    }
}

/// `runner.toml`, the selected user and that user's configuration.
#[derive(Debug, Clone)]
pub struct RunnerContext {
    /// `--config` as the operator wrote it, for suggested commands.
    pub config_arg: PathBuf,
    /// The same file as an absolute path.
    pub config_path: PathBuf,
    pub runner: RunnerGlobalConfig,
    pub user: UserId,
    pub user_config_path: PathBuf,
    pub user_config: RunnerUserConfig,
    pub paths: RunnerPaths,
    /// `--provider`, `--model`, `--set`: the highest agent-config layer.
    pub overrides: CliOverrides,
}

impl RunnerContext {
    /// Loads `runner.toml` and the user's configuration, and picks the user
    /// (`requested`, or the only one configured).
    pub fn load(config_arg: &Path, requested: Option<&str>) -> Result<Self, HostError> {
        let config_path = std::path::absolute(config_arg)
            .map_err(|e| HostError::io("cannot resolve the path", config_arg, e))?;
        let runner = RunnerGlobalConfig::load(&config_path)?;
        let user = runner.select_user(requested)?.clone();
        let user_config_path = runner.users[&user].config_path.clone();
        let user_config = RunnerUserConfig::load(&user_config_path)?;
        let paths = RunnerPaths::new(&runner.workspace_root, &user);
        Ok(Self {
            config_arg: config_arg.to_owned(),
            config_path,
            runner,
            user,
            user_config_path,
            user_config,
            paths,
            overrides: CliOverrides::default(),
        })
    }

    /// The command-line layer of the agent configuration.
    pub fn with_overrides(mut self, overrides: CliOverrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// `oxydra-runner --config <path> --user <user>` followed by `rest`.
    pub fn command(&self, rest: &str) -> String {
        format!(
            "{RUNNER_BIN} --config {} --user {} {rest}",
            self.config_arg.display(),
            self.user
        )
    }

    /// The user's override, else the runner's default; `--insecure` forces
    /// the process tier.
    pub fn tier(&self, insecure: bool) -> TierChoice {
        let (tier, origin) = if insecure {
            (SandboxTier::Process, TierOrigin::InsecureFlag)
        } else if let Some(tier) = self.user_config.overrides.tier {
            (tier, TierOrigin::UserOverride)
        } else {
            (self.runner.default_tier, TierOrigin::RunnerDefault)
        };
        TierChoice { tier, origin }
    }

    /// The tier, refused unless this build has its backend (process and
    /// container), and the user configuration checked against it.
    pub fn launchable_tier(&self, insecure: bool) -> Result<TierChoice, HostError> {
        let choice = self.tier(insecure);
        let mounts = &self.user_config.mounts;
        match choice.tier {
            SandboxTier::Process => {
                if mounts.shared.is_some() || mounts.tmp.is_some() || mounts.vault.is_some() {
                    return Err(HostError::Unsupported(format!(
                        "[mounts] in {} replaces workspace directories, which only the container tier supports; remove it to run user '{}' on the process tier",
                        self.user_config_path.display(),
                        self.user
                    )));
                }
            }
            SandboxTier::Container => {
                if mounts.tmp.is_some() {
                    return Err(HostError::Unsupported(format!(
                        "[mounts] tmp in {}: the runner and the guest exchange the endpoint and bootstrap files in the workspace's tmp, so it cannot be replaced; remove the key",
                        self.user_config_path.display()
                    )));
                }
            }
            SandboxTier::MicroVm => {
                return Err(HostError::TierUnavailable {
                    tier: choice.tier,
                    origin: choice.origin.to_string(),
                });
            }
        }
        if let Some(cpus) = self.user_config.resources.cpus
            && !(cpus.is_finite() && cpus > 0.0)
        {
            return Err(HostError::Unsupported(format!(
                "[resources] cpus in {} must be a positive number, got {cpus}",
                self.user_config_path.display()
            )));
        }
        Ok(choice)
    }

    /// The container pair of this user: images from `runner.toml`, mount
    /// overrides (relative to the user's file) checked to be directories,
    /// and the id the guests run as (`run_as`).
    pub fn pair_spec(&self, run_as: (u32, u32)) -> Result<PairSpec, HostError> {
        let base = self.user_config_path.parent().unwrap_or(Path::new("."));
        let resolve = |key: &str, path: &Option<PathBuf>| -> Result<Option<PathBuf>, HostError> {
            let Some(path) = path else { return Ok(None) };
            let path = base.join(path);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => Ok(Some(path)),
                Ok(_) => Err(HostError::Unsupported(format!(
                    "[mounts] {key} in {}: {} is not a directory",
                    self.user_config_path.display(),
                    path.display()
                ))),
                Err(e) => Err(HostError::Unsupported(format!(
                    "[mounts] {key} in {}: {}: {e}",
                    self.user_config_path.display(),
                    path.display()
                ))),
            }
        };
        let workspace = &self.paths.user_workspace;
        let shared = resolve("shared", &self.user_config.mounts.shared)?
            .unwrap_or_else(|| workspace.join("shared"));
        let vault_override = resolve("vault", &self.user_config.mounts.vault)?;
        let prefix = container_prefix(&self.user, workspace);
        let images = &self.runner.guest_images;
        Ok(PairSpec {
            user: self.user.clone(),
            agent_name: format!("{prefix}-vm"),
            shell_name: format!("{prefix}-shell"),
            agent_image: images.oxydra_vm_image().to_owned(),
            shell_image: images.shell_vm_image().to_owned(),
            run_as,
            workspace: workspace.clone(),
            shared,
            vault_override,
            bootstrap_dir: self.paths.bootstrap_dir(),
            ipc_dir: self.paths.ipc_dir(),
            resources: self.user_config.resources.clone(),
            shell_network: self.user_config.network.shell,
            rust_log: std::env::var("RUST_LOG").ok(),
            model_dir: None,
        })
    }

    /// The configuration layers: the standard ones for `cwd`, plus the
    /// directory of `runner.toml` when it is not `<cwd>/.oxydra` already.
    pub fn config_sources(&self, cwd: &Path, env: Environment) -> ConfigSources {
        let mut sources = ConfigSources::standard(cwd, env);
        if let Some(dir) = self.config_path.parent() {
            let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            };
            if !sources.dirs.iter().any(|known| same(known, dir)) {
                sources.dirs.push(dir.to_owned());
            }
        }
        sources
    }

    /// Loads the merged agent configuration (not validated: the guest
    /// does that, and `config check`).
    pub fn load_agent_config(
        &self,
        cwd: &Path,
        env: &Environment,
    ) -> Result<LoadedConfig, HostError> {
        let sources = self.config_sources(cwd, env.clone());
        Ok(LoadedConfig::load(&sources, &self.overrides)?)
    }

    /// The embedder a guest with `agent`'s configuration uses (`None`
    /// with memory disabled): `auto` resolved against the models installed
    /// under the workspace root.
    pub fn effective_embedding(&self, agent: &AgentConfig) -> Option<EffectiveEmbedding> {
        agent
            .memory
            .enabled
            .then(|| ModelStore::new(&self.runner.workspace_root).resolve(&agent.memory.embedding))
    }

    /// The credentials handed to the guest: every entry of the user's
    /// configuration (a missing one is an error), then, when set in the
    /// runner's environment and not named already, each provider entry's
    /// key variable, `API_KEY`, and the Brave search key variable.
    pub fn resolve_credentials(
        &self,
        agent: &AgentConfig,
        env: &Environment,
    ) -> Result<BTreeMap<String, SecretString>, HostError> {
        let mut credentials = BTreeMap::new();
        let base = self.user_config_path.parent().unwrap_or(Path::new("."));
        for (name, reference) in &self.user_config.credentials {
            let value = self.resolve_one(name, reference, base, env)?;
            credentials.insert(name.clone(), value);
        }
        let mut convenience: Vec<&str> = agent
            .providers
            .values()
            .map(|entry| entry.api_key_env_name())
            .collect();
        convenience.push(GENERIC_API_KEY_ENV);
        if let Some(SearchConfig::Brave { api_key_env, .. }) = &agent.tools.web.search {
            convenience.push(api_key_env);
        }
        for name in convenience {
            if credentials.contains_key(name) {
                continue;
            }
            if let Some(value) = env.get(name).filter(|v| !v.trim().is_empty()) {
                credentials.insert(name.to_owned(), SecretString::new(value));
            }
        }
        Ok(credentials)
    }

    /// One secret the runner itself uses (a channel's token), resolved
    /// like the user's credentials; `name` is its configuration key.
    pub fn resolve_credential(
        &self,
        name: &str,
        reference: &CredentialRef,
        env: &Environment,
    ) -> Result<SecretString, HostError> {
        let base = self.user_config_path.parent().unwrap_or(Path::new("."));
        self.resolve_one(name, reference, base, env)
    }

    fn resolve_one(
        &self,
        name: &str,
        reference: &CredentialRef,
        base: &Path,
        env: &Environment,
    ) -> Result<SecretString, HostError> {
        let error = |source_desc: String, problem: String| HostError::Credential {
            user: self.user.to_string(),
            name: name.to_owned(),
            source_desc,
            problem,
        };
        match reference {
            CredentialRef::Env(var) => env
                .get(var)
                .filter(|v| !v.trim().is_empty())
                .map(SecretString::new)
                .ok_or_else(|| {
                    error(
                        format!("environment variable {var}"),
                        format!("{var} is not set in the runner's environment"),
                    )
                }),
            CredentialRef::File(path) => {
                let path = base.join(path);
                let source_desc = format!("file {}", path.display());
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| error(source_desc.clone(), format!("cannot read it: {e}")))?;
                let value = text.trim();
                if value.is_empty() {
                    return Err(error(source_desc, "the file is empty".to_owned()));
                }
                Ok(SecretString::new(value))
            }
        }
    }

    /// The envelope for `tier`. The process tier runs without a shell and
    /// says it is insecure; the container tier's shell fields are filled
    /// in at launch, once the sidecar answered (or did not).
    pub fn envelope(
        &self,
        tier: SandboxTier,
        agent_config: AgentConfig,
        credentials: BTreeMap<String, SecretString>,
    ) -> RunnerBootstrapEnvelope {
        let (workspace_root, degraded_reasons) = match tier {
            SandboxTier::Process => (
                self.paths.user_workspace.clone(),
                vec![StartupDegradedReason::InsecureProcessTier],
            ),
            SandboxTier::Container | SandboxTier::MicroVm => {
                (PathBuf::from(GUEST_WORKSPACE), Vec::new())
            }
        };
        RunnerBootstrapEnvelope {
            user_id: self.user.clone(),
            sandbox_tier: tier,
            workspace_root,
            sidecar_endpoint: None,
            runtime_policy: RunnerRuntimePolicy {
                shell_mode: ShellMode::Disabled,
                approval: ApprovalPolicy::Ask,
                egress: EgressPolicy::DefaultSafe,
                disabled_tools: self.user_config.overrides.disabled_tools.clone(),
            },
            startup_status: StartupStatusReport {
                sidecar_available: false,
                shell_available: false,
                browser_available: false,
                degraded_reasons,
            },
            agent_config,
            credentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use types::ProviderType;
    use types::config::ProviderEntry;

    fn setup(user_toml: &str) -> (tempfile::TempDir, RunnerContext) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("users")).unwrap();
        fs::write(
            dir.path().join("runner.toml"),
            "workspace_root = \"ws\"\ndefault_tier = \"container\"\n[users.alice]\nconfig_path = \"users/alice.toml\"\n",
        )
        .unwrap();
        fs::write(dir.path().join("users/alice.toml"), user_toml).unwrap();
        let context = RunnerContext::load(&dir.path().join("runner.toml"), None).unwrap();
        (dir, context)
    }

    #[test]
    fn tier_comes_from_flag_then_user_then_runner() {
        let (_dir, context) = setup("");
        assert_eq!(context.tier(false).tier, SandboxTier::Container);
        assert_eq!(context.tier(false).origin, TierOrigin::RunnerDefault);
        assert_eq!(context.tier(true).tier, SandboxTier::Process);
        assert_eq!(
            context.launchable_tier(false).unwrap().tier,
            SandboxTier::Container
        );
        let (_dir, context) = setup("[overrides]\ntier = \"micro_vm\"\n");
        let err = context.launchable_tier(false).unwrap_err().to_string();
        assert_eq!(
            err,
            "sandbox tier 'micro_vm' (the user's overrides.tier) is not available in this build yet; start with --insecure to use the process tier"
        );
        let (_dir, context) = setup("[overrides]\ntier = \"process\"\n");
        assert_eq!(
            context.launchable_tier(false).unwrap().origin,
            TierOrigin::UserOverride
        );
        let (_dir, context) = setup("[mounts]\nshared = \"/data\"\n");
        let err = context.launchable_tier(true).unwrap_err().to_string();
        assert!(
            err.contains("[mounts]") && err.contains("alice.toml"),
            "{err}"
        );
        assert!(context.launchable_tier(false).is_ok());
        let (_dir, context) = setup("[mounts]\ntmp = \"/data\"\n");
        let err = context.launchable_tier(false).unwrap_err().to_string();
        assert!(err.contains("[mounts] tmp"), "{err}");
        let (_dir, context) = setup("[resources]\ncpus = 0.0\n");
        let err = context.launchable_tier(false).unwrap_err().to_string();
        assert!(err.contains("cpus") && err.contains("positive"), "{err}");
    }

    #[test]
    fn pair_spec_resolves_overrides_and_names_the_pair() {
        let (dir, context) =
            setup("[mounts]\nshared = \"../data\"\n[network]\nshell = \"bridge\"\n");
        let err = context.pair_spec((1, 2)).unwrap_err().to_string();
        assert!(
            err.contains("[mounts] shared") && err.contains("data"),
            "{err}"
        );
        fs::create_dir_all(dir.path().join("data")).unwrap();
        let spec = context.pair_spec((1000, 1000)).unwrap();
        assert_eq!(spec.shared, dir.path().join("users/../data"));
        assert_eq!(spec.run_as, (1000, 1000));
        assert_eq!(spec.shell_network, types::runner::ShellNetwork::Bridge);
        assert!(spec.agent_name.starts_with("oxydra-alice-") && spec.agent_name.ends_with("-vm"));
        assert_eq!(spec.agent_image, "oxydra-vm:local");
        let envelope = context.envelope(
            SandboxTier::Container,
            AgentConfig::default(),
            BTreeMap::new(),
        );
        assert_eq!(envelope.workspace_root, Path::new(GUEST_WORKSPACE));
        assert!(envelope.startup_status.degraded_reasons.is_empty());
    }

    #[test]
    fn credentials_from_user_config_then_runner_environment() {
        let (dir, context) = setup(
            "[credentials]\nOPENAI_API_KEY = { env = \"ALICE_KEY\" }\nEXTRA = { file = \"extra.key\" }\n",
        );
        fs::write(dir.path().join("users/extra.key"), "  s3cret\n").unwrap();
        let mut agent = AgentConfig::default();
        agent
            .providers
            .insert("claude".into(), ProviderEntry::new(ProviderType::Anthropic));
        let env = Environment::from_pairs([
            ("ALICE_KEY", "sk-alice"),
            ("OPENAI_API_KEY", "sk-runner"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("UNRELATED", "x"),
        ]);
        let credentials = context.resolve_credentials(&agent, &env).unwrap();
        let exposed: BTreeMap<&str, &str> = credentials
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(
            exposed,
            BTreeMap::from([
                ("ANTHROPIC_API_KEY", "sk-ant"),
                ("EXTRA", "s3cret"),
                ("OPENAI_API_KEY", "sk-alice"),
            ])
        );
    }

    #[test]
    fn missing_credentials_name_user_credential_and_source() {
        let (_dir, context) = setup("[credentials]\nOPENAI_API_KEY = { env = \"ALICE_KEY\" }\n");
        let err = context
            .resolve_credentials(&AgentConfig::default(), &Environment::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "credential OPENAI_API_KEY of user 'alice' (environment variable ALICE_KEY): ALICE_KEY is not set in the runner's environment"
        );
        let (dir, context) = setup("[credentials]\nTOKEN = { file = \"missing.key\" }\n");
        let err = context
            .resolve_credentials(&AgentConfig::default(), &Environment::default())
            .unwrap_err()
            .to_string();
        let expected = format!(
            "credential TOKEN of user 'alice' (file {}): cannot read it",
            dir.path().join("users/missing.key").display()
        );
        assert!(err.starts_with(&expected), "{err}");
    }

    #[test]
    fn envelope_is_the_process_tier_contract() {
        let (_dir, context) = setup("[overrides]\ndisabled_tools = [\"web_fetch\"]\n");
        let envelope = context.envelope(
            SandboxTier::Process,
            AgentConfig::default(),
            BTreeMap::new(),
        );
        assert!(envelope.workspace_root.is_absolute());
        assert!(envelope.workspace_root.ends_with("ws/alice"));
        assert_eq!(envelope.runtime_policy.shell_mode, ShellMode::Disabled);
        assert_eq!(envelope.runtime_policy.disabled_tools, ["web_fetch"]);
        assert_eq!(
            envelope.startup_status.degraded_reasons,
            [StartupDegradedReason::InsecureProcessTier]
        );
        assert!(envelope.sidecar_endpoint.is_none());
    }

    #[test]
    fn runner_directory_is_an_extra_config_layer_unless_it_is_cwd_oxydra() {
        let (dir, context) = setup("");
        let sources = context.config_sources(dir.path(), Environment::default());
        assert_eq!(sources.dirs.last().unwrap(), dir.path());
        let oxydra = dir.path().join(".oxydra");
        fs::create_dir_all(&oxydra).unwrap();
        fs::copy(dir.path().join("runner.toml"), oxydra.join("runner.toml")).unwrap();
        fs::create_dir_all(oxydra.join("users")).unwrap();
        fs::write(oxydra.join("users/alice.toml"), "").unwrap();
        let context = RunnerContext::load(&oxydra.join("runner.toml"), None).unwrap();
        let sources = context.config_sources(dir.path(), Environment::default());
        assert_eq!(sources.dirs.last().unwrap(), &oxydra);
        assert_eq!(sources.dirs.iter().filter(|d| **d == oxydra).count(), 1);
    }
}
