//! `oxydra-runner start` without `--daemon`: launch the guest with its
//! output on the terminal, say where it serves, and wait. SIGINT/SIGTERM
//! stop the guest (SIGTERM, up to `STOP_GRACE`, then SIGKILL) and the
//! runner exits 0; a guest that ends by itself ends the runner with its
//! status.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::channels::RunnerChannels;
use super::context::RunnerContext;
use super::guest::Guest;
use super::launch::{OutputSink, describe_exit, exit_code_of};
use super::start::Prepared;
use super::{HostError, READY_TIMEOUT, STOP_GRACE};

/// Runs the guest until a signal or its own exit; returns the runner's
/// exit code.
pub async fn run(context: &RunnerContext, prepared: &Prepared) -> Result<u8, HostError> {
    let signal_error = |e: std::io::Error| HostError::Io {
        what: "cannot install signal handlers for",
        path: context.paths.user_workspace.clone(),
        message: e.to_string(),
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let stop = CancellationToken::new();
    let mut guest = Guest::launch(prepared, &context.paths, OutputSink::Terminal).await?;
    let ready = tokio::select! {
        ready = guest.wait_ready(READY_TIMEOUT, &stop) => ready?,
        _ = terminate.recv() => None,
        _ = interrupt.recv() => None,
    };
    let Some(endpoint) = ready else {
        eprintln!("oxydra-runner: stopping before the guest was ready");
        guest.stop(STOP_GRACE).await?;
        return Ok(0);
    };
    println!(
        "oxydra-runner: user '{}' is running (tier {}, guest pid {}) at {}\n\
         oxydra-runner: endpoint file {}\n\
         oxydra-runner: open the TUI with: {}\n\
         oxydra-runner: press Ctrl-C to stop",
        context.user,
        prepared.tier.tier,
        guest.pid(),
        endpoint.url,
        context.paths.endpoint_file.display(),
        context.command("--tui"),
    );
    for reason in guest.degraded_reasons(prepared) {
        println!("oxydra-runner: degraded: {reason}");
    }
    let channels = match RunnerChannels::start(&prepared.channels, &context.paths.audit_file) {
        Ok(channels) => channels,
        Err(error) => {
            guest.stop(STOP_GRACE).await?;
            return Err(error);
        }
    };
    for id in channels.health().snapshot().keys() {
        println!("oxydra-runner: channel '{id}' started");
    }
    let code = tokio::select! {
        status = guest.wait() => {
            let status = status?;
            eprintln!("oxydra-runner: the guest ended by itself with {}", describe_exit(status));
            Ok(exit_code_of(status))
        }
        _ = terminate.recv() => stop_guest(&mut guest, "SIGTERM").await,
        _ = interrupt.recv() => stop_guest(&mut guest, "SIGINT").await,
    };
    channels.shutdown().await;
    code
}

async fn stop_guest(guest: &mut Guest, why: &str) -> Result<u8, HostError> {
    eprintln!("oxydra-runner: {why}: stopping the guest");
    let status = guest.stop(STOP_GRACE).await?;
    eprintln!(
        "oxydra-runner: the guest stopped with {}",
        describe_exit(status)
    );
    Ok(0)
}
