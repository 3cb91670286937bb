//! Oxydra's shared contracts: the message model, the extension traits
//! (`Provider`, `Tool`, `Memory`, `MemoryRetrieval`, `Channel`), the error
//! hierarchy, configuration, the model catalog and every wire protocol.
//!
//! This is the foundation layer: it depends on no other Oxydra crate and
//! knows nothing about HTTP, WebSockets, databases or processes. Its only IO
//! is reading configuration files and the blocking frame reader used for
//! the bootstrap envelope on stdin.

pub mod audit;
pub mod catalog;
pub mod channel;
mod channels_config;
pub mod clock;
pub mod config;
pub mod error;
pub mod ids;
pub mod memory;
pub mod message;
pub mod protocol;
pub mod provider;
pub mod runner;
pub mod schema;
pub mod secret;
pub mod tool;

pub use audit::{AuditDecision, AuditKind, AuditLog, AuditRecord, ChannelSender};
pub use catalog::{ModelCatalog, ModelDescriptor, ProviderCaps, ProviderType};
pub use channel::{Channel, ChannelInboundEvent, ChannelListenStream, ChannelOutboundEvent};
pub use config::AgentConfig;
pub use error::{
    ChannelError, ConfigError, MemoryError, ProviderError, RunnerConfigError, RuntimeError,
    ToolError,
};
pub use ids::{ModelId, ProviderId, SessionId, TurnId, UserId};
pub use memory::{
    AgentMemory, ChunkInput, Memory, MemoryRecord, MemoryRetrieval, MemorySummaryState,
    RetrievalResult, SavedNote, SearchScope, SummaryWriteOutcome, UpsertOutcome,
};
pub use message::{
    Context, FinishReason, GenerationSettings, Message, MessageRole, ProviderStream,
    ReasoningBlock, Response, ResponseRef, Signature, StreamItem, ToolCall, UsageUpdate,
};
pub use provider::Provider;
pub use schema::{FunctionDecl, JsonSchema};
pub use secret::SecretString;
pub use tool::{SafetyTier, Tool, ToolContext};

#[cfg(test)]
mod test_support {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    /// Serialises to JSON and back and asserts nothing changed.
    pub fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
        let json = serde_json::to_string(value).expect("serialises");
        let back: T = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{json} does not deserialise: {e}"));
        assert_eq!(&back, value, "round trip changed {json}");
    }
}

#[cfg(test)]
mod enum_wire_names {
    use crate::catalog::{DeprecationState, ProviderType};
    use crate::error::BudgetKind;
    use crate::message::MessageRole;
    use crate::protocol::bootstrap::{ApprovalPolicy, ShellMode};
    use crate::protocol::gateway::GatewayErrorCode;
    use crate::protocol::shell::StreamType;
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    /// Each variant serialises to `name` and parses back; an unknown name
    /// is rejected with serde's "unknown variant" message.
    fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(cases: &[(T, &str)]) {
        for (value, name) in cases {
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), value);
        }
        let err = serde_json::from_str::<T>("\"no_such_variant\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn every_unit_enum_has_a_stable_wire_name() {
        check(&[
            (MessageRole::System, "system"),
            (MessageRole::User, "user"),
            (MessageRole::Assistant, "assistant"),
            (MessageRole::Tool, "tool"),
        ]);
        check(&[
            (ProviderType::Openai, "openai"),
            (ProviderType::OpenaiResponses, "openai_responses"),
            (ProviderType::Anthropic, "anthropic"),
            (ProviderType::Gemini, "gemini"),
        ]);
        for provider in ProviderType::ALL {
            assert_eq!(
                serde_json::to_string(&provider).unwrap(),
                format!("\"{}\"", provider.as_str())
            );
        }
        check(&[
            (DeprecationState::Active, "active"),
            (DeprecationState::Deprecated, "deprecated"),
            (DeprecationState::Retired, "retired"),
        ]);
        check(&[
            (BudgetKind::Turns, "turns"),
            (BudgetKind::Cost, "cost"),
            (BudgetKind::Timeout, "timeout"),
        ]);
        check(&[
            (ShellMode::Session, "session"),
            (ShellMode::Host, "host"),
            (ShellMode::Disabled, "disabled"),
        ]);
        check(&[
            (ApprovalPolicy::Ask, "ask"),
            (ApprovalPolicy::Allow, "allow"),
            (ApprovalPolicy::Deny, "deny"),
        ]);
        check(&[
            (StreamType::Stdout, "stdout"),
            (StreamType::Stderr, "stderr"),
        ]);
        check(&[
            (GatewayErrorCode::Unauthorized, "unauthorized"),
            (GatewayErrorCode::HelloRequired, "hello_required"),
            (GatewayErrorCode::MalformedFrame, "malformed_frame"),
            (GatewayErrorCode::FrameTooLarge, "frame_too_large"),
            (GatewayErrorCode::Busy, "busy"),
            (GatewayErrorCode::NoActiveTurn, "no_active_turn"),
            (GatewayErrorCode::UnknownApproval, "unknown_approval"),
            (GatewayErrorCode::UnknownSession, "unknown_session"),
            (GatewayErrorCode::TurnFailed, "turn_failed"),
            (GatewayErrorCode::Internal, "internal"),
        ]);
    }

    #[test]
    fn caps_round_trip() {
        let caps = crate::ModelCatalog::pinned()
            .caps(ProviderType::Gemini, &"gemini-2.5-pro".into())
            .unwrap();
        crate::test_support::round_trip(&caps);
    }
}
