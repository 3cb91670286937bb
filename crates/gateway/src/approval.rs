//! `GatewayApprovalGate`: the `tools::ApprovalGate` that asks the human.
//!
//! The tool registry is built (with this gate) before the gateway exists
//! and is shared by every session, so the gate learns which session and
//! turn a call belongs to from a task-local the turn runner sets around
//! `run_session`. The runtime polls a turn's tool calls inside that task
//! (`join_all`, no spawning), so every call of the turn sees it. A call
//! outside an interactive turn (a background run) has nobody to ask and
//! is denied.
//!
//! With an audit log, every request and every decision — by a person, the
//! operator's fixed policy, a timeout or a cancel — is recorded: who, when,
//! which tool, a hash and the size of the scrubbed arguments, the outcome.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tools::{ApprovalDecision, ApprovalGate, ApprovalRequest};
use types::protocol::bootstrap::ApprovalPolicy;
use types::protocol::gateway::GatewayServerFrame;
use types::{AuditDecision, AuditKind, AuditLog, AuditRecord, UserId};

use crate::endpoint::random_hex;
use crate::session::SessionHub;
use crate::turn::now_ms;

tokio::task_local! {
    static TURN_APPROVER: TurnApprover;
}

/// Where the gate records what it decides, and for whom.
#[derive(Clone)]
struct Audit {
    log: Arc<dyn AuditLog>,
    user: UserId,
}

/// The gateway's approval gate; give the same `Arc` to
/// `tools::ToolRegistry::new`.
#[derive(Clone)]
pub struct GatewayApprovalGate {
    policy: ApprovalPolicy,
    audit: Option<Audit>,
}

impl std::fmt::Debug for GatewayApprovalGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayApprovalGate")
            .field("policy", &self.policy)
            .field("audited", &self.audit.is_some())
            .finish()
    }
}

/// A decision with what the audit log says about it.
struct Decided {
    decision: ApprovalDecision,
    outcome: AuditDecision,
    actor: String,
}

impl Decided {
    fn denied(outcome: AuditDecision, actor: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            decision: ApprovalDecision::Denied {
                reason: reason.into(),
            },
            outcome,
            actor: actor.into(),
        }
    }
}

impl GatewayApprovalGate {
    /// `Allow` and `Deny` decide alone; `Ask` asks the session's clients
    /// with an `ApprovalRequest` frame and waits for an `ApprovalResponse`
    /// (no answer within `GatewayLimits::approval_timeout` → denied).
    pub fn new(policy: ApprovalPolicy) -> Arc<Self> {
        Arc::new(Self {
            policy,
            audit: None,
        })
    }

    /// The same, recording every request and decision for `user` in `log`.
    pub fn audited(policy: ApprovalPolicy, log: Arc<dyn AuditLog>, user: UserId) -> Arc<Self> {
        Arc::new(Self {
            policy,
            audit: Some(Audit { log, user }),
        })
    }

    /// Appends one record; a failure is logged (an audit outage must not
    /// turn a refusal into an approval or stop the turn).
    async fn record(
        &self,
        request: &ApprovalRequest,
        kind: AuditKind,
        actor: &str,
        decision: Option<(AuditDecision, Option<String>)>,
        request_id: Option<&str>,
    ) {
        let Some(audit) = &self.audit else {
            return;
        };
        let (decision, reason) = decision.map_or((None, None), |(d, r)| (Some(d), r));
        let digest = Sha256::digest(request.arguments.as_bytes());
        let record = AuditRecord {
            at_ms: now_ms(),
            user: audit.user.to_string(),
            kind,
            actor: actor.to_owned(),
            subject: request.tool.clone(),
            decision,
            reason,
            session_id: Some(request.session_id.clone()),
            request_id: request_id.map(str::to_owned),
            arguments_sha256: Some(digest.iter().map(|b| format!("{b:02x}")).collect()),
            arguments_bytes: u64::try_from(request.arguments.len()).ok(),
            sender: None,
        };
        if let Err(error) = audit.log.append_audit(&record).await {
            tracing::error!(%error, tool = %request.tool, "could not append to the audit log");
        }
    }
}

#[async_trait]
impl ApprovalGate for GatewayApprovalGate {
    async fn decide(&self, request: &ApprovalRequest) -> ApprovalDecision {
        let (decided, request_id) = match self.policy {
            ApprovalPolicy::Allow => (
                Decided {
                    decision: ApprovalDecision::Approved,
                    outcome: AuditDecision::Approved,
                    actor: POLICY_ACTOR.into(),
                },
                None,
            ),
            ApprovalPolicy::Deny => (
                Decided::denied(
                    AuditDecision::Denied,
                    POLICY_ACTOR,
                    "privileged tools are disabled by the operator's policy",
                ),
                None,
            ),
            ApprovalPolicy::Ask => match TURN_APPROVER.try_with(TurnApprover::clone) {
                Ok(approver) => {
                    let request_id = format!("approval-{}", random_hex(8));
                    self.record(
                        request,
                        AuditKind::ApprovalRequested,
                        MODEL_ACTOR,
                        None,
                        Some(&request_id),
                    )
                    .await;
                    (approver.ask(request, &request_id).await, Some(request_id))
                }
                Err(_) => (
                    Decided::denied(
                        AuditDecision::Denied,
                        POLICY_ACTOR,
                        "approval is required, but this run has no interactive client \
                         to ask (background run)",
                    ),
                    None,
                ),
            },
        };
        let reason = match &decided.decision {
            ApprovalDecision::Approved => None,
            ApprovalDecision::Denied { reason } => Some(reason.clone()),
        };
        self.record(
            request,
            AuditKind::ApprovalDecided,
            &decided.actor,
            Some((decided.outcome, reason)),
            request_id.as_deref(),
        )
        .await;
        decided.decision
    }
}

/// The audit actor of the model, which asks for the call.
const MODEL_ACTOR: &str = "model";
/// The audit actor of the operator's fixed approval policy.
const POLICY_ACTOR: &str = "policy";
/// The audit actor of a decision nobody made (timeout, cancel).
const GATEWAY_ACTOR: &str = "gateway";

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

/// The interactive turn the calling task belongs to, if any.
pub(crate) fn current_turn() -> Option<TurnApprover> {
    TURN_APPROVER.try_with(TurnApprover::clone).ok()
}

impl TurnApprover {
    /// Runs `turn` with this approver visible to the gate.
    pub async fn scope<F: Future>(self, turn: F) -> F::Output {
        TURN_APPROVER.scope(self, turn).await
    }

    async fn ask(&self, request: &ApprovalRequest, request_id: &str) -> Decided {
        let answer = self.hub.await_approval(request_id.to_owned());
        let frame = GatewayServerFrame::ApprovalRequest {
            request_id: request_id.to_owned(),
            tool: request.tool.clone(),
            arguments_summary: request.arguments_summary.clone(),
            arguments: request.arguments.clone(),
            safety_tier: request.safety_tier,
        };
        if self.frames.send(frame).await.is_err() {
            self.hub.forget_approval(request_id);
            return Decided::denied(
                AuditDecision::Cancelled,
                GATEWAY_ACTOR,
                "the turn ended before the request could be shown",
            );
        }
        tracing::info!(session = %self.hub.id, tool = %request.tool, %request_id, "approval requested");
        let person = format!("gateway:{}", self.hub.user);
        let decided = tokio::select! {
            answer = answer => match answer {
                Ok(true) => Decided {
                    decision: ApprovalDecision::Approved,
                    outcome: AuditDecision::Approved,
                    actor: person,
                },
                Ok(false) => Decided::denied(AuditDecision::Denied, person, "the user refused it"),
                Err(_) => Decided::denied(
                    AuditDecision::Cancelled,
                    GATEWAY_ACTOR,
                    "the approval request was dropped",
                ),
            },
            () = tokio::time::sleep(self.timeout) => Decided::denied(
                AuditDecision::TimedOut,
                GATEWAY_ACTOR,
                format!(
                    "no answer within {} seconds (gateway.approval_timeout_secs)",
                    self.timeout.as_secs_f64()
                ),
            ),
            () = self.cancel.cancelled() => Decided::denied(
                AuditDecision::Cancelled,
                GATEWAY_ACTOR,
                "the turn was cancelled",
            ),
        };
        self.hub.forget_approval(request_id);
        tracing::info!(%request_id, decision = ?decided.decision, "approval decided");
        decided
    }
}
