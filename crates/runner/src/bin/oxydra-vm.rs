//! `oxydra-vm`: the guest process (see `runner::guest`). Started by
//! `oxydra-runner` with the bootstrap envelope on stdin (`--bootstrap-stdin`)
//! or in a file named by `OXYDRA_BOOTSTRAP_FILE`; serves until SIGTERM or
//! SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use runner::guest::{self, GuestError, envelope};
use sandbox::hardening::{FilesystemRules, harden_current_process};
use sandbox::wasm::{GuestSource, ModuleCache, WasmWasiToolRunner};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;
use types::config::EmbeddingConfig;
use types::protocol::bootstrap::{BOOTSTRAP_FILE_ENV, RunnerBootstrapEnvelope};
use types::runner::SandboxTier;

/// The Oxydra guest: gateway, runtime, memory and tools for one user.
/// Normally started by `oxydra-runner`, never by hand.
#[derive(Debug, Parser)]
#[command(name = "oxydra-vm", version)]
struct Args {
    /// Read the bootstrap envelope from stdin (a 4-byte big-endian length,
    /// then that many bytes of JSON). Without it, the envelope is read from
    /// the file named by OXYDRA_BOOTSTRAP_FILE.
    #[arg(long)]
    bootstrap_stdin: bool,
    /// Compile the WASM file-tool guest into the compiled-module cache
    /// ($XDG_CACHE_HOME/oxydra/wasm, else $HOME/.cache/oxydra/wasm) and
    /// exit, so a guest's first file call loads it instead of compiling.
    /// oxydra-runner runs this before it starts a guest.
    #[arg(long, conflicts_with = "bootstrap_stdin")]
    compile_wasm: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if args.compile_wasm {
        return compile_wasm();
    }
    match read_envelope(&args).and_then(|envelope| {
        harden(&envelope)?;
        run(envelope)
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oxydra-vm: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}

/// `--compile-wasm`: one line on stdout saying where the compiled guest
/// is, or the reason on stderr and exit status 1.
fn compile_wasm() -> ExitCode {
    match WasmWasiToolRunner::compile_ahead(&ModuleCache::default()) {
        Ok(load) => {
            let dir = load
                .cache_dir
                .as_deref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            match load.source {
                GuestSource::Compiled => println!(
                    "oxydra-vm: compiled the WASM guest into {dir} in {} ms",
                    load.took.as_millis()
                ),
                GuestSource::Cache => {
                    println!("oxydra-vm: the WASM guest is already compiled in {dir}")
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("oxydra-vm: cannot compile the WASM guest ahead: {error}");
            ExitCode::FAILURE
        }
    }
}

fn read_envelope(args: &Args) -> Result<RunnerBootstrapEnvelope, GuestError> {
    if args.bootstrap_stdin {
        return envelope::read_from_stream(&mut std::io::stdin().lock());
    }
    match std::env::var_os(BOOTSTRAP_FILE_ENV) {
        Some(path) => envelope::read_from_file(&PathBuf::from(path)),
        None => Err(GuestError::Envelope(format!(
            "no bootstrap envelope: pass --bootstrap-stdin or set {BOOTSTRAP_FILE_ENV} \
             (oxydra-vm is started by oxydra-runner, not by hand)"
        ))),
    }
}

/// Process tier: restricts this process with Landlock to its workspace,
/// its compiled-module cache and read-only system paths, and logs exactly
/// what took effect. Runs while this is the only thread (Landlock binds the
/// calling thread and the threads it starts later). Other tiers are
/// isolated by their container or VM.
fn harden(envelope: &RunnerBootstrapEnvelope) -> Result<(), GuestError> {
    if envelope.sandbox_tier != SandboxTier::Process {
        return Ok(());
    }
    let root = &envelope.workspace_root;
    // The rules can only name directories that exist.
    std::fs::create_dir_all(root).map_err(|e| GuestError::Workspace {
        path: root.display().to_string(),
        message: e.to_string(),
    })?;
    let mut extra_read_only = Vec::new();
    if let EmbeddingConfig::Semantic { model_dir, .. } = &envelope.agent_config.memory.embedding {
        extra_read_only.push(model_dir.clone());
    }
    let mut rules = FilesystemRules::for_guest(root, &extra_read_only);
    if let Some(cache) = ModuleCache::default().dir()
        && std::fs::create_dir_all(&cache).is_ok()
    {
        rules.read_write.push(cache);
    }
    let report = harden_current_process(&rules);
    if report.landlock_enforced() {
        tracing::info!("hardening: {report}");
    } else {
        tracing::warn!("hardening: {report}");
    }
    Ok(())
}

/// Builds the async runtime only now, after the envelope was read on this
/// (still the only) thread.
fn run(envelope: RunnerBootstrapEnvelope) -> Result<(), GuestError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| GuestError::Gateway(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(envelope))
}

async fn serve(envelope: RunnerBootstrapEnvelope) -> Result<(), GuestError> {
    let signal_error =
        |e: std::io::Error| GuestError::Gateway(format!("installing signal handlers: {e}"));
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let user = envelope.user_id.clone();
    let tier = envelope.sandbox_tier;
    let guest = guest::start(envelope).await?;
    let url = guest.endpoint().url;
    tracing::info!(%user, %tier, %url, endpoint_file = %guest.endpoint_file().display(), "oxydra-vm ready");
    let mut stdout = std::io::stdout();
    // The runner may have closed our stdout; serving goes on regardless.
    let _ = writeln!(stdout, "oxydra-vm ready: {url}").and_then(|()| stdout.flush());
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
    }
    guest.stop().await?;
    tracing::info!("oxydra-vm stopped");
    Ok(())
}
