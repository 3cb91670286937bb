//! The `Tool` trait and the safety tiers that decide parallelism and approval.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ToolError;
use crate::ids::SessionId;
use crate::schema::FunctionDecl;

/// How dangerous a tool is.
///
/// Contiguous `ReadOnly` calls run concurrently; everything else runs alone
/// and in order. `Privileged` calls can be gated behind human approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SafetyTier {
    /// No side effects.
    ReadOnly,
    /// Changes state inside the sandbox.
    SideEffecting,
    /// High risk, such as running shell commands.
    Privileged,
}

impl fmt::Display for SafetyTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadOnly => "read-only",
            Self::SideEffecting => "side-effecting",
            Self::Privileged => "privileged",
        })
    }
}

/// What a tool call is made for: the conversation it belongs to. Tools
/// that keep state per conversation (the shell's working directory and
/// environment) key it by `session_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolContext {
    pub session_id: SessionId,
}

impl ToolContext {
    pub fn new(session_id: impl Into<SessionId>) -> Self {
        Self {
            session_id: session_id.into(),
        }
    }
}

/// Something the model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The declaration the model sees.
    fn schema(&self) -> FunctionDecl;
    /// Runs the tool with the raw JSON arguments the model produced, for
    /// the conversation `context` names.
    async fn execute(&self, args: &str, context: &ToolContext) -> Result<String, ToolError>;
    /// How long one call may run; the registry enforces it.
    fn timeout(&self) -> Duration;
    fn safety_tier(&self) -> SafetyTier;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;

    #[test]
    fn tiers_round_trip_by_name() {
        for tier in [
            SafetyTier::ReadOnly,
            SafetyTier::SideEffecting,
            SafetyTier::Privileged,
        ] {
            round_trip(&tier);
        }
        // The operator-facing spelling (MCP server config) is the variant name.
        assert_eq!(
            serde_json::to_string(&SafetyTier::SideEffecting).unwrap(),
            "\"SideEffecting\""
        );
        assert!(serde_json::from_str::<SafetyTier>("\"Root\"").is_err());
    }

    #[test]
    fn tiers_order_by_risk() {
        assert!(SafetyTier::ReadOnly < SafetyTier::SideEffecting);
        assert!(SafetyTier::SideEffecting < SafetyTier::Privileged);
    }
}
