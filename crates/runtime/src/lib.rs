//! Oxydra's agent runtime: a deterministic turn loop. The model decides
//! what to do; the runtime calls it, runs the tools it asks for through the
//! registry pipeline, enforces budgets (turns, cost, time), honours
//! cancellation at every await, keeps the context inside the model's window
//! (rolling summaries for what falls out) and stores every message as it
//! is produced.
//!
//! It knows nothing about WebSockets, channels or processes: the gateway
//! drives it through `run_session` and forwards its `RuntimeEvent`s.

mod agent;
mod call;
pub mod context;
mod dispatch;
pub mod events;
pub mod limits;
mod session;
mod summary;

pub use agent::{AgentRuntime, MemoryParts, RuntimeParts, TurnOutcome};
pub use dispatch::ToolOutcome;
pub use events::{EventSink, RuntimeEvent, TurnState};
pub use limits::RuntimeLimits;
pub use session::{CANCELLED_MARKER, UsageTotals};
