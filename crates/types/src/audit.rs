//! The audit log's records (spec 10): one durable, append-only account of
//! security-relevant events. Guest-side events (approval requests and
//! decisions) are kept in the memory database; runner-side events in
//! `<workspace_root>/.runner/audit/<user>.jsonl`. A record never holds a
//! secret or message text: arguments appear only as a hash and a size.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::MemoryError;
use crate::ids::SessionId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A privileged tool call asked a person for approval.
    ApprovalRequested,
    /// A privileged tool call was approved or refused (by a person, the
    /// operator's fixed policy, a timeout or a cancel).
    ApprovalDecided,
    /// A chat channel refused someone not on its allowlists (runner side;
    /// `sender` says who and where).
    SenderRefused,
}

/// Who reached a chat channel, and where (for `SenderRefused`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSender {
    /// The channel's id (`telegram`).
    pub channel: String,
    /// The platform's id of the person.
    pub sender_id: String,
    /// The platform's id of the chat.
    pub chat_id: String,
}

/// How a decision went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Approved,
    Denied,
    /// Nobody answered within `gateway.approval_timeout_secs`.
    TimedOut,
    /// The turn ended (cancelled, or its request could not be shown).
    Cancelled,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The user whose agent it concerns.
    pub user: String,
    pub kind: AuditKind,
    /// Who acted: `model` (it asked), `gateway:<user>` (a person through a
    /// gateway client), `policy` (the operator's fixed approval policy),
    /// `gateway` (a timeout or cancel, nobody's answer).
    pub actor: String,
    /// What it concerns: the tool's name.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<AuditDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Ties a request to its decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// SHA-256 (hex) of the scrubbed arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<ChannelSender>,
}

/// Where audit records go. Appending must not fail silently: callers log
/// an error (and carry on — an audit outage never approves anything).
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), MemoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;

    #[test]
    fn audit_records_round_trip_and_reject_unknown_fields() {
        let record = AuditRecord {
            at_ms: 1_765_000_000_000,
            user: "alice".into(),
            kind: AuditKind::ApprovalDecided,
            actor: "gateway:alice".into(),
            subject: "shell_exec".into(),
            decision: Some(AuditDecision::TimedOut),
            reason: Some("no answer within 300 seconds".into()),
            session_id: Some("s-1".into()),
            request_id: Some("approval-1".into()),
            arguments_sha256: Some("ab".repeat(32)),
            arguments_bytes: Some(42),
            sender: None,
        };
        round_trip(&record);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["kind"], "approval_decided");
        assert_eq!(json["decision"], "timed_out");
        let mut extra = json.clone();
        extra["arguments"] = "ls".into();
        assert!(serde_json::from_value::<AuditRecord>(extra).is_err());
    }
}
