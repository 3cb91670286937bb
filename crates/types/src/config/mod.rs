//! `AgentConfig`: every setting of an agent, its defaults, the provider
//! registry, and (in submodules) layered loading, validation, credential
//! resolution and the explained rendering of the effective configuration.

mod credentials;
mod explain;
mod loader;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogError, DeprecationState, ModelCatalog, ModelDescriptor, ProviderType};
use crate::ids::ModelId;
use crate::secret::SecretString;

pub use credentials::{CredentialSource, GENERIC_API_KEY_ENV, ResolvedCredential};
pub use explain::ExplainedValue;
pub use loader::{CONFIG_ENV_PREFIX, CliOverrides, ConfigSources, Environment, LoadedConfig};

/// The configuration major version this build reads.
pub const SUPPORTED_CONFIG_MAJOR: u64 = 1;

/// The root of an agent's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub config_version: String,
    pub runtime: RuntimeConfig,
    pub memory: MemoryConfig,
    pub selection: SelectionConfig,
    pub reliability: ReliabilityConfig,
    /// The provider registry: named entries, several of one type allowed.
    pub providers: BTreeMap<String, ProviderEntry>,
    pub tools: ToolsConfig,
    pub gateway: GatewayConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            config_version: "1.0".to_owned(),
            runtime: RuntimeConfig::default(),
            memory: MemoryConfig::default(),
            selection: SelectionConfig::default(),
            reliability: ReliabilityConfig::default(),
            providers: BTreeMap::new(),
            tools: ToolsConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

/// Limits of the guest's WebSocket gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// WebSocket connections served at once; more are refused (HTTP 503).
    pub max_connections: usize,
    /// Largest text frame a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Turns that may wait in one session's lane behind the running one;
    /// the next `SendTurn` gets a `busy` error.
    pub lane_depth: usize,
    /// Recent frames kept per session for reconnecting clients.
    pub replay_frames: usize,
    /// How long a privileged tool call waits for the human's answer.
    pub approval_timeout_secs: u64,
    /// How long a session stays loaded with no client and no turn; then
    /// its lane and replay buffer are freed.
    pub idle_session_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_frame_bytes: 256 * 1024,
            lane_depth: 16,
            replay_frames: 1024,
            approval_timeout_secs: 300,
            idle_session_secs: 900,
        }
    }
}

/// Limits of the turn loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Model calls per user turn. Real agent work (read, edit, run, fix)
    /// takes dozens; the cost budget (`max_cost`) is the real guard.
    pub max_turns: u32,
    /// Wall-clock cap of one whole user turn (every model call, tool run
    /// and approval wait in it). Streams are judged by their progress
    /// (`providers.<name>.stream_idle_timeout_secs`) and tools by their own
    /// timeouts; this only stops a turn that goes on for too long overall.
    pub turn_timeout_secs: u64,
    /// Optional per-session cost budget in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Capacity of bounded stream channels.
    pub stream_buffer_size: usize,
    /// Share of the model's input window kept free: token counts are
    /// `cl100k_base` estimates, inexact for non-OpenAI models.
    pub context_safety_margin: f64,
    pub summarization: SummarizationConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_turns: 50,
            turn_timeout_secs: 30 * 60,
            max_cost: None,
            stream_buffer_size: 32,
            context_safety_margin: 0.10,
            summarization: SummarizationConfig::default(),
        }
    }
}

/// When and how far the rolling summary condenses history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummarizationConfig {
    /// Context utilisation that triggers condensing.
    pub trigger_ratio: f64,
    /// Utilisation to reach after condensing.
    pub target_ratio: f64,
    /// Unsummarised messages required before condensing.
    pub min_turns: u32,
    /// The most of the input budget the rolling summary itself may take;
    /// past it, the summary is condensed again so it never crowds out the
    /// live history.
    pub max_summary_ratio: f64,
}

impl Default for SummarizationConfig {
    fn default() -> Self {
        Self {
            trigger_ratio: 0.80,
            target_ratio: 0.50,
            min_turns: 4,
            max_summary_ratio: 0.15,
        }
    }
}

/// Persistence and retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    pub enabled: bool,
    /// The local libSQL database file.
    pub db_path: PathBuf,
    /// A libSQL server (sqld / Turso) instead of the local file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
    /// Required when `remote_url` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<SecretString>,
    pub retrieval: RetrievalConfig,
    /// How text is turned into vectors for similarity search.
    pub embedding: EmbeddingConfig,
    /// The background indexer behind retrieval.
    pub indexing: IndexingConfig,
    /// The knowledge directory: documents indexed for `memory_search`.
    pub knowledge: KnowledgeConfig,
    /// What an acknowledged message survives (local database).
    pub durability: Durability,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            db_path: PathBuf::from("oxydra_memory.db"),
            remote_url: None,
            auth_token: None,
            retrieval: RetrievalConfig::default(),
            embedding: EmbeddingConfig::default(),
            indexing: IndexingConfig::default(),
            knowledge: KnowledgeConfig::default(),
            durability: Durability::default(),
        }
    }
}

/// What a message survives once it is acknowledged (`memory.durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The agent's process crashing or being killed (`kill -9`): a commit
    /// is in the operating system's hands before it is acknowledged, and
    /// the WAL is flushed to disk at checkpoints. A power cut or kernel
    /// crash may lose the last moments, never the database's integrity
    /// (SQLite `synchronous = NORMAL` in WAL mode).
    #[default]
    ProcessCrash,
    /// A power cut too: every commit is flushed to disk before it is
    /// acknowledged (`synchronous = FULL`), a disk flush per stored
    /// message.
    PowerLoss,
}

/// The knowledge directory (`[memory.knowledge]`): text files the user
/// puts there are indexed as documents, followed while the agent runs,
/// and found by `memory_search` with scope `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    pub enabled: bool,
    /// A workspace path under `/shared`.
    pub path: String,
    /// How often the directory is looked at for changes.
    pub poll_secs: u64,
    /// Larger files are left out (with a log line saying so).
    pub max_file_bytes: u64,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/shared/knowledge".to_owned(),
            poll_secs: 5,
            max_file_bytes: 2 * 1024 * 1024,
        }
    }
}

impl KnowledgeConfig {
    /// The directory below `/shared` (`knowledge` for the default), or
    /// why `path` is not one.
    pub fn relative_to_shared(&self) -> Result<&str, String> {
        let relative = self
            .path
            .strip_prefix("/shared/")
            .map(|p| p.trim_end_matches('/'))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                format!(
                    "memory.knowledge.path '{}' must be a directory under /shared, e.g. /shared/knowledge",
                    self.path
                )
            })?;
        if relative
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(format!(
                "memory.knowledge.path '{}' must be a plain path under /shared (no '.', '..' or empty parts)",
                self.path
            ));
        }
        Ok(relative)
    }
}

/// The background indexer (`[memory.indexing]`). Storing a message only
/// appends it; chunking, embedding and the full-text and vector indexes
/// follow in batches off the turn path, so retrieval may lag the newest
/// messages by at most `max_backlog` events (which are in the live
/// context anyway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexingConfig {
    /// Events stored but not yet indexed before a store waits for the
    /// indexer (backpressure instead of an unbounded queue).
    pub max_backlog: usize,
    /// Events indexed in one transaction.
    pub batch_events: usize,
}

impl Default for IndexingConfig {
    fn default() -> Self {
        Self {
            max_backlog: 1024,
            batch_events: 64,
        }
    }
}

/// Hybrid retrieval weights and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    pub enabled: bool,
    pub max_results: usize,
    /// Weight of vector similarity; with `fts_weight` it must sum to 1.0.
    pub vector_weight: f64,
    pub fts_weight: f64,
    /// Which stored chunks a query searches.
    pub scope: RetrievalScope,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_results: 5,
            vector_weight: 0.7,
            fts_weight: 0.3,
            scope: RetrievalScope::Session,
        }
    }
}

/// The chunks a hybrid query searches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrievalScope {
    /// Only the session being served.
    #[default]
    Session,
    /// Every session in the user's memory database.
    User,
}

/// The embedder behind vector similarity (`[memory.embedding]`). Vectors
/// are stored with the embedder's model name, so switching embedders never
/// compares vectors of different models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbeddingConfig {
    /// The default: the local semantic model installed with
    /// `oxydra-runner models install` when it is present, otherwise the
    /// lexical embedder. The runner resolves it to `semantic` or `lexical`
    /// before the guest starts (it knows where installed models live and
    /// grants the guest read access to them); anything that builds an
    /// embedder from an unresolved `auto` gets the lexical one.
    Auto {},
    /// The deterministic lexical embedder (hashed words and character
    /// n-grams): always available, no model files, no network. A struct
    /// variant so that stray keys (`model_dir` here) are rejected.
    Lexical {},
    /// A BERT-class sentence-embedding model (384 dimensions, e.g.
    /// all-MiniLM-L6-v2 or BGE-small) run in-process from files on disk;
    /// needs a build with the memory crate's `semantic` feature.
    Semantic {
        /// Holds `config.json`, `tokenizer.json` and `model.safetensors`.
        model_dir: PathBuf,
        /// The stored model name; defaults to the directory's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_name: Option<String>,
    },
    /// An OpenAI-compatible `POST {base_url}/embeddings` endpoint, reached
    /// with the base URL and credentials of a provider registry entry.
    OpenaiCompatible {
        /// The name of a `[providers.<name>]` entry.
        provider: String,
        /// The embedding model, e.g. `text-embedding-3-small`.
        model: String,
    },
}

/// Which provider entry and model the agent uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelectionConfig {
    /// The name of a provider registry entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelId>,
}

/// A provider/model pair tried when the primary selection is exhausted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackSelection {
    pub provider: String,
    pub model: ModelId,
}

/// Retry policy of the reliability wrapper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReliabilityConfig {
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Tried in order when the primary selection fails for good.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<FallbackSelection>,
}

impl Default for ReliabilityConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base_ms: 1000,
            backoff_max_ms: 30000,
            fallbacks: Vec::new(),
        }
    }
}

/// How the core tools behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Tool output beyond this many bytes is truncated before the model
    /// sees it.
    pub max_output_bytes: usize,
    pub shell: ShellToolConfig,
    pub web: WebToolConfig,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            max_output_bytes: 16 * 1024,
            shell: ShellToolConfig::default(),
            web: WebToolConfig::default(),
        }
    }
}

/// `shell_exec` settings (whether it exists at all is the runner's
/// decision, from the sandbox tier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShellToolConfig {
    /// The executables `shell_exec` may run; unset means the built-in
    /// default list (see docs/shell-policy.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<Vec<String>>,
    /// How much shell syntax a command line may use; unset means chosen by
    /// where the shell runs: `compound` in a sandbox (container sidecar or
    /// microVM), `strict` on the host (docs/shell-policy.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syntax: Option<ShellSyntax>,
    /// The longest `timeout_secs` a `shell_exec` call may ask for.
    pub max_timeout_secs: u64,
}

impl Default for ShellToolConfig {
    fn default() -> Self {
        Self {
            allowlist: None,
            syntax: None,
            max_timeout_secs: 600,
        }
    }
}

/// The shell syntax `shell_exec` accepts (`tools.shell.syntax`). Either
/// way every program is checked against the allowlist and the argument
/// rules; `compound` only lets several such commands share one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShellSyntax {
    /// One simple command per call: no pipes, lists or redirections.
    Strict,
    /// Pipelines, `&&` / `||` / `;` lists, `cd` and redirections inside
    /// the workspace; substitution, subshells and background jobs stay
    /// refused.
    Compound,
}

/// `web_fetch` / `web_search` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebToolConfig {
    pub enabled: bool,
    pub timeout_secs: u64,
    /// The most bytes of a response body that are read.
    pub max_response_bytes: usize,
    /// The search backend; without one `web_search` is not offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchConfig>,
    /// Internal hosts the web tools may reach despite SSRF protection:
    /// `name[:port]` or `address[/prefix][:port]` (e.g. a LAN service).
    /// Cloud metadata addresses can never be opened. A configured SearXNG
    /// host is added automatically.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_internal: Vec<String>,
}

impl Default for WebToolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_secs: 20,
            max_response_bytes: 2 * 1024 * 1024,
            search: None,
            allow_internal: Vec::new(),
        }
    }
}

/// Where `web_search` sends queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum SearchConfig {
    /// A SearXNG instance with the JSON format enabled.
    Searxng { base_url: String },
    /// The Brave Search API; the key is read from `api_key_env`.
    Brave {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        #[serde(default = "default_brave_key_env")]
        api_key_env: String,
    },
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self::Auto {}
    }
}

fn default_brave_key_env() -> String {
    "BRAVE_API_KEY".to_owned()
}

/// One entry of the provider registry (`[providers.<name>]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub provider_type: ProviderType,
    /// An explicit key; wins over every environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// The variable holding the key (default per type, e.g. `OPENAI_API_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Proxies, OpenRouter, local servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Models the pinned catalog does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<DeclaredModel>,
    /// A stream that sends no byte for this long is treated as a dropped
    /// connection (retried like one while nothing reached the user).
    #[serde(default = "default_stream_idle_timeout_secs")]
    pub stream_idle_timeout_secs: u64,
    /// How long a request may go without its first piece of content (a
    /// streamed token, or a whole non-streamed answer); reasoning models
    /// may think for minutes before they write.
    #[serde(default = "default_first_token_timeout_secs")]
    pub first_token_timeout_secs: u64,
}

fn default_stream_idle_timeout_secs() -> u64 {
    90
}

fn default_first_token_timeout_secs() -> u64 {
    300
}

impl ProviderEntry {
    /// An entry of `provider_type` with every optional field unset.
    pub fn new(provider_type: ProviderType) -> Self {
        Self {
            provider_type,
            api_key: None,
            api_key_env: None,
            base_url: None,
            headers: BTreeMap::new(),
            models: Vec::new(),
            stream_idle_timeout_secs: default_stream_idle_timeout_secs(),
            first_token_timeout_secs: default_first_token_timeout_secs(),
        }
    }

    /// The pinned catalog with this entry's declared models merged in.
    pub fn catalog(&self, pinned: &ModelCatalog) -> Result<ModelCatalog, CatalogError> {
        pinned.with_extra_models(self.models.iter().map(|m| m.descriptor(self.provider_type)))
    }
}

/// A model declared in a provider entry (`[[providers.<name>.models]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredModel {
    pub id: ModelId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub max_input_tokens: u64,
    #[serde(default = "default_declared_max_output")]
    pub max_output_tokens: u64,
    #[serde(default = "default_true")]
    pub supports_tools: bool,
    #[serde(default = "default_true")]
    pub supports_streaming: bool,
    #[serde(default)]
    pub supports_reasoning_traces: bool,
    #[serde(default)]
    pub supports_json_mode: bool,
    /// USD per million tokens; 0 for local models.
    #[serde(default)]
    pub input_price_per_million: f64,
    #[serde(default)]
    pub output_price_per_million: f64,
}

fn default_declared_max_output() -> u64 {
    4096
}

fn default_true() -> bool {
    true
}

impl DeclaredModel {
    pub fn descriptor(&self, provider: ProviderType) -> ModelDescriptor {
        ModelDescriptor {
            id: self.id.clone(),
            provider,
            display_name: self
                .display_name
                .clone()
                .unwrap_or_else(|| self.id.to_string()),
            supports_tools: self.supports_tools,
            supports_streaming: self.supports_streaming,
            supports_reasoning_traces: self.supports_reasoning_traces,
            supports_json_mode: self.supports_json_mode,
            max_input_tokens: self.max_input_tokens,
            max_output_tokens: self.max_output_tokens,
            input_price_per_million: self.input_price_per_million,
            output_price_per_million: self.output_price_per_million,
            cache_read_price_per_million: None,
            cache_write_price_per_million: None,
            deprecation_state: DeprecationState::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let config = AgentConfig::default();
        assert_eq!(config.config_version, "1.0");
        assert_eq!(config.runtime.max_turns, 50);
        assert_eq!(config.runtime.turn_timeout_secs, 1800);
        assert_eq!(config.tools.shell.max_timeout_secs, 600);
        assert_eq!(config.runtime.summarization.max_summary_ratio, 0.15);
        assert_eq!(config.runtime.max_cost, None);
        assert_eq!(config.runtime.stream_buffer_size, 32);
        assert_eq!(config.runtime.summarization.trigger_ratio, 0.80);
        assert_eq!(config.runtime.summarization.target_ratio, 0.50);
        assert_eq!(config.runtime.summarization.min_turns, 4);
        assert!(config.memory.enabled);
        assert_eq!(config.memory.db_path, PathBuf::from("oxydra_memory.db"));
        assert_eq!(config.memory.remote_url, None);
        assert!(config.memory.retrieval.enabled);
        assert_eq!(config.memory.retrieval.max_results, 5);
        assert_eq!(config.memory.retrieval.vector_weight, 0.7);
        assert_eq!(config.memory.retrieval.fts_weight, 0.3);
        assert_eq!(config.memory.retrieval.scope, RetrievalScope::Session);
        assert_eq!(config.memory.embedding, EmbeddingConfig::Auto {});
        assert_eq!(config.selection, SelectionConfig::default());
        assert_eq!(config.reliability.max_attempts, 3);
        assert_eq!(config.reliability.backoff_base_ms, 1000);
        assert_eq!(config.reliability.backoff_max_ms, 30000);
    }

    #[test]
    fn tools_section_parses_with_defaults() {
        let config: AgentConfig = toml::from_str(
            r#"
[tools]
max_output_bytes = 8192
[tools.shell]
allowlist = ["ls", "cat"]
[tools.web.search]
backend = "brave"
"#,
        )
        .unwrap();
        assert_eq!(config.tools.max_output_bytes, 8192);
        assert_eq!(
            config.tools.shell.allowlist.as_deref(),
            Some(&["ls".to_owned(), "cat".to_owned()][..])
        );
        assert!(config.tools.web.enabled);
        assert_eq!(
            config.tools.web.search,
            Some(SearchConfig::Brave {
                base_url: None,
                api_key_env: "BRAVE_API_KEY".into()
            })
        );
        let err = toml::from_str::<AgentConfig>("[tools.web.search]\nbackend = \"google\"\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `google`"),
            "{err}"
        );
        assert_eq!(config.tools.shell.syntax, None);
        assert_eq!(AgentConfig::default().tools.max_output_bytes, 16 * 1024);
    }

    #[test]
    fn shell_syntax_is_a_closed_set_of_names() {
        for (text, expected) in [
            ("strict", ShellSyntax::Strict),
            ("compound", ShellSyntax::Compound),
        ] {
            let config: AgentConfig =
                toml::from_str(&format!("[tools.shell]\nsyntax = \"{text}\"\n")).unwrap();
            assert_eq!(config.tools.shell.syntax, Some(expected));
        }
        // A typo must stop the start-up, not silently pick a default.
        let err = toml::from_str::<AgentConfig>("[tools.shell]\nsyntax = \"bash\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant `bash`, expected `strict` or `compound`"),
            "{err}"
        );
    }

    #[test]
    fn memory_embedding_section_parses() {
        let config: AgentConfig = toml::from_str(
            r#"
[memory.retrieval]
scope = "user"
[memory.embedding]
backend = "semantic"
model_dir = "/models/bge-small-en-v1.5"
"#,
        )
        .unwrap();
        assert_eq!(config.memory.retrieval.scope, RetrievalScope::User);
        assert_eq!(
            config.memory.embedding,
            EmbeddingConfig::Semantic {
                model_dir: PathBuf::from("/models/bge-small-en-v1.5"),
                model_name: None,
            }
        );
        let config: AgentConfig = toml::from_str(
            "[memory.embedding]\nbackend = \"openai_compatible\"\nprovider = \"local\"\nmodel = \"nomic\"\n",
        )
        .unwrap();
        assert_eq!(
            config.memory.embedding,
            EmbeddingConfig::OpenaiCompatible {
                provider: "local".into(),
                model: "nomic".into(),
            }
        );
        // An explicit choice stays what it says; `auto` (the default) is
        // resolved by the runner.
        for (text, expected) in [
            ("lexical", EmbeddingConfig::Lexical {}),
            ("auto", EmbeddingConfig::Auto {}),
        ] {
            let config: AgentConfig =
                toml::from_str(&format!("[memory.embedding]\nbackend = \"{text}\"\n")).unwrap();
            assert_eq!(config.memory.embedding, expected);
        }
        for (text, expected) in [
            (
                "[memory.embedding]\nbackend = \"magic\"\n",
                "unknown variant `magic`",
            ),
            (
                "[memory.embedding]\nbackend = \"lexical\"\nmodel_dir = \"x\"\n",
                "unknown field `model_dir`",
            ),
            (
                "[memory.embedding]\nbackend = \"auto\"\nmodel_dir = \"x\"\n",
                "unknown field `model_dir`",
            ),
            (
                "[memory.retrieval]\nscope = \"world\"\n",
                "unknown variant `world`",
            ),
        ] {
            let err = toml::from_str::<AgentConfig>(text).unwrap_err();
            assert!(err.to_string().contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn registry_form_parses_from_toml() {
        let config: AgentConfig = toml::from_str(
            r#"
[providers.openai]
provider_type = "openai"
api_key_env = "OPENAI_API_KEY"
headers = { "X-Title" = "oxydra" }

[providers.local]
provider_type = "openai"
base_url = "http://127.0.0.1:11434/v1"
[[providers.local.models]]
id = "llama3.1:8b"
max_input_tokens = 131072
supports_tools = true
"#,
        )
        .unwrap();
        let local = &config.providers["local"];
        assert_eq!(local.provider_type, ProviderType::Openai);
        assert_eq!(local.models[0].max_output_tokens, 4096);
        let catalog = local.catalog(ModelCatalog::pinned()).unwrap();
        let llama = catalog.get(ProviderType::Openai, "llama3.1:8b").unwrap();
        assert_eq!(llama.max_input_tokens, 131_072);
        assert_eq!(llama.input_price_per_million, 0.0);
        assert_eq!(config.providers["openai"].headers["X-Title"], "oxydra");
    }

    #[test]
    fn config_round_trips_through_toml() {
        let mut config = AgentConfig::default();
        config.selection.provider = Some("openai".into());
        config.memory.auth_token = Some("tok".into());
        config
            .providers
            .insert("openai".into(), ProviderEntry::new(ProviderType::Openai));
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<AgentConfig>(&text).unwrap(), config);
    }
}
