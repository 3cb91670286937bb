//! One running guest, whichever tier launched it: a host process
//! (process tier) or a container pair (container tier). The foreground
//! runner and the supervisor drive both the same way.

use std::process::ExitStatus;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use types::protocol::bootstrap::StartupDegradedReason;
use types::protocol::gateway::GatewayEndpoint;

use super::HostError;
use super::container::ContainerPair;
use super::launch::{GuestProcess, OutputSink};
use super::paths::RunnerPaths;
use super::start::{Backend, Prepared};

/// A launched guest.
#[derive(Debug)]
pub enum Guest {
    Process(Box<GuestProcess>),
    Container(Box<ContainerPair>),
}

impl Guest {
    /// Launches the prepared guest with its output going to `sink`.
    pub async fn launch(
        prepared: &Prepared,
        paths: &RunnerPaths,
        sink: OutputSink,
    ) -> Result<Self, HostError> {
        match &prepared.backend {
            Backend::Process { binary } => Ok(Self::Process(Box::new(
                GuestProcess::spawn(binary, paths, &prepared.envelope, sink).await?,
            ))),
            Backend::Container(spec) => Ok(Self::Container(Box::new(
                ContainerPair::launch(spec, &prepared.envelope, &paths.endpoint_file, sink).await?,
            ))),
        }
    }

    /// The guest's host pid (the container's init process on the
    /// container tier).
    pub fn pid(&self) -> u32 {
        match self {
            Self::Process(guest) => guest.pid(),
            Self::Container(pair) => pair.pid(),
        }
    }

    /// How long ago it was launched.
    pub fn age(&self) -> Duration {
        match self {
            Self::Process(guest) => guest.age(),
            Self::Container(pair) => pair.age(),
        }
    }

    /// Why it runs with less than full capability, beyond what the
    /// prepared envelope said.
    pub fn degraded_reasons(&self, prepared: &Prepared) -> Vec<StartupDegradedReason> {
        let mut reasons = prepared.envelope.startup_status.degraded_reasons.clone();
        if let Self::Container(pair) = self {
            reasons.extend(pair.degraded_reasons().iter().cloned());
        }
        reasons
    }

    pub async fn wait_ready(
        &mut self,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<GatewayEndpoint>, HostError> {
        match self {
            Self::Process(guest) => guest.wait_ready(timeout, cancel).await,
            Self::Container(pair) => pair.wait_ready(timeout, cancel).await,
        }
    }

    pub async fn wait(&mut self) -> Result<ExitStatus, HostError> {
        match self {
            Self::Process(guest) => guest.wait().await,
            Self::Container(pair) => pair.wait().await,
        }
    }

    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, HostError> {
        match self {
            Self::Process(guest) => guest.stop(grace).await,
            Self::Container(pair) => pair.stop(grace).await,
        }
    }
}
