//! A runtime wired to a fake LLM server (real HTTP), real tools in a
//! temporary workspace and a recording memory.

use std::sync::Arc;

use provider::build_provider;
use runtime::{AgentRuntime, MemoryParts, RuntimeEvent, RuntimeLimits, RuntimeParts, TurnOutcome};
use sandbox::scrub::Scrubber;
use sandbox::{FileRunner, HostFileRunner, Workspace};
use test_support::{FakeLlm, RecordingMemory, Script, ScriptedReply, WhenExhausted, WireFormat};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tools::file::register_file_tools;
use tools::{StaticApproval, ToolRegistry};
use types::config::ProviderEntry;
use types::protocol::bootstrap::ApprovalPolicy;
use types::{
    ModelCatalog, ModelDescriptor, ProviderType, RuntimeError, SecretString, SessionId, Tool,
};

pub struct Harness {
    pub server: FakeLlm,
    pub provider: Arc<dyn types::Provider>,
    pub model: ModelDescriptor,
    pub memory: Arc<RecordingMemory>,
    pub runtime: AgentRuntime,
    pub dir: tempfile::TempDir,
    pub session: SessionId,
}

pub struct Options {
    pub limits: RuntimeLimits,
    pub extra_tools: Vec<Arc<dyn Tool>>,
    pub model: ModelDescriptor,
    /// What the fake model answers once the scripted replies are used.
    pub when_exhausted: WhenExhausted,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: RuntimeLimits::default(),
            extra_tools: Vec::new(),
            model: ModelCatalog::pinned()
                .get(ProviderType::Openai, "gpt-4.1")
                .cloned()
                .expect("gpt-4.1 is in the catalog"),
            when_exhausted: WhenExhausted::Error,
        }
    }
}

impl Harness {
    pub async fn new(replies: Vec<ScriptedReply>, options: Options) -> Self {
        let server = FakeLlm::start_script(Script {
            format: WireFormat::Openai,
            when_exhausted: options.when_exhausted,
            replies,
        })
        .await
        .unwrap();
        let mut entry = ProviderEntry::new(ProviderType::Openai);
        entry.base_url = Some(server.base_url());
        let catalog = ModelCatalog::pinned()
            .with_extra_models([options.model.clone()])
            .unwrap();
        let provider =
            build_provider("fake", &entry, &catalog, Some(&SecretString::new("k"))).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(dir.path()).unwrap();
        let runner: Arc<dyn FileRunner> = Arc::new(HostFileRunner::new(workspace.clone()));
        let scrubber = Arc::new(Scrubber::new());
        let mut registry = ToolRegistry::new(
            scrubber.clone(),
            Arc::new(StaticApproval(ApprovalPolicy::Allow)),
        );
        register_file_tools(&mut registry, &workspace, runner).unwrap();
        for tool in options.extra_tools {
            registry.register(tool).unwrap();
        }
        let memory = Arc::new(RecordingMemory::new());
        let runtime = runtime(
            provider.clone(),
            options.model.clone(),
            registry,
            scrubber,
            options.limits,
            &memory,
        );
        Self {
            server,
            provider,
            model: options.model,
            memory,
            runtime,
            dir,
            session: SessionId::new("session-1"),
        }
    }

    /// A new runtime over the same model and storage (no tools), as after
    /// a guest restart.
    pub fn restarted(&self, limits: RuntimeLimits) -> AgentRuntime {
        let scrubber = Arc::new(Scrubber::new());
        let registry = ToolRegistry::new(
            scrubber.clone(),
            Arc::new(StaticApproval(ApprovalPolicy::Allow)),
        );
        runtime(
            self.provider.clone(),
            self.model.clone(),
            registry,
            scrubber,
            limits,
            &self.memory,
        )
    }

    /// Runs one turn; returns its result and every event it sent.
    pub async fn turn(
        &self,
        prompt: &str,
    ) -> (Result<TurnOutcome, RuntimeError>, Vec<RuntimeEvent>) {
        self.turn_with(prompt, &CancellationToken::new()).await
    }

    pub async fn turn_with(
        &self,
        prompt: &str,
        cancel: &CancellationToken,
    ) -> (Result<TurnOutcome, RuntimeError>, Vec<RuntimeEvent>) {
        let (tx, mut rx) = mpsc::channel(4096);
        let result = self
            .runtime
            .run_session(&self.session, prompt, cancel, &tx)
            .await;
        drop(tx);
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        (result, events)
    }

    /// The JSON bodies of every request the fake received.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.server.requests().into_iter().map(|r| r.body).collect()
    }

    pub fn host(&self, path: &str) -> std::path::PathBuf {
        // Workspace files live under the harness's temporary directory.
        self.dir.path().join(path.trim_start_matches('/'))
    }
}

pub fn runtime(
    provider: Arc<dyn types::Provider>,
    model: ModelDescriptor,
    registry: ToolRegistry,
    scrubber: Arc<Scrubber>,
    limits: RuntimeLimits,
    memory: &Arc<RecordingMemory>,
) -> AgentRuntime {
    AgentRuntime::new(RuntimeParts {
        provider,
        provider_id: "fake".into(),
        model,
        tools: Arc::new(registry),
        scrubber,
        limits,
        system_prompt: "You are a test agent.".into(),
    })
    .with_memory(MemoryParts {
        memory: memory.clone(),
        retrieval: Some(memory.clone()),
        max_results: 3,
    })
}

/// Messages of a request body, as (role, content-or-empty).
pub fn roles(body: &serde_json::Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| m["role"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
