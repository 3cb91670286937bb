//! `shell-daemon`: serves shell sessions on a Unix socket (or, with the
//! `vsock` feature, a vsock port) until SIGTERM or SIGINT, then kills every
//! session and removes the socket.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgGroup, Parser};
#[cfg(feature = "vsock")]
use shell_daemon::bind_vsock;
use shell_daemon::{DaemonConfig, LOG_ENV, READY_PREFIX, SessionManager, bind_socket, serve};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Smallest frame limit that still fits every response shape.
const MIN_FRAME_BYTES: usize = 4096;

/// Oxydra's shell sidecar: runs shell sessions for `oxydra-vm` over a
/// length-prefixed JSON protocol.
#[derive(Debug, Parser)]
#[command(
    version,
    group(ArgGroup::new("listen").required(true).multiple(false))
)]
struct Args {
    /// Unix socket to listen on (created mode 0600; a stale one is replaced).
    #[arg(long, group = "listen", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// vsock port to listen on, on every context id of this machine
    /// (VMADDR_CID_ANY): the microVM tier, where the host connects to the
    /// guest's CID and this port. Ports below 1024 need
    /// CAP_NET_BIND_SERVICE.
    #[cfg(feature = "vsock")]
    #[arg(long, group = "listen", value_name = "PORT")]
    vsock_port: Option<u32>,
    /// Working directory of sessions spawned without one; relative session
    /// directories are resolved against it.
    #[arg(long, default_value = "/")]
    working_dir: PathBuf,
    /// Extra variable every command gets (KEY=VALUE, repeatable). Nothing
    /// else is passed on from the daemon's own environment.
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Bytes kept of each of stdout and stderr per command.
    #[arg(long, default_value_t = 256 * 1024)]
    output_cap: usize,
    /// Largest frame accepted or sent.
    #[arg(long, default_value_t = types::protocol::framing::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Time limit of commands sent without one, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    default_timeout_ms: u64,
    /// Largest time limit a command may ask for, in milliseconds.
    #[arg(long, default_value_t = 3_600_000)]
    max_timeout_ms: u64,
    /// Seconds after which a session with no running command is removed.
    #[arg(long, default_value_t = 1800)]
    idle_timeout_secs: u64,
    /// Live sessions at once.
    #[arg(long, default_value_t = 64)]
    max_sessions: usize,
    /// Client connections served at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
}

fn parse_env(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{raw}'")),
    }
}

/// Where the daemon listens (exactly one of `--socket`, `--vsock-port`).
#[derive(Debug)]
enum Listen {
    Unix(PathBuf),
    #[cfg(feature = "vsock")]
    Vsock(u32),
}

impl Args {
    fn listen(&self) -> anyhow::Result<Listen> {
        #[cfg(feature = "vsock")]
        if let Some(port) = self.vsock_port {
            return Ok(Listen::Vsock(port));
        }
        match &self.socket {
            Some(path) => Ok(Listen::Unix(path.clone())),
            None => bail!("say where to listen: --socket PATH or --vsock-port PORT"),
        }
    }

    fn config(&self) -> anyhow::Result<DaemonConfig> {
        if self.max_frame_bytes < MIN_FRAME_BYTES {
            bail!("--max-frame-bytes must be at least {MIN_FRAME_BYTES}");
        }
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            bail!("--default-timeout-ms must be between 1 and --max-timeout-ms");
        }
        if self.max_sessions == 0 || self.max_connections == 0 {
            bail!("--max-sessions and --max-connections must be at least 1");
        }
        let working_dir = self
            .working_dir
            .canonicalize()
            .with_context(|| format!("--working-dir {}", self.working_dir.display()))?;
        Ok(DaemonConfig {
            default_working_dir: working_dir,
            extra_env: self.env.clone(),
            max_frame_bytes: self.max_frame_bytes,
            output_cap: self.output_cap,
            default_timeout: Duration::from_millis(self.default_timeout_ms),
            max_timeout: Duration::from_millis(self.max_timeout_ms),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_sessions: self.max_sessions,
            max_connections: self.max_connections,
            ..DaemonConfig::default()
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = args.config()?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let manager = SessionManager::new(config);
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    };
    match args.listen()? {
        Listen::Unix(path) => {
            let socket = bind_socket(&path).await?;
            announce(&socket.path().display())?;
            // `serve` consumes the socket; dropping it at the end removes
            // the file.
            serve(socket, manager, shutdown).await;
        }
        #[cfg(feature = "vsock")]
        Listen::Vsock(port) => {
            let listener = bind_vsock(port)?;
            announce(&format_args!("vsock port {}", listener.port()))?;
            serve(listener, manager, shutdown).await;
        }
    }
    Ok(())
}

/// Logs and prints the ready line (`READY_PREFIX` and where the daemon
/// listens), which launchers wait for.
fn announce(address: &dyn std::fmt::Display) -> anyhow::Result<()> {
    tracing::info!(%address, "shell daemon ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{READY_PREFIX}{address}")?;
    stdout.flush()?;
    Ok(())
}
