//! `oxydra-runner --daemon start`: the supervisor of one user's guest. It
//! stays in the foreground, answers Health / Status / Shutdown on the Unix
//! control socket, appends the guest's output to the user's log file, and
//! starts a crashed guest again after an exponential backoff. On shutdown
//! (RPC, SIGTERM or SIGINT) it stops the guest and removes the socket and
//! the endpoint file.

use std::collections::BTreeMap;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use types::protocol::control::{
    ControlRequest, ControlResponse, GuestState, HealthReport, SupervisorStatus,
};

use super::channels::{ChannelHealth, RunnerChannels};
use super::context::RunnerContext;
use super::control::serve_connection;
use super::guest::Guest;
use super::launch::{OutputSink, describe_exit, open_append};
use super::start::Prepared;
use super::{HostError, READY_TIMEOUT, STOP_GRACE};

/// The first restart delay; it doubles after each crash.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// The longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A guest that ran this long before crashing restarts after
/// `INITIAL_BACKOFF` again.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How long open control connections get to send their last answer.
const CONNECTION_DRAIN: Duration = Duration::from_secs(1);

/// Restart delays: `INITIAL_BACKOFF`, doubling up to `MAX_BACKOFF`, and
/// back to `INITIAL_BACKOFF` after a guest that had run for `STABLE_AFTER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: INITIAL_BACKOFF,
        }
    }
}

impl Backoff {
    /// The delay before restarting a guest that ran for `guest_age`.
    pub fn after_crash(&mut self, guest_age: Duration) -> Duration {
        if guest_age >= STABLE_AFTER {
            self.next = INITIAL_BACKOFF;
        }
        let delay = self.next;
        self.next = (delay * 2).min(MAX_BACKOFF);
        delay
    }
}

/// What the guest is doing, with instants (the wire form has durations).
#[derive(Debug, Clone)]
enum Phase {
    Starting {
        pid: u32,
    },
    Running {
        pid: u32,
        since: Instant,
        url: String,
    },
    Restarting {
        at: Instant,
    },
    Stopping,
}

/// The supervisor's state shared with the control connections. The lock
/// is never held across an await.
#[derive(Debug)]
struct Shared {
    template: SupervisorStatus,
    started: Instant,
    phase: Phase,
    channels: ChannelHealth,
}

impl Shared {
    fn status(&self) -> SupervisorStatus {
        let now = Instant::now();
        let guest = match &self.phase {
            Phase::Starting { pid } => GuestState::Starting { pid: *pid },
            Phase::Running { pid, since, url } => GuestState::Running {
                pid: *pid,
                uptime_secs: now.duration_since(*since).as_secs(),
                endpoint_url: url.clone(),
            },
            Phase::Restarting { at } => GuestState::Restarting {
                retry_in_ms: u64::try_from(at.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX),
            },
            Phase::Stopping => GuestState::Stopping,
        };
        SupervisorStatus {
            supervisor_uptime_secs: now.duration_since(self.started).as_secs(),
            guest,
            channels: self.channels.snapshot(),
            ..self.template.clone()
        }
    }
}

type SharedState = Arc<Mutex<Shared>>;

fn with<T>(shared: &SharedState, f: impl FnOnce(&mut Shared) -> T) -> T {
    // A panic while holding the lock leaves plain data behind; keep going.
    let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut guard)
}

/// Runs the supervisor until shutdown. The caller checked that no other
/// runner serves the user (`start::ensure_not_running`).
pub async fn run(context: &RunnerContext, prepared: &Prepared) -> Result<(), HostError> {
    let socket = &context.paths.control_socket;
    let listener = UnixListener::bind(socket)
        .map_err(|e| HostError::io("cannot bind the control socket", socket, e))?;
    let result = supervise_with(context, prepared, listener).await;
    for path in [socket, &context.paths.endpoint_file] {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("oxydra-runner: cannot remove {}: {e}", path.display());
        }
    }
    result
}

async fn supervise_with(
    context: &RunnerContext,
    prepared: &Prepared,
    listener: UnixListener,
) -> Result<(), HostError> {
    let socket = &context.paths.control_socket;
    std::fs::set_permissions(socket, Permissions::from_mode(0o600))
        .map_err(|e| HostError::io("cannot restrict the control socket", socket, e))?;
    let signal_error =
        |e: std::io::Error| HostError::io("cannot install signal handlers for", socket, e);
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let log_file = &context.paths.log_file;
    let mut log = Log {
        file: open_append(log_file)
            .await
            .map_err(|e| HostError::io("cannot open the log file", log_file, e))?,
    };
    // The channels reach whichever guest is running through its endpoint
    // file, so they run for the supervisor's whole life.
    let channels = RunnerChannels::start(&prepared.channels, &context.paths.audit_file)?;
    let shared: SharedState = Arc::new(Mutex::new(Shared {
        template: SupervisorStatus {
            user_id: context.user.clone(),
            tier: prepared.tier.tier,
            supervisor_pid: std::process::id(),
            supervisor_uptime_secs: 0,
            guest: GuestState::Stopping,
            restarts: 0,
            last_exit: None,
            log_file: log_file.clone(),
            degraded_reasons: Vec::new(),
            channels: BTreeMap::new(),
        },
        started: Instant::now(),
        phase: Phase::Stopping,
        channels: channels.health(),
    }));
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(accept_loop(listener, Arc::clone(&shared), shutdown.clone()));
    let signals = shutdown.clone();
    tasks.spawn(async move {
        tokio::select! {
            _ = terminate.recv() => signals.cancel(),
            _ = interrupt.recv() => signals.cancel(),
            () = signals.cancelled() => {}
        }
    });
    log.line(&format!(
        "supervisor {} started for user '{}' (tier {})",
        std::process::id(),
        context.user,
        prepared.tier.tier
    ))
    .await;
    let result = supervise(context, prepared, &shared, &shutdown, &mut log).await;
    if let Err(error) = &result {
        log.line(&format!("supervisor failed: {error}")).await;
    }
    channels.shutdown().await;
    shutdown.cancel();
    // The accept loop waits for its connections (bounded), so a Shutdown
    // request gets its answer before the process exits.
    let _ = tokio::time::timeout(CONNECTION_DRAIN * 2, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    log.line("supervisor stopped").await;
    result
}

async fn supervise(
    context: &RunnerContext,
    prepared: &Prepared,
    shared: &SharedState,
    shutdown: &CancellationToken,
    log: &mut Log,
) -> Result<(), HostError> {
    let sink = OutputSink::LogFile(context.paths.log_file.clone());
    let mut backoff = Backoff::default();
    let mut first = true;
    loop {
        if !first {
            with(shared, |s| s.template.restarts += 1);
        }
        let mut guest = match Guest::launch(prepared, &context.paths, sink.clone()).await {
            Ok(guest) => guest,
            Err(error) if first => return Err(error),
            Err(error) => {
                // A restart that cannot even launch (engine restarting, …)
                // is retried like a crash.
                let delay = backoff.after_crash(Duration::ZERO);
                let message =
                    format!("cannot start the guest again ({error}); retrying in {delay:?}");
                log.line(&message).await;
                let at = Instant::now() + delay;
                with(shared, |s| s.phase = Phase::Restarting { at });
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => continue,
                    () = shutdown.cancelled() => {
                        with(shared, |s| s.phase = Phase::Stopping);
                        return Ok(());
                    }
                }
            }
        };
        let pid = guest.pid();
        let degraded = guest.degraded_reasons(prepared);
        with(shared, |s| {
            s.phase = Phase::Starting { pid };
            s.template.degraded_reasons = degraded;
        });
        log.line(&format!("guest started (pid {pid})")).await;
        let crash = match guest.wait_ready(READY_TIMEOUT, shutdown).await {
            Ok(Some(endpoint)) => {
                with(shared, |s| {
                    s.phase = Phase::Running {
                        pid,
                        since: Instant::now(),
                        url: endpoint.url.clone(),
                    };
                });
                log.line(&format!("guest {pid} ready at {}", endpoint.url))
                    .await;
                if first {
                    announce(context, prepared, pid, &endpoint.url);
                    first = false;
                }
                tokio::select! {
                    status = guest.wait() => describe_exit(status?),
                    () = shutdown.cancelled() => {
                        return stop(&mut guest, shared, log).await;
                    }
                }
            }
            Ok(None) => return stop(&mut guest, shared, log).await,
            Err(error) if first => return Err(error),
            Err(error) => error.to_string(),
        };
        let delay = backoff.after_crash(guest.age());
        let at = Instant::now() + delay;
        with(shared, |s| {
            s.template.last_exit = Some(crash.clone());
            s.phase = Phase::Restarting { at };
        });
        let message = format!("guest {pid} ended unexpectedly ({crash}); restarting in {delay:?}");
        eprintln!("oxydra-runner: {message}");
        log.line(&message).await;
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => {}
            () = shutdown.cancelled() => {
                with(shared, |s| s.phase = Phase::Stopping);
                return Ok(());
            }
        }
    }
}

async fn stop(guest: &mut Guest, shared: &SharedState, log: &mut Log) -> Result<(), HostError> {
    with(shared, |s| s.phase = Phase::Stopping);
    log.line(&format!("stopping guest {}", guest.pid())).await;
    let status = guest.stop(STOP_GRACE).await?;
    log.line(&format!("guest stopped with {}", describe_exit(status)))
        .await;
    Ok(())
}

fn announce(context: &RunnerContext, prepared: &Prepared, pid: u32, url: &str) {
    println!(
        "oxydra-runner: supervising user '{}' (tier {}): guest pid {pid} at {url}\n\
         oxydra-runner: control socket {}\n\
         oxydra-runner: guest log {}\n\
         oxydra-runner: open the TUI with: {}\n\
         oxydra-runner: stop with: {}",
        context.user,
        prepared.tier.tier,
        context.paths.control_socket.display(),
        context.paths.log_file.display(),
        context.command("--tui"),
        context.command("stop"),
    );
}

async fn accept_loop(listener: UnixListener, shared: SharedState, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                let shutdown = shutdown.clone();
                connections.spawn(serve_connection(stream, move |request| {
                    answer(&shared, &shutdown, request)
                }));
            }
            () = shutdown.cancelled() => break,
        }
    }
    let _ = tokio::time::timeout(CONNECTION_DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

fn answer(
    shared: &SharedState,
    shutdown: &CancellationToken,
    request: ControlRequest,
) -> ControlResponse {
    match request {
        ControlRequest::Health => with(shared, |s| {
            ControlResponse::Health(HealthReport {
                supervisor_pid: s.template.supervisor_pid,
                guest_ready: matches!(s.phase, Phase::Running { .. }),
            })
        }),
        ControlRequest::Status => with(shared, |s| ControlResponse::Status(s.status())),
        ControlRequest::Shutdown => {
            shutdown.cancel();
            ControlResponse::ShuttingDown
        }
    }
}

/// The supervisor's own lines in the user's log file, beside the guest's.
#[derive(Debug)]
struct Log {
    file: tokio::fs::File,
}

impl Log {
    async fn line(&mut self, message: &str) {
        let line = format!("oxydra-runner[{}]: {message}\n", std::process::id());
        // Logging must never stop supervision; a full disk shows elsewhere.
        let _ = self.file.write_all(line.as_bytes()).await;
        let _ = self.file.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets_after_a_stable_run() {
        let quick = Duration::from_secs(1);
        let mut backoff = Backoff::default();
        let seen: Vec<u128> = (0..9)
            .map(|_| backoff.after_crash(quick).as_millis())
            .collect();
        assert_eq!(
            seen,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff.after_crash(STABLE_AFTER), INITIAL_BACKOFF);
        assert_eq!(backoff.after_crash(quick), INITIAL_BACKOFF * 2);
    }
}
