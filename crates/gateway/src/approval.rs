//! `GatewayApprovalGate`: the `tools::ApprovalGate` that asks the human.
//!
//! The tool registry is built (with this gate) before the gateway exists
//! and is shared by every session, so the gate learns which session and
//! turn a call belongs to from a task-local the turn runner sets around
//! `run_session`. The runtime polls a turn's tool calls inside that task
//! (`join_all`, no spawning), so every call of the turn sees it. A call
//! outside an interactive turn (a background run) has nobody to ask and
//! is denied.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tools::{ApprovalDecision, ApprovalGate, ApprovalRequest};
use types::protocol::bootstrap::ApprovalPolicy;
use types::protocol::gateway::GatewayServerFrame;

use crate::endpoint::random_hex;
use crate::session::SessionHub;

tokio::task_local! {
    static TURN_APPROVER: TurnApprover;
}

/// The gateway's approval gate; give the same `Arc` to
/// `tools::ToolRegistry::new`.
#[derive(Debug, Clone, Copy)]
pub struct GatewayApprovalGate {
    policy: ApprovalPolicy,
}

impl GatewayApprovalGate {
    /// `Allow` and `Deny` decide alone; `Ask` asks the session's clients
    /// with an `ApprovalRequest` frame and waits for an `ApprovalResponse`
    /// (no answer within `GatewayLimits::approval_timeout` → denied).
    pub fn new(policy: ApprovalPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

#[async_trait]
impl ApprovalGate for GatewayApprovalGate {
    async fn decide(&self, request: &ApprovalRequest) -> ApprovalDecision {
        match self.policy {
            ApprovalPolicy::Allow => ApprovalDecision::Approved,
            ApprovalPolicy::Deny => ApprovalDecision::Denied {
                reason: "privileged tools are disabled by the operator's policy".into(),
            },
            ApprovalPolicy::Ask => match TURN_APPROVER.try_with(TurnApprover::clone) {
                Ok(approver) => approver.ask(request).await,
                Err(_) => ApprovalDecision::Denied {
                    reason: "approval is required, but this run has no interactive client \
                             to ask (background run)"
                        .into(),
                },
            },
        }
    }
}

/// Who to ask during one interactive turn.
#[derive(Debug, Clone)]
pub(crate) struct TurnApprover {
    pub hub: Arc<SessionHub>,
    /// The turn runner publishes these frames in order with the runtime's
    /// events (a `ToolCallStarted` always comes before its request).
    pub frames: mpsc::Sender<GatewayServerFrame>,
    pub cancel: CancellationToken,
    pub timeout: Duration,
}

impl TurnApprover {
    /// Runs `turn` with this approver visible to the gate.
    pub async fn scope<F: Future>(self, turn: F) -> F::Output {
        TURN_APPROVER.scope(self, turn).await
    }

    async fn ask(&self, request: &ApprovalRequest) -> ApprovalDecision {
        let request_id = format!("approval-{}", random_hex(8));
        let answer = self.hub.await_approval(request_id.clone());
        let frame = GatewayServerFrame::ApprovalRequest {
            request_id: request_id.clone(),
            tool: request.tool.clone(),
            arguments_summary: request.arguments_summary.clone(),
        };
        if self.frames.send(frame).await.is_err() {
            self.hub.forget_approval(&request_id);
            return ApprovalDecision::Denied {
                reason: "the turn ended before the request could be shown".into(),
            };
        }
        tracing::info!(session = %self.hub.id, tool = %request.tool, %request_id, "approval requested");
        let decision = tokio::select! {
            answer = answer => match answer {
                Ok(true) => ApprovalDecision::Approved,
                Ok(false) => ApprovalDecision::Denied {
                    reason: "the user refused it".into(),
                },
                Err(_) => ApprovalDecision::Denied {
                    reason: "the approval request was dropped".into(),
                },
            },
            () = tokio::time::sleep(self.timeout) => ApprovalDecision::Denied {
                reason: format!(
                    "no answer within {} seconds",
                    self.timeout.as_secs_f64()
                ),
            },
            () = self.cancel.cancelled() => ApprovalDecision::Denied {
                reason: "the turn was cancelled".into(),
            },
        };
        self.hub.forget_approval(&request_id);
        tracing::info!(%request_id, ?decision, "approval decided");
        decision
    }
}
