//! The container tier: one user's `shell-vm` + `oxydra-vm` container pair
//! through the Docker Engine API (Docker, or Podman's compatible socket via
//! `DOCKER_HOST`). The sidecar starts first; whether its daemon answers
//! decides the startup status written into the envelope file, which the
//! `oxydra-vm` container reads from a read-only mount. Both containers'
//! output is streamed from the engine's log API into the runner's sink.

pub mod spec;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::query_parameters::{
    InspectContainerOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use types::protocol::bootstrap::{
    BOOTSTRAP_FILE_NAME, RunnerBootstrapEnvelope, ShellMode, StartupDegradedReason,
};
use types::protocol::framing::{DEFAULT_MAX_FRAME_BYTES, encode_json_frame, read_json_frame};
use types::protocol::gateway::GatewayEndpoint;
use types::protocol::shell::{ShellDaemonRequest, ShellDaemonResponse};

use super::HostError;
use super::launch::{
    OutputSink, OutputWriter, Stream, Tail, remove_if_present, tail_detail, written_endpoint,
};
use spec::{PairSpec, SHELL_SOCKET_NAME, guest_shell_endpoint};

/// How long the shell daemon may take to answer on its socket.
const SIDECAR_TIMEOUT: Duration = Duration::from_secs(15);
/// How often readiness (socket, endpoint file, container state) is checked.
const READY_POLL: Duration = Duration::from_millis(100);
/// Session id of the runner's readiness probe (never spawned).
const PROBE_SESSION: &str = "oxydra-runner-probe";
/// How long the log streams may take to deliver the last lines.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to the engine (`DOCKER_HOST` or `/var/run/docker.sock`) and
/// agrees on an API version both sides speak.
pub async fn connect_engine() -> Result<Docker, HostError> {
    let unreachable = |e: EngineError| {
        HostError::Engine(format!(
            "cannot reach the Docker Engine ({}): {e}; start it (`sudo systemctl start docker`, or `sudo dockerd &`), point DOCKER_HOST at its socket (Podman: unix://$XDG_RUNTIME_DIR/podman/podman.sock), or start with --insecure for the process tier",
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
        ))
    };
    let docker = Docker::connect_with_local_defaults().map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

/// What became of the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sidecar {
    /// Its daemon answered on the socket.
    Ready,
    /// It did not come up; the guest runs without shell tools.
    Degraded(StartupDegradedReason),
}

/// A started container pair, ready or not.
#[derive(Debug)]
pub struct ContainerPair {
    docker: Docker,
    agent: String,
    /// The sidecar container, when it was started.
    shell: Option<String>,
    pid: u32,
    started: Instant,
    endpoint_file: PathBuf,
    bootstrap_file: PathBuf,
    degraded: Vec<StartupDegradedReason>,
    stderr_tail: Tail,
    logs: JoinSet<()>,
    sink: OutputSink,
}

impl ContainerPair {
    /// Removes leftovers of an earlier run, starts the sidecar and waits
    /// for its daemon, writes the envelope with the resulting startup
    /// status, and starts the `oxydra-vm` container.
    pub async fn launch(
        spec: &PairSpec,
        envelope: &RunnerBootstrapEnvelope,
        endpoint_file: &Path,
        sink: OutputSink,
    ) -> Result<Self, HostError> {
        let docker = connect_engine().await?;
        for name in [&spec.agent_name, &spec.shell_name] {
            remove_container(&docker, name).await?;
        }
        remove_if_present(endpoint_file)?;
        ensure_image(&docker, &spec.agent_image).await?;
        let mut pair = Self {
            docker,
            agent: spec.agent_name.clone(),
            shell: None,
            pid: 0,
            started: Instant::now(),
            endpoint_file: endpoint_file.to_owned(),
            bootstrap_file: spec.bootstrap_dir.join(BOOTSTRAP_FILE_NAME),
            degraded: Vec::new(),
            stderr_tail: Tail::default(),
            logs: JoinSet::new(),
            sink,
        };
        let sidecar = pair.start_sidecar(spec).await;
        if let Sidecar::Degraded(reason) = &sidecar {
            pair.note(&format!(
                "shell sidecar not available: {reason}; shell tools are disabled"
            ))
            .await;
            pair.degraded.push(reason.clone());
        }
        let envelope = with_sidecar(envelope.clone(), &sidecar);
        write_envelope(&pair.bootstrap_file, &envelope, spec.run_as)?;
        if let Err(error) = pair.start(&spec.agent_name, spec.agent_body(), "").await {
            pair.stop(Duration::ZERO).await?;
            return Err(error);
        }
        pair.pid = pair
            .container_pid(&spec.agent_name)
            .await
            .unwrap_or_default();
        Ok(pair)
    }

    /// The host pid of the `oxydra-vm` container's init process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Why the guest runs with less than full capability.
    pub fn degraded_reasons(&self) -> &[StartupDegradedReason] {
        &self.degraded
    }

    /// Starts the sidecar and waits until its daemon answers; any failure
    /// is a degraded start, never an error.
    async fn start_sidecar(&mut self, spec: &PairSpec) -> Sidecar {
        if let Err(error) = ensure_image(&self.docker, &spec.shell_image).await {
            self.note(&error.to_string()).await;
            return Sidecar::Degraded(StartupDegradedReason::SidecarUnavailable);
        }
        let socket = spec.ipc_dir.join(SHELL_SOCKET_NAME);
        if let Err(e) = remove_if_present(&socket) {
            self.note(&e.to_string()).await;
        }
        if let Err(error) = self
            .start(&spec.shell_name, spec.shell_body(), "shell-vm | ")
            .await
        {
            self.note(&format!("cannot start the shell sidecar: {error}"))
                .await;
            return Sidecar::Degraded(StartupDegradedReason::SidecarUnavailable);
        }
        self.shell = Some(spec.shell_name.clone());
        let deadline = Instant::now() + SIDECAR_TIMEOUT;
        loop {
            match probe_daemon(&socket).await {
                Probe::Answered => return Sidecar::Ready,
                Probe::NoAnswer(why) => {
                    self.note(&format!("the shell daemon did not answer its probe: {why}"))
                        .await;
                    return Sidecar::Degraded(StartupDegradedReason::ShellDaemonUnresponsive);
                }
                Probe::Unreachable(why) => {
                    if !self.running(&spec.shell_name).await {
                        return Sidecar::Degraded(StartupDegradedReason::SidecarConnectionFailed(
                            format!("the shell-vm container exited: {why}"),
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Sidecar::Degraded(StartupDegradedReason::SidecarConnectionFailed(
                            format!(
                                "no answer on {} within {SIDECAR_TIMEOUT:?}: {why}",
                                socket.display()
                            ),
                        ));
                    }
                }
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Creates and starts one container and streams its logs.
    async fn start(
        &mut self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
        prefix: &'static str,
    ) -> Result<(), HostError> {
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(name)
            .build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_error(&format!("cannot create container {name}"), e))?;
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| engine_error(&format!("cannot start container {name}"), e))?;
        let tail = prefix.is_empty().then(|| self.stderr_tail.clone());
        self.logs.spawn(stream_logs(
            self.docker.clone(),
            name.to_owned(),
            self.sink.clone(),
            prefix,
            tail,
        ));
        Ok(())
    }

    /// Waits until the guest wrote its endpoint file. If its container
    /// stops first, its exit and the end of its output are the error; if
    /// `timeout` passes or `cancel` fires, the pair is stopped.
    pub async fn wait_ready(
        &mut self,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<GatewayEndpoint>, HostError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(endpoint) = written_endpoint(&self.endpoint_file) {
                // The guest has read it; the credentials leave the disk.
                remove_if_present(&self.bootstrap_file)?;
                return Ok(Some(endpoint));
            }
            if !self.running(&self.agent.clone()).await {
                let status = self.exit_status(&self.agent.clone()).await;
                self.stop(Duration::ZERO).await?;
                return Err(HostError::GuestExited {
                    status: super::launch::describe_exit(status),
                    detail: tail_detail(&self.sink, &self.stderr_tail),
                });
            }
            if Instant::now() >= deadline {
                self.stop(Duration::from_secs(2)).await?;
                return Err(HostError::GuestNotReady {
                    waited: timeout,
                    detail: tail_detail(&self.sink, &self.stderr_tail),
                });
            }
            tokio::select! {
                () = tokio::time::sleep(READY_POLL) => {}
                () = cancel.cancelled() => return Ok(None),
            }
        }
    }

    /// Waits until either container stops by itself; the other one is
    /// stopped then (a pair is only useful whole) and the stopped one's
    /// status is returned.
    pub async fn wait(&mut self) -> Result<ExitStatus, HostError> {
        let agent = self.agent.clone();
        let status = match self.shell.clone() {
            Some(shell) => {
                tokio::select! {
                    status = self.wait_container(&agent) => status,
                    status = self.wait_container(&shell) => {
                        self.note(&format!(
                            "the shell-vm container ended with {}; stopping the pair",
                            super::launch::describe_exit(status)
                        ))
                        .await;
                        status
                    }
                }
            }
            None => self.wait_container(&agent).await,
        };
        self.stop(Duration::from_secs(2)).await?;
        Ok(status)
    }

    /// Stops both containers (SIGTERM through their init, then SIGKILL
    /// after `grace`), removes them and the files they leave behind.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, HostError> {
        let agent = self.agent.clone();
        let grace_secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(grace_secs).build();
        // Already stopped or gone: nothing to stop.
        let _ = self.docker.stop_container(&agent, Some(options)).await;
        let status = self.exit_status(&agent).await;
        if let Some(shell) = self.shell.take() {
            let options = StopContainerOptionsBuilder::default().t(grace_secs).build();
            let _ = self.docker.stop_container(&shell, Some(options)).await;
            remove_container(&self.docker, &shell).await?;
        }
        remove_container(&self.docker, &agent).await?;
        let logs = &mut self.logs;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while logs.join_next().await.is_some() {}
        })
        .await;
        self.logs.abort_all();
        remove_if_present(&self.endpoint_file)?;
        remove_if_present(&self.bootstrap_file)?;
        Ok(status)
    }

    async fn wait_container(&self, name: &str) -> ExitStatus {
        let mut waits = self.docker.wait_container(name, None);
        let code = match waits.next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(EngineError::DockerContainerWaitError { code, .. })) => code,
            // The engine went away or the container vanished: report what
            // inspection still knows.
            Some(Err(_)) | None => return self.exit_status(name).await,
        };
        status_from_code(code)
    }

    async fn running(&self, name: &str) -> bool {
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info.state.and_then(|s| s.running).unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn exit_status(&self, name: &str) -> ExitStatus {
        let code = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|info| info.state)
            .and_then(|state| state.exit_code)
            .unwrap_or(1);
        status_from_code(code)
    }

    async fn container_pid(&self, name: &str) -> Option<u32> {
        let info = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .ok()?;
        u32::try_from(info.state?.pid?).ok()
    }

    /// One line of the runner's own in the guest's output sink.
    async fn note(&self, message: &str) {
        let mut writer = OutputWriter::open(&self.sink, Stream::Stderr, None).await;
        writer
            .line(format!("oxydra-runner: {message}\n").as_bytes())
            .await;
    }
}

/// The container-tier envelope: the shell runs in the sidecar when its
/// daemon answered, and nowhere otherwise.
fn with_sidecar(
    mut envelope: RunnerBootstrapEnvelope,
    sidecar: &Sidecar,
) -> RunnerBootstrapEnvelope {
    let status = &mut envelope.startup_status;
    match sidecar {
        Sidecar::Ready => {
            envelope.sidecar_endpoint = Some(guest_shell_endpoint());
            envelope.runtime_policy.shell_mode = ShellMode::Session;
            status.sidecar_available = true;
            status.shell_available = true;
        }
        Sidecar::Degraded(reason) => {
            envelope.sidecar_endpoint = None;
            envelope.runtime_policy.shell_mode = ShellMode::Disabled;
            status.sidecar_available = false;
            status.shell_available = false;
            status.degraded_reasons.push(reason.clone());
        }
    }
    envelope
}

/// Writes the envelope as JSON, mode 0600 and owned by the guest's ids,
/// replacing the file atomically.
fn write_envelope(
    path: &Path,
    envelope: &RunnerBootstrapEnvelope,
    (uid, gid): (u32, u32),
) -> Result<(), HostError> {
    let json = serde_json::to_vec(envelope).map_err(|e| HostError::Io {
        what: "cannot encode the bootstrap envelope for",
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let partial = path.with_extension("json.part");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    };
    write().map_err(|e| HostError::io("cannot write the bootstrap envelope", path, e))
}

/// What the readiness probe learned.
#[derive(Debug)]
enum Probe {
    /// A well-formed response came back.
    Answered,
    /// Connected, but no well-formed answer.
    NoAnswer(String),
    /// Could not connect (yet).
    Unreachable(String),
}

/// Asks the daemon to kill a session that does not exist: any well-formed
/// response (an `Error` naming the unknown session) proves it serves.
async fn probe_daemon(socket: &Path) -> Probe {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        let stream = match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(stream) => stream,
            Err(e) => return Probe::Unreachable(e.to_string()),
        };
        let request = ShellDaemonRequest::KillSession {
            session_id: PROBE_SESSION.to_owned(),
        };
        let exchange = || -> Result<ShellDaemonResponse, String> {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            let frame =
                encode_json_frame(&request, DEFAULT_MAX_FRAME_BYTES).map_err(|e| e.to_string())?;
            (&stream).write_all(&frame).map_err(|e| e.to_string())?;
            read_json_frame(&mut &stream, DEFAULT_MAX_FRAME_BYTES).map_err(|e| e.to_string())
        };
        match exchange() {
            Ok(_) => Probe::Answered,
            Err(why) => Probe::NoAnswer(why),
        }
    })
    .await
    .unwrap_or_else(|e| Probe::NoAnswer(e.to_string()))
}

/// Streams one container's stdout and stderr into the sink, each line
/// prefixed with `prefix`; stderr lines of the guest go into `tail`.
async fn stream_logs(
    docker: Docker,
    name: String,
    sink: OutputSink,
    prefix: &'static str,
    tail: Option<Tail>,
) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(&name, Some(options));
    let mut stdout = OutputWriter::open(&sink, Stream::Stdout, None).await;
    let mut stderr = OutputWriter::open(&sink, Stream::Stderr, tail).await;
    while let Some(Ok(chunk)) = logs.next().await {
        let (writer, message) = match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (&mut stdout, message)
            }
            LogOutput::StdErr { message } => (&mut stderr, message),
            LogOutput::StdIn { .. } => continue,
        };
        for line in message.split_inclusive(|b| *b == b'\n') {
            if prefix.is_empty() {
                writer.line(line).await;
            } else {
                writer.line(&[prefix.as_bytes(), line].concat()).await;
            }
        }
    }
}

async fn ensure_image(docker: &Docker, image: &str) -> Result<(), HostError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(EngineError::DockerResponseServerError {
            status_code: 404, ..
        }) => Err(HostError::Engine(format!(
            "the image '{image}' is not in the Docker Engine; build the guest images with ./scripts/build-guest-images (nothing is pulled from a registry), or set [guest_images] in runner.toml"
        ))),
        Err(e) => Err(engine_error(&format!("cannot inspect image {image}"), e)),
    }
}

/// Removes a container whatever its state; one that does not exist is fine.
async fn remove_container(docker: &Docker, name: &str) -> Result<(), HostError> {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    match docker.remove_container(name, Some(options)).await {
        Ok(())
        | Err(EngineError::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        Err(e) => Err(engine_error(&format!("cannot remove container {name}"), e)),
    }
}

fn engine_error(what: &str, error: EngineError) -> HostError {
    HostError::Engine(format!("{what}: {error}"))
}

/// A container's exit code as a wait status (`128 + n` stays a code: the
/// engine does not say whether a signal ended it); an out-of-range code
/// is a failure.
fn status_from_code(code: i64) -> ExitStatus {
    let code = u8::try_from(code).map_or(1, i32::from);
    ExitStatus::from_raw(code << 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::launch::describe_exit;

    #[test]
    fn container_codes_become_exit_statuses() {
        assert_eq!(describe_exit(status_from_code(0)), "exit status 0");
        assert_eq!(describe_exit(status_from_code(137)), "exit status 137");
        assert_eq!(describe_exit(status_from_code(-1)), "exit status 1");
    }
}
