//! Steps 3–9 of the guest start: configuration, provider, memory, tools,
//! runtime, gateway and endpoint file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway::{
    EndpointFile, Gateway, GatewayApprovalGate, GatewayFileCourier, GatewayLimits, GatewayParts,
    InMemorySessionDirectory, LOCALHOST_ANY_PORT, RunningGateway, SessionDirectory, generate_token,
    write_endpoint_file,
};
use memory::{EndpointAccess, LibsqlMemory, Location, MemoryOptions, build_embedder};
use runtime::{AgentRuntime, MemoryParts, RuntimeLimits, RuntimeParts};
use sandbox::Workspace;
use sandbox::scrub::Scrubber;
use types::config::{EmbeddingConfig, GatewayConfig};
use types::protocol::bootstrap::RunnerBootstrapEnvelope;
use types::protocol::file_ops::Mount;
use types::protocol::gateway::GatewayEndpoint;
use types::{AgentConfig, AgentMemory, ModelCatalog, ModelDescriptor, ProviderId, SecretString};

use super::GuestError;
use super::directory::MemorySessionDirectory;
use super::knowledge::{self, KnowledgeWatcher};
use super::tools::{GatewayLinks, build_registry};

/// What the agent is told about itself and its workspace.
const SYSTEM_PROMPT: &str = "You are Oxydra, a helpful assistant running in a sandbox on the \
user's own machine. Your workspace has three areas: `shared/` for the user's files (persistent), \
`tmp/` for scratch work, and `vault/` for sensitive files, which you can only copy out with \
`vault_copyto` when the user asks. Your memory outlasts this conversation: `memory_search` finds \
earlier conversations, saved notes and the user's documents, and `memory_save` keeps a fact for \
later sessions. Use your tools when they help; say plainly when something fails.";

/// A serving guest.
#[derive(Debug)]
pub struct RunningGuest {
    gateway: RunningGateway,
    endpoint_file: EndpointFile,
    memory: Option<Arc<LibsqlMemory>>,
    knowledge: Option<KnowledgeWatcher>,
}

impl RunningGuest {
    /// URL and token, as written to the endpoint file.
    pub fn endpoint(&self) -> GatewayEndpoint {
        self.gateway.endpoint()
    }

    pub fn endpoint_file(&self) -> &Path {
        self.endpoint_file.path()
    }

    /// Stops the gateway (cancelling active turns and waiting for them),
    /// closes memory and removes the endpoint file. The file is removed
    /// even when the gateway reports an error.
    pub async fn stop(self) -> Result<(), GuestError> {
        let stopped = self.gateway.shutdown().await;
        drop(self.knowledge);
        // Every turn has ended and all writes are committed; dropping the
        // last handle closes the database.
        drop(self.memory);
        let removed = self.endpoint_file.remove();
        stopped.map_err(|e| GuestError::Gateway(e.to_string()))?;
        removed.map_err(|e| GuestError::Gateway(e.to_string()))
    }
}

/// Starts everything the envelope describes and writes the endpoint file.
pub async fn start(envelope: RunnerBootstrapEnvelope) -> Result<RunningGuest, GuestError> {
    let config = &envelope.agent_config;
    let pinned = ModelCatalog::pinned();
    config
        .validate(pinned)
        .map_err(|e| GuestError::Config(e.to_string()))?;
    let lookup = |name: &str| {
        envelope
            .credentials
            .get(name)
            .map(|s| s.expose().to_owned())
    };

    let (provider_id, model) = selected_model(config, pinned)?;
    let provider = provider::build_selected(config, pinned, lookup)
        .map_err(|e| GuestError::Provider(e.to_string()))?;

    let root = &envelope.workspace_root;
    let workspace = Workspace::open(root).map_err(|e| GuestError::Workspace {
        path: root.display().to_string(),
        message: e.to_string(),
    })?;
    let memory = open_memory(config, root, &lookup).await?;

    let secrets: Vec<&SecretString> = envelope.credentials.values().collect();
    let scrubber = Arc::new(Scrubber::new().with_secrets(secrets));
    let approval_policy = envelope.runtime_policy.approval;
    // With memory, every approval request and decision goes to the audit
    // log (spec 10) that `oxydra-runner audit` reads.
    let approval = match &memory {
        Some(memory) => {
            GatewayApprovalGate::audited(approval_policy, memory.clone(), envelope.user_id.clone())
        }
        None => GatewayApprovalGate::new(approval_policy),
    };
    let registry = build_registry(
        &envelope,
        config,
        &workspace,
        scrubber.clone(),
        GatewayLinks {
            approval,
            courier: GatewayFileCourier::new(),
        },
        memory.clone().map(|memory| memory as Arc<dyn AgentMemory>),
        &lookup,
    )?;
    tracing::info!(tools = ?registry.names().collect::<Vec<_>>(), "tools registered");

    let mut runtime = AgentRuntime::new(RuntimeParts {
        provider: Arc::new(provider),
        provider_id,
        model: model.clone(),
        tools: Arc::new(registry),
        scrubber,
        limits: RuntimeLimits::from_config(&config.runtime),
        system_prompt: SYSTEM_PROMPT.to_owned(),
    });
    let directory: Arc<dyn SessionDirectory> = match &memory {
        Some(memory) => {
            let retrieval = config.memory.retrieval.enabled;
            runtime = runtime.with_memory(MemoryParts {
                memory: memory.clone(),
                retrieval: retrieval.then(|| memory.clone() as _),
                max_results: config.memory.retrieval.max_results,
            });
            Arc::new(MemorySessionDirectory::new(
                memory.clone(),
                envelope.user_id.clone(),
            ))
        }
        None => Arc::new(InMemorySessionDirectory::new()),
    };

    let gateway = Gateway::new(GatewayParts {
        runtime: Arc::new(runtime),
        tier: envelope.sandbox_tier,
        degraded_reasons: envelope.startup_status.degraded_reasons.clone(),
        model: model.id.clone(),
        token: generate_token(),
        directory,
        limits: gateway_limits(&config.gateway),
    })
    .map_err(|e| GuestError::Gateway(e.to_string()))?
    .start(LOCALHOST_ANY_PORT)
    .await
    .map_err(|e| GuestError::Gateway(e.to_string()))?;
    let endpoint_file = write_endpoint_file(workspace.mount_dir(Mount::Tmp), &gateway.endpoint())
        .await
        .map_err(|e| GuestError::Gateway(e.to_string()))?;
    let knowledge = match &memory {
        Some(memory) if config.memory.knowledge.enabled => {
            Some(watch_knowledge(memory, &workspace, config)?)
        }
        _ => None,
    };
    Ok(RunningGuest {
        gateway,
        endpoint_file,
        memory,
        knowledge,
    })
}

/// The selected provider's id and model descriptor (the configuration is
/// validated, so both resolve).
fn selected_model(
    config: &AgentConfig,
    pinned: &ModelCatalog,
) -> Result<(ProviderId, ModelDescriptor), GuestError> {
    let unresolved = || GuestError::Config("selection does not resolve to a model".to_owned());
    let name = config
        .selection
        .provider
        .as_deref()
        .ok_or_else(unresolved)?;
    let model = config.selection.model.as_ref().ok_or_else(unresolved)?;
    let entry = config.providers.get(name).ok_or_else(unresolved)?;
    let catalog = entry
        .catalog(pinned)
        .map_err(|e| GuestError::Config(format!("providers.{name}.models: {e}")))?;
    let descriptor = catalog
        .get(entry.provider_type, model.as_str())
        .cloned()
        .ok_or_else(unresolved)?;
    Ok((ProviderId::new(name), descriptor))
}

/// Opens the memory database (a relative `memory.db_path` lives in the
/// workspace root, beside — not inside — the directories tools can reach),
/// or `None` when memory is disabled.
async fn open_memory(
    config: &AgentConfig,
    root: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Arc<LibsqlMemory>>, GuestError> {
    if !config.memory.enabled {
        return Ok(None);
    }
    let mut options = MemoryOptions::from_config(&config.memory);
    if let Location::Local(path) = &options.location {
        options.location = Location::Local(resolve_in(root, path));
    }
    // The runner resolved the default (`auto`) to the installed semantic
    // model or to lexical; the vectors' stored name says which.
    let embedder = build_embedder(&config.memory.embedding, embedding_endpoint(config, lookup))
        .map_err(|e| GuestError::Config(format!("memory.embedding: {e}")))?;
    tracing::info!(model = embedder.model_name(), "memory embedder");
    let memory = LibsqlMemory::open(options, embedder)
        .await
        .map_err(|e| GuestError::Memory(e.to_string()))?;
    Ok(Some(Arc::new(memory)))
}

/// Follows the knowledge directory (created when missing, so the user sees
/// where documents go).
fn watch_knowledge(
    memory: &Arc<LibsqlMemory>,
    workspace: &Workspace,
    config: &AgentConfig,
) -> Result<KnowledgeWatcher, GuestError> {
    let knowledge = &config.memory.knowledge;
    let relative = knowledge.relative_to_shared().map_err(GuestError::Config)?;
    let dir = workspace.mount_dir(Mount::Shared).join(relative);
    std::fs::create_dir_all(&dir).map_err(|e| GuestError::Workspace {
        path: dir.display().to_string(),
        message: format!("creating the knowledge directory: {e}"),
    })?;
    Ok(knowledge::watch(
        Arc::clone(memory),
        dir,
        format!("file:///shared/{relative}"),
        knowledge,
    ))
}

fn resolve_in(root: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        root.join(path)
    }
}

/// The base URL and key of the provider entry an `openai_compatible`
/// embedder names.
fn embedding_endpoint(
    config: &AgentConfig,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<EndpointAccess> {
    let EmbeddingConfig::OpenaiCompatible { provider, .. } = &config.memory.embedding else {
        return None;
    };
    let entry = config.providers.get(provider)?;
    Some(EndpointAccess {
        base_url: entry
            .base_url
            .clone()
            .unwrap_or_else(|| provider::openai::DEFAULT_BASE_URL.to_owned()),
        api_key: entry.resolve_api_key(lookup).map(|c| c.value),
    })
}

/// The gateway's limits from `[gateway]`; the rest keep their defaults.
fn gateway_limits(config: &GatewayConfig) -> GatewayLimits {
    GatewayLimits {
        max_connections: config.max_connections,
        max_frame_bytes: config.max_frame_bytes,
        lane_depth: config.lane_depth,
        replay_frames: config.replay_frames,
        approval_timeout: Duration::from_secs(config.approval_timeout_secs),
        idle_session: Duration::from_secs(config.idle_session_secs),
        ..GatewayLimits::default()
    }
}
