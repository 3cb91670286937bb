//! Oxydra's shared contracts: the message model, the extension traits
//! (`Provider`, `Tool`, `Memory`, `MemoryRetrieval`, `Channel`), the error
//! hierarchy, configuration, the model catalog and every wire protocol.
//!
//! This is the foundation layer: it depends on no other Oxydra crate and
//! knows nothing about HTTP, WebSockets, databases or processes. Its only IO
//! is reading configuration files and the blocking frame reader used for
//! the bootstrap envelope on stdin.

pub mod catalog;
pub mod channel;
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

pub use catalog::{ModelCatalog, ModelDescriptor, ProviderCaps, ProviderType};
pub use channel::{Channel, ChannelInboundEvent, ChannelListenStream, ChannelOutboundEvent};
pub use config::AgentConfig;
pub use error::{
    ChannelError, ConfigError, MemoryError, ProviderError, RunnerConfigError, RuntimeError,
    ToolError,
};
pub use ids::{ModelId, ProviderId, SessionId, TurnId, UserId};
pub use memory::{Memory, MemoryRetrieval};
pub use message::{
    Context, FinishReason, Message, MessageRole, ProviderStream, Response, StreamItem, ToolCall,
    UsageUpdate,
};
pub use provider::Provider;
pub use schema::{FunctionDecl, JsonSchema};
pub use secret::SecretString;
pub use tool::{SafetyTier, Tool};

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
