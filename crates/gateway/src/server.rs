//! The server: building a gateway from its parts, the axum router (`/ws`,
//! `/health`), the connection cap, and an orderly shutdown that waits for
//! every task the gateway spawned.

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use runtime::{AgentRuntime, TurnOutcome};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use types::protocol::bootstrap::StartupDegradedReason;
use types::protocol::gateway::GatewayEndpoint;
use types::runner::SandboxTier;
use types::{ModelId, SecretString, SessionId, UserId};

use crate::connection::serve_connection;
use crate::directory::SessionDirectory;
use crate::error::GatewayError;
use crate::limits::GatewayLimits;
use crate::outbox::{Frame, Outbox, clock_seq};
use crate::session::SessionHub;
use crate::turn::{BackgroundJob, run_background_lane, run_lane};

/// Read buffer per WebSocket connection.
const CONNECTION_READ_BUFFER: usize = 8 * 1024;

/// `127.0.0.1:0`: loopback, any free port.
pub const LOCALHOST_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Everything a gateway is built from.
pub struct GatewayParts {
    pub runtime: Arc<AgentRuntime>,
    /// Reported in `HelloAck` and health.
    pub tier: SandboxTier,
    pub degraded_reasons: Vec<StartupDegradedReason>,
    /// The model the runtime uses, reported in `HelloAck`.
    pub model: ModelId,
    /// The token clients must present (see `generate_token`).
    pub token: SecretString,
    pub directory: Arc<dyn SessionDirectory>,
    pub limits: GatewayLimits,
}

impl std::fmt::Debug for GatewayParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayParts")
            .field("tier", &self.tier)
            .field("degraded_reasons", &self.degraded_reasons)
            .field("model", &self.model)
            .field("token", &self.token)
            .field("directory", &self.directory)
            .field("limits", &self.limits)
            .finish()
    }
}

/// What `/health` answers (and `HealthStatus` frames carry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// False once the gateway is shutting down.
    pub healthy: bool,
    pub tier: SandboxTier,
    pub degraded_reasons: Vec<StartupDegradedReason>,
    /// Sessions loaded in this gateway.
    pub active_sessions: usize,
    /// Sessions with a turn running right now.
    pub busy_sessions: usize,
    /// WebSocket connections being served.
    pub connections: usize,
    pub uptime_secs: u64,
}

/// State shared by the server, its connections and its lanes.
pub(crate) struct Shared {
    pub runtime: Arc<AgentRuntime>,
    pub tier: SandboxTier,
    pub degraded_reasons: Vec<StartupDegradedReason>,
    pub model: ModelId,
    pub token: SecretString,
    pub directory: Arc<dyn SessionDirectory>,
    pub limits: GatewayLimits,
    hubs: Mutex<HashMap<SessionId, Arc<SessionHub>>>,
    /// The latest terminal frame of each session unloaded while idle: what
    /// a client resuming it from too far back is given.
    dormant: Mutex<HashMap<SessionId, Frame>>,
    /// Owns every task the gateway spawns (connections, lanes).
    pub tracker: TaskTracker,
    /// The root of the cancellation tree: gateway → session → turn.
    pub shutdown: CancellationToken,
    started: Instant,
    connections: Arc<Semaphore>,
    background: mpsc::Sender<BackgroundJob>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("tier", &self.tier)
            .field("model", &self.model)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why a session cannot be loaded for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HubRefusal {
    OtherUser,
    ShuttingDown,
}

impl Shared {
    /// The loaded session `id`, loading it (and starting its lane) first if
    /// needed. The caller has checked that `user` owns it.
    pub fn hub(
        self: &Arc<Self>,
        id: &SessionId,
        user: &UserId,
    ) -> Result<Arc<SessionHub>, HubRefusal> {
        if self.shutdown.is_cancelled() {
            return Err(HubRefusal::ShuttingDown);
        }
        let mut hubs = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hub) = hubs.get(id) {
            return if &hub.user == user {
                hub.touch();
                Ok(Arc::clone(hub))
            } else {
                Err(HubRefusal::OtherUser)
            };
        }
        let last_terminal = self
            .dormant
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        let (hub, queue) = SessionHub::new(
            id.clone(),
            user.clone(),
            &self.shutdown,
            self.limits.lane_depth,
            Outbox::new(self.limits.replay_frames, clock_seq(), last_terminal),
        );
        let hub = Arc::new(hub);
        hubs.insert(id.clone(), Arc::clone(&hub));
        drop(hubs);
        self.tracker
            .spawn(run_lane(Arc::clone(self), Arc::clone(&hub), queue));
        Ok(hub)
    }

    /// Unloads the sessions idle at `now` (see `SessionHub::is_idle`):
    /// their lanes stop and only their latest terminal frame is kept. A
    /// client coming back loads the session afresh, numbered on from the
    /// clock. Returns how many were unloaded.
    pub fn unload_idle(&self, now: Instant) -> usize {
        let mut hubs = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        let idle: Vec<SessionId> = hubs
            .values()
            .filter(|hub| hub.is_idle(now, self.limits.idle_session))
            .map(|hub| hub.id.clone())
            .collect();
        let mut dormant = self.dormant.lock().unwrap_or_else(PoisonError::into_inner);
        for id in &idle {
            if let Some(hub) = hubs.remove(id) {
                hub.cancel.cancel();
                // Its history is in memory; the next turn restores it.
                self.runtime.release_session(id);
                if let Some(frame) = hub.outbox.last_terminal() {
                    dormant.insert(id.clone(), frame);
                }
            }
        }
        idle.len()
    }

    pub fn health(&self) -> HealthReport {
        let hubs = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        HealthReport {
            healthy: !self.shutdown.is_cancelled(),
            tier: self.tier,
            degraded_reasons: self.degraded_reasons.clone(),
            active_sessions: hubs.len(),
            busy_sessions: hubs.values().filter(|hub| hub.is_busy()).count(),
            connections: self.limits.max_connections - self.connections.available_permits(),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }
}

/// A gateway that is built but not yet serving.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    background: mpsc::Receiver<BackgroundJob>,
}

impl Gateway {
    /// Checks the limits and the token; spawns nothing yet.
    pub fn new(parts: GatewayParts) -> Result<Self, GatewayError> {
        parts.limits.validate()?;
        if parts.token.is_empty() {
            return Err(GatewayError::InvalidConfig(
                "the gateway access token is empty; use gateway::generate_token()".into(),
            ));
        }
        let (background_tx, background) = mpsc::channel(parts.limits.background_lane_depth);
        let shared = Arc::new(Shared {
            runtime: parts.runtime,
            tier: parts.tier,
            degraded_reasons: parts.degraded_reasons,
            model: parts.model,
            token: parts.token,
            directory: parts.directory,
            connections: Arc::new(Semaphore::new(parts.limits.max_connections)),
            limits: parts.limits,
            hubs: Mutex::new(HashMap::new()),
            dormant: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            background: background_tx,
        });
        Ok(Self { shared, background })
    }

    /// In-process access (background runs, health) for the embedding
    /// program; valid for the gateway's whole life.
    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves on `listener` until `shutdown` completes; then cancels the
    /// active turns, closes every connection and returns once every task
    /// the gateway spawned has finished.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let shared = self.shared;
        shared
            .tracker
            .spawn(run_background_lane(Arc::clone(&shared), self.background));
        shared
            .tracker
            .spawn(unload_idle_sessions(Arc::clone(&shared)));
        let router = Router::new()
            .route("/ws", get(upgrade))
            .route("/health", get(health))
            .with_state(Arc::clone(&shared));
        let stop = shared.shutdown.clone();
        // Frames are small and latency-bound: no Nagle delay.
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "could not disable Nagle's algorithm");
            }
        });
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = shutdown => {},
                    () = stop.cancelled() => {},
                }
                // Connections and turns learn of the stop right away, not
                // after the listener has drained.
                stop.cancel();
            })
            .await;
        shared.shutdown.cancel();
        shared.tracker.close();
        shared.tracker.wait().await;
        tracing::info!("gateway stopped");
        served.map_err(GatewayError::Serve)
    }

    /// Binds `addr` (use `LOCALHOST_ANY_PORT`) and serves in a task owned
    /// by the returned `RunningGateway`.
    pub async fn start(self, addr: SocketAddr) -> Result<RunningGateway, GatewayError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let handle = self.handle();
        let endpoint = GatewayEndpoint {
            url: format!("ws://{local}/ws"),
            token: self.shared.token.clone(),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.serve(listener, stop.clone().cancelled_owned()));
        tracing::info!(url = %endpoint.url, "gateway listening");
        Ok(RunningGateway {
            addr: local,
            endpoint,
            handle,
            stop,
            task: Some(task),
        })
    }
}

/// A serving gateway. Dropping it stops the gateway without waiting;
/// `shutdown` stops it and waits.
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    endpoint: GatewayEndpoint,
    handle: GatewayHandle,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), GatewayError>>>,
}

impl RunningGateway {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// URL and token, as the endpoint file carries them.
    pub fn endpoint(&self) -> GatewayEndpoint {
        self.endpoint.clone()
    }

    pub fn handle(&self) -> GatewayHandle {
        self.handle.clone()
    }

    /// Stops accepting, cancels active turns, closes every connection and
    /// waits until all of the gateway's tasks have finished.
    pub async fn shutdown(mut self) -> Result<(), GatewayError> {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(|error| {
                GatewayError::Serve(std::io::Error::other(format!(
                    "the gateway task failed: {error}"
                )))
            })?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// In-process access to a gateway.
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    shared: Arc<Shared>,
}

impl GatewayHandle {
    pub fn health(&self) -> HealthReport {
        self.shared.health()
    }

    /// Queues a run in the background lane (scheduler, subagents): it
    /// never waits behind interactive turns of other sessions, is
    /// recorded in the session directory, cannot get approvals and streams
    /// no frames. A full lane is refused at once.
    pub fn submit_background(
        &self,
        user: UserId,
        session_id: SessionId,
        prompt: String,
    ) -> Result<BackgroundTurn, GatewayError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(GatewayError::ShuttingDown);
        }
        let (reply, outcome) = oneshot::channel();
        let job = BackgroundJob {
            user,
            session_id,
            prompt,
            reply,
        };
        self.shared
            .background
            .try_send(job)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => GatewayError::BackgroundBusy {
                    depth: self.shared.limits.background_lane_depth,
                },
                mpsc::error::TrySendError::Closed(_) => GatewayError::ShuttingDown,
            })?;
        Ok(BackgroundTurn { outcome })
    }
}

/// A queued background run.
#[derive(Debug)]
pub struct BackgroundTurn {
    outcome: oneshot::Receiver<Result<TurnOutcome, GatewayError>>,
}

impl BackgroundTurn {
    /// Waits for the run to end.
    pub async fn outcome(self) -> Result<TurnOutcome, GatewayError> {
        self.outcome
            .await
            .unwrap_or(Err(GatewayError::ShuttingDown))
    }
}

/// Unloads idle sessions until the gateway stops, checking four times per
/// `idle_session` (so a session goes at most a quarter late).
async fn unload_idle_sessions(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(shared.limits.idle_session / 4);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            now = ticks.tick() => {
                let unloaded = shared.unload_idle(now.into_std());
                if unloaded > 0 {
                    tracing::debug!(unloaded, "unloaded idle sessions");
                }
            }
        }
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> axum::Json<HealthReport> {
    axum::Json(shared.health())
}

async fn upgrade(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the gateway already serves {} connections; try again later",
                shared.limits.max_connections
            ),
        )
            .into_response();
    };
    if shared.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is shutting down",
        )
            .into_response();
    }
    let max = shared.limits.transport_max_bytes();
    // Frames are small JSON; the 128 KiB default read buffer would be
    // most of a connection's memory. Each `send` flushes, so the write
    // buffer never grows past one frame.
    upgrade
        .read_buffer_size(CONNECTION_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            // The connection runs in a task the gateway owns (not axum's),
            // so shutdown waits for it.
            let tracker = shared.tracker.clone();
            tracker.spawn(serve_connection(shared, socket, permit));
            std::future::ready(())
        })
}
