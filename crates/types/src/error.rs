//! The error hierarchy. Every `Display` text is written for the person or
//! model that reads it: what failed, with which value, what to do. No text
//! ever contains a secret.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error(
        "invalid user id {value:?}: use 1-64 ASCII letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    InvalidUserId { value: String },
}

/// Failures of a provider call. Returned by `Provider` implementations;
/// `is_retriable` tells the reliability wrapper which ones to retry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// The connection failed or broke (DNS, TCP, TLS, reset). Retriable.
    #[error("provider transport error: {0}")]
    Transport(String),
    /// A non-success status other than 401 and 429. 5xx is retriable,
    /// 4xx is not.
    #[error("provider returned HTTP {status}: {message}")]
    HttpStatus { status: u16, message: String },
    /// The credentials were rejected (HTTP 401/403). Not retriable.
    #[error("provider rejected the credentials: {0}")]
    Unauthorized(String),
    /// HTTP 429. Retriable, after `retry_after` when the provider said so.
    #[error("provider rate limit reached{}: {message}", retry_after_text(.retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// The provider answered with something we could not understand.
    #[error("could not parse the provider response: {0}")]
    ResponseParse(String),
    /// The model is neither in the catalog nor declared by the provider
    /// entry. Raised before any network call.
    #[error("unknown model '{model}' for provider type '{provider_type}'")]
    UnknownModel {
        provider_type: String,
        model: String,
    },
    /// The provider cannot do what was asked (e.g. tools on a model
    /// without tool support).
    #[error("unsupported request: {0}")]
    Unsupported(String),
    /// A stream ended before its terminal event.
    #[error("provider stream ended early: {0}")]
    ConnectionLost(String),
    /// The provider entry cannot be used (missing key, bad base URL).
    #[error("provider configuration error: {0}")]
    Configuration(String),
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {:.1}s)", d.as_secs_f64()))
        .unwrap_or_default()
}

impl ProviderError {
    /// Transport errors, 429, 5xx and dropped streams are transient.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::RateLimited { .. } | Self::ConnectionLost(_) => true,
            Self::HttpStatus { status, .. } => *status >= 500,
            Self::Unauthorized(_)
            | Self::ResponseParse(_)
            | Self::UnknownModel { .. }
            | Self::Unsupported(_)
            | Self::Configuration(_) => false,
        }
    }
}

/// Failures of a tool call. They are fed back to the model as
/// `Tool execution failed: …` so it can correct itself; none is fatal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ToolError {
    /// The arguments are not valid JSON or do not match the schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The security policy refused the call (path outside the allowed
    /// roots, disallowed command, blocked address…).
    #[error("policy violation: {reason}")]
    PolicyViolation { reason: String },
    /// The call ran longer than the tool's timeout and was stopped.
    #[error("tool '{tool}' timed out after {}s", .after.as_secs_f64())]
    Timeout { tool: String, after: Duration },
    /// The tool ran and failed.
    #[error("{0}")]
    Execution(String),
    /// No tool with this name is registered.
    #[error("unknown tool '{0}'")]
    NotFound(String),
    /// A human (or the approval policy) refused a privileged call.
    #[error("tool '{tool}' was not approved: {reason}")]
    ApprovalDenied { tool: String, reason: String },
}

/// Failures of the memory store.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MemoryError {
    /// The database could not be opened or reached.
    #[error("memory database unavailable: {0}")]
    Connection(String),
    /// A statement failed.
    #[error("memory query failed: {0}")]
    Query(String),
    /// A schema migration failed; the database is left at the previous version.
    #[error("memory migration {version} failed: {message}")]
    Migration { version: u32, message: String },
    /// Events must be stored with strictly increasing sequence numbers.
    #[error(
        "sequence {sequence} for session '{session_id}' is not after the last stored sequence {last_sequence}"
    )]
    NonMonotonicSequence {
        session_id: String,
        sequence: i64,
        last_sequence: i64,
    },
    /// A stored payload could not be (de)serialised.
    #[error("memory payload could not be (de)serialised: {0}")]
    Serialization(String),
    /// Computing an embedding failed.
    #[error("embedding failed: {0}")]
    Embedding(String),
    #[error("session '{0}' not found")]
    SessionNotFound(String),
    /// `memory_update` / `memory_delete` named no saved note.
    #[error(
        "there is no saved note '{0}' (note ids look like note-1a2b3c4d5e6f; memory_search finds them)"
    )]
    NoteNotFound(String),
    /// Text that cannot be stored as asked (e.g. an empty note).
    #[error("{0}")]
    Invalid(String),
}

/// Failures of a channel adapter.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    #[error("channel transport error: {0}")]
    Transport(String),
    #[error("channel rejected the credentials: {0}")]
    Unauthorized(String),
    #[error("channel protocol error: {0}")]
    Protocol(String),
    #[error("channel closed")]
    Closed,
    /// The sender is not on the channel's allowlist.
    #[error("sender '{sender_id}' is not allowed on channel '{channel}'")]
    SenderNotAllowed { channel: String, sender_id: String },
}

/// Failures loading or validating `AgentConfig`. Each validation rule has its
/// own variant so the message says exactly which rule failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A configuration file exists but could not be read or parsed.
    #[error("cannot read configuration file {}: {message}", .path.display())]
    File { path: PathBuf, message: String },
    /// A key that no configuration field has. Typos are the commonest
    /// configuration bug, so this is an error, never ignored.
    #[error("unknown configuration key '{key}' in {source_name}")]
    UnknownKey { key: String, source_name: String },
    /// A value has the wrong type or shape.
    #[error("invalid configuration value{}: {message}", key_text(.key, .source_name))]
    InvalidValue {
        key: Option<String>,
        source_name: Option<String>,
        message: String,
    },
    /// Rule 1: the major version of `config_version` must be 1.
    #[error(
        "unsupported config_version '{found}': this build reads major version 1 (e.g. \"1.0\")"
    )]
    UnsupportedVersion { found: String },
    /// Rule 2: `selection.provider` must name a registry entry.
    #[error(
        "selection.provider is not set; add `[selection] provider = \"<name>\"` naming one of: {known}"
    )]
    MissingProviderSelection { known: String },
    #[error(
        "selection.provider '{name}' is not in the provider registry; configured providers: {known}"
    )]
    UnknownProvider { name: String, known: String },
    /// Rule 3: `selection.model` must be known to the catalog or the entry.
    #[error("selection.model is not set; add `[selection] model = \"<model id>\"`")]
    MissingModelSelection,
    #[error(
        "model '{model}' is unknown for provider '{provider}' (type {provider_type}); use a catalog model or declare it under [[providers.{provider}.models]]"
    )]
    UnknownModel {
        provider: String,
        provider_type: String,
        model: String,
    },
    /// Rule 4: turn and gateway limits must be positive; `field` is the
    /// full key (`runtime.max_turns`).
    #[error("{field} must be greater than 0")]
    NonPositiveLimit { field: &'static str },
    /// Rule 5, for the knowledge directory.
    #[error("{0}")]
    KnowledgePath(String),
    /// Rule 4, for a provider entry's timeouts.
    #[error("providers.{provider}.{field} must be greater than 0")]
    NonPositiveProviderLimit {
        provider: String,
        field: &'static str,
    },
    /// Rule 5a: a remote database needs a token.
    #[error("memory.remote_url is set but memory.auth_token is missing")]
    RemoteWithoutAuthToken,
    /// Rule 5c: the embeddings endpoint names a provider registry entry.
    #[error(
        "memory.embedding.provider '{name}' is not in the provider registry; configured providers: {known}"
    )]
    UnknownEmbeddingProvider { name: String, known: String },
    /// Rule 5b: retrieval weights must sum to 1.0.
    #[error(
        "memory.retrieval.vector_weight ({vector_weight}) + fts_weight ({fts_weight}) must equal 1.0"
    )]
    RetrievalWeights { vector_weight: f64, fts_weight: f64 },
    /// Rule 6: backoff bounds.
    #[error("reliability.{field} must be greater than 0")]
    NonPositiveBackoff { field: &'static str },
    #[error(
        "reliability.backoff_base_ms ({base_ms}) must not exceed reliability.backoff_max_ms ({max_ms})"
    )]
    BackoffBaseAboveMax { base_ms: u64, max_ms: u64 },
    /// No credential was found for a provider entry.
    #[error(
        "no API key for provider '{provider}': set `api_key` in its entry, or the environment variable {env_var}, or API_KEY"
    )]
    MissingCredential { provider: String, env_var: String },
}

fn key_text(key: &Option<String>, source: &Option<String>) -> String {
    match (key, source) {
        (Some(key), Some(source)) => format!(" for '{key}' in {source}"),
        (Some(key), None) => format!(" for '{key}'"),
        (None, Some(source)) => format!(" in {source}"),
        (None, None) => String::new(),
    }
}

/// Failures loading or validating the runner's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RunnerConfigError {
    #[error("cannot read runner configuration {}: {message}", .path.display())]
    Read { path: PathBuf, message: String },
    #[error("invalid runner configuration {}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("no users are configured in {}; add a [users.<name>] table", .path.display())]
    NoUsers { path: PathBuf },
    #[error("several users are configured ({known}); choose one with --user")]
    AmbiguousUser { known: String },
    #[error("user '{user}' is not configured; configured users: {known}")]
    UnknownUser { user: String, known: String },
    #[error("runner configuration is invalid: {0}")]
    Invalid(String),
}

/// Which budget a turn exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    Turns,
    Cost,
    Timeout,
}

impl BudgetKind {
    /// The configuration key that sets this budget.
    pub fn config_key(self) -> &'static str {
        match self {
            Self::Turns => "runtime.max_turns",
            Self::Cost => "runtime.max_cost",
            Self::Timeout => "runtime.turn_timeout_secs",
        }
    }
}

impl std::fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Each names its key, so the reader knows what to raise.
        f.write_str(match self {
            Self::Turns => "model-call limit per turn (runtime.max_turns)",
            Self::Cost => "session cost budget (runtime.max_cost, USD)",
            Self::Timeout => "wall-clock limit of a turn (runtime.turn_timeout_secs)",
        })
    }
}

/// What a user turn can end with besides success.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The turn was cancelled; partial output was kept. An outcome, not a
    /// failure to log loudly.
    #[error("the turn was cancelled")]
    Cancelled,
    /// A budget ran out; what was produced so far was kept.
    #[error(
        "the turn stopped: {kind} reached; what was produced so far is kept. Raise {} in agent.toml (or OXYDRA__{}) to allow more",
        kind.config_key(),
        kind.config_key().to_uppercase().replace('.', "__")
    )]
    BudgetExceeded { kind: BudgetKind },
}

impl RuntimeError {
    /// Fatal outcomes end the turn; recoverable ones are fed back or retried.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Cancelled | Self::BudgetExceeded { .. } => true,
            Self::Provider(error) => !error.is_retriable(),
            Self::Tool(_) => false,
            Self::Memory(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails_with_provider() -> Result<(), RuntimeError> {
        Err(ProviderError::Unauthorized("bad key".into()))?
    }

    fn fails_with_tool() -> Result<(), RuntimeError> {
        Err(ToolError::NotFound("nope".into()))?
    }

    fn fails_with_memory() -> Result<(), RuntimeError> {
        Err(MemoryError::Query("locked".into()))?
    }

    #[test]
    fn domain_errors_convert_into_runtime_error() {
        assert_eq!(
            fails_with_provider().unwrap_err(),
            RuntimeError::Provider(ProviderError::Unauthorized("bad key".into()))
        );
        assert_eq!(
            fails_with_tool().unwrap_err(),
            RuntimeError::Tool(ToolError::NotFound("nope".into()))
        );
        assert_eq!(
            fails_with_memory().unwrap_err(),
            RuntimeError::Memory(MemoryError::Query("locked".into()))
        );
    }

    #[test]
    fn conversions_keep_the_domain_message() {
        let err: RuntimeError = ToolError::NotFound("fly".into()).into();
        assert_eq!(err.to_string(), "unknown tool 'fly'");
        let err: RuntimeError = ProviderError::RateLimited {
            retry_after: Some(Duration::from_millis(1500)),
            message: "slow down".into(),
        }
        .into();
        assert_eq!(
            err.to_string(),
            "provider rate limit reached (retry after 1.5s): slow down"
        );
    }

    #[test]
    fn retriable_classification() {
        let retriable = [
            ProviderError::Transport("reset".into()),
            ProviderError::HttpStatus {
                status: 503,
                message: "busy".into(),
            },
            ProviderError::RateLimited {
                retry_after: None,
                message: String::new(),
            },
            ProviderError::ConnectionLost("eof".into()),
        ];
        let permanent = [
            ProviderError::HttpStatus {
                status: 400,
                message: "bad".into(),
            },
            ProviderError::Unauthorized("no".into()),
            ProviderError::ResponseParse("junk".into()),
            ProviderError::UnknownModel {
                provider_type: "openai".into(),
                model: "x".into(),
            },
        ];
        assert!(retriable.iter().all(ProviderError::is_retriable));
        assert!(!permanent.iter().any(ProviderError::is_retriable));
    }

    #[test]
    fn fatal_classification() {
        assert!(RuntimeError::Cancelled.is_fatal());
        assert!(
            RuntimeError::BudgetExceeded {
                kind: BudgetKind::Cost
            }
            .is_fatal()
        );
        assert!(!RuntimeError::Tool(ToolError::Execution("x".into())).is_fatal());
        assert_eq!(
            RuntimeError::BudgetExceeded {
                kind: BudgetKind::Turns
            }
            .to_string(),
            "the turn stopped: model-call limit per turn (runtime.max_turns) reached; what was produced so far is kept. Raise runtime.max_turns in agent.toml (or OXYDRA__RUNTIME__MAX_TURNS) to allow more"
        );
    }

    #[test]
    fn a_timeout_names_the_key_that_sets_it() {
        assert_eq!(
            RuntimeError::BudgetExceeded {
                kind: BudgetKind::Timeout
            }
            .to_string(),
            "the turn stopped: wall-clock limit of a turn (runtime.turn_timeout_secs) reached; what was produced so far is kept. Raise runtime.turn_timeout_secs in agent.toml (or OXYDRA__RUNTIME__TURN_TIMEOUT_SECS) to allow more"
        );
    }
}
