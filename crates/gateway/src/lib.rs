//! Oxydra's gateway: the control plane between clients and the agent
//! runtime. An axum server speaks the typed WebSocket protocol of
//! `types::protocol::gateway` at `/ws` (plus plain HTTP `/health`): token
//! authentication on `Hello`, several sessions per user with every frame
//! fanned out to each attached client under a per-session sequence number,
//! a bounded replay buffer for reconnecting clients, one FIFO lane per
//! session plus a background lane, cancellation of the active turn, and
//! human approval of privileged tool calls (`GatewayApprovalGate`).
//!
//! It drives the runtime only through `AgentRuntime::run_session` and knows
//! nothing about providers, tools' internals, memory storage or terminals;
//! where sessions are listed from is the `SessionDirectory` trait's
//! business.
//!
//! ```no_run
//! # async fn example(parts: gateway::GatewayParts, tmp: &std::path::Path) -> Result<(), gateway::GatewayError> {
//! let running = gateway::Gateway::new(parts)?
//!     .start(gateway::LOCALHOST_ANY_PORT)
//!     .await?;
//! let endpoint_file = gateway::write_endpoint_file(tmp, &running.endpoint()).await?;
//! // … serve until told to stop …
//! running.shutdown().await?;
//! endpoint_file.remove()?;
//! # Ok(()) }
//! ```

mod approval;
mod connection;
mod directory;
mod endpoint;
mod error;
mod files;
mod limits;
mod outbox;
mod server;
mod session;
mod turn;

pub use approval::GatewayApprovalGate;
pub use directory::{InMemorySessionDirectory, SessionDirectory, SessionRecord};
pub use endpoint::{EndpointFile, generate_token, write_endpoint_file};
pub use error::GatewayError;
pub use files::GatewayFileCourier;
pub use limits::GatewayLimits;
pub use server::{
    BackgroundTurn, Gateway, GatewayHandle, GatewayParts, HealthReport, LOCALHOST_ANY_PORT,
    RunningGateway,
};
