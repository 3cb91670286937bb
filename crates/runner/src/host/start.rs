//! What every `start` does before a guest is launched, in the foreground
//! or under the supervisor: choose the tier, provision the workspace, load
//! the agent configuration and credentials, build the envelope, find the
//! guest binary, and make sure nobody else serves this user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;
use types::config::Environment;
use types::protocol::bootstrap::RunnerBootstrapEnvelope;
use types::protocol::control::{ControlRequest, ControlResponse};

use types::runner::SandboxTier;

use super::HostError;
use super::channels::{self, ChannelPlan};
use super::container::spec::{GUEST_ROOTLESS_ID, PairSpec};
use super::context::{RunnerContext, TierChoice};
use super::control::{SocketProbe, probe};
use super::launch::{locate_guest_binary, written_endpoint};
use super::models::EffectiveEmbedding;

/// How long the check for a live guest waits for its gateway port.
const LIVE_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The printed warning of the process tier.
pub const PROCESS_TIER_WARNING: &str = "\
WARNING: sandbox tier 'process': the guest runs as a plain child process of this
WARNING: runner, with no VM or container isolation (best-effort Landlock only).
WARNING: Shell and browser tools are disabled. Use it for development only.";

/// Everything a launch needs.
#[derive(Debug)]
pub struct Prepared {
    pub tier: TierChoice,
    pub envelope: RunnerBootstrapEnvelope,
    pub backend: Backend,
    /// The guest's memory embedder (`None` with memory disabled).
    pub embedding: Option<EffectiveEmbedding>,
    /// The chat channels the runner runs beside the guest.
    pub channels: ChannelPlan,
}

/// What launches the guest.
#[derive(Debug)]
pub enum Backend {
    /// `oxydra-vm` as a child process.
    Process { binary: PathBuf },
    /// The user's `oxydra-vm` + `shell-vm` containers.
    Container(Box<PairSpec>),
}

/// Checks and builds everything for a launch of `context`'s user.
pub fn prepare(
    context: &RunnerContext,
    insecure: bool,
    cwd: &Path,
    env: &Environment,
) -> Result<Prepared, HostError> {
    let tier = context.launchable_tier(insecure)?;
    let mut config = context.load_agent_config(cwd, env)?.config;
    let credentials = context.resolve_credentials(&config, env)?;
    // `auto` becomes the installed model or lexical here, on the host: the
    // guest is told exactly which embedder to build and where its files
    // are, and never looks for models itself.
    let channels = channels::plan(context, &config, env)?;
    let embedding = context.effective_embedding(&config);
    if let Some(effective) = &embedding {
        config.memory.embedding = effective.config();
    }
    let backend = match tier.tier {
        SandboxTier::Container => {
            let (run_as, owner) = guest_identity();
            let mut spec = context.pair_spec(run_as)?;
            spec.mount_model(&mut config.memory.embedding);
            context.paths.provision()?;
            context.paths.provision_for_containers(owner)?;
            Backend::Container(Box::new(spec))
        }
        SandboxTier::Process | SandboxTier::MicroVm => {
            let binary = locate_guest_binary()?;
            context.paths.provision()?;
            Backend::Process { binary }
        }
    };
    Ok(Prepared {
        tier,
        envelope: context.envelope(tier.tier, config, credentials),
        backend,
        embedding,
        channels,
    })
}

/// The uid:gid container guests run as, and the owner the workspace must
/// be handed to first: the runner's own ids, except for a root runner,
/// whose guests run as the unprivileged [`GUEST_ROOTLESS_ID`] instead.
fn guest_identity() -> ((u32, u32), Option<(u32, u32)>) {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    if uid == 0 {
        let guest = (GUEST_ROOTLESS_ID, GUEST_ROOTLESS_ID);
        (guest, Some(guest))
    } else {
        ((uid, gid), None)
    }
}

/// Refuses when a supervisor answers on the user's control socket or a
/// guest serves at the address in the user's endpoint file; removes a
/// control socket nobody listens on.
pub async fn ensure_not_running(context: &RunnerContext) -> Result<(), HostError> {
    let socket = &context.paths.control_socket;
    match probe(socket).await? {
        SocketProbe::Live(mut client) => {
            let pid = match client.request(ControlRequest::Health).await {
                Ok(ControlResponse::Health(report)) => format!(" (pid {})", report.supervisor_pid),
                Ok(_) | Err(_) => String::new(),
            };
            return Err(HostError::AlreadyRunning(format!(
                "a supervisor{pid} already runs user '{}' (control socket {}); stop it with: {}",
                context.user,
                socket.display(),
                context.command("stop")
            )));
        }
        SocketProbe::Stale => std::fs::remove_file(socket)
            .map_err(|e| HostError::io("cannot remove the stale control socket", socket, e))?,
        SocketProbe::Absent => {}
    }
    let endpoint_file = &context.paths.endpoint_file;
    let Some(endpoint) = written_endpoint(endpoint_file) else {
        return Ok(());
    };
    if let Some(address) = socket_address(&endpoint.url)
        && let Ok(Ok(_)) =
            tokio::time::timeout(LIVE_CHECK_TIMEOUT, TcpStream::connect(address)).await
    {
        return Err(HostError::AlreadyRunning(format!(
            "a guest of user '{}' is already serving at {} (endpoint file {}); stop the runner that started it first",
            context.user,
            endpoint.url,
            endpoint_file.display()
        )));
    }
    Ok(())
}

/// `ws://127.0.0.1:4000/ws` → `127.0.0.1:4000`.
fn socket_address(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))?;
    let authority = rest.split('/').next()?;
    authority.contains(':').then_some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_give_their_socket_address() {
        assert_eq!(
            socket_address("ws://127.0.0.1:4000/ws"),
            Some("127.0.0.1:4000")
        );
        assert_eq!(socket_address("wss://[::1]:9/ws"), Some("[::1]:9"));
        assert_eq!(socket_address("ws://localhost/ws"), None);
        assert_eq!(socket_address("http://127.0.0.1:1/"), None);
    }
}
