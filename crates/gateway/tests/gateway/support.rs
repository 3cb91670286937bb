//! A gateway on 127.0.0.1:0 in front of a real runtime (fake LLM server,
//! real tools in a temporary workspace, recording memory), and a small
//! WebSocket client speaking the typed frames.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use gateway::{
    Gateway, GatewayApprovalGate, GatewayLimits, GatewayParts, InMemorySessionDirectory,
    LOCALHOST_ANY_PORT, RunningGateway, generate_token,
};
use provider::build_provider;
use runtime::{AgentRuntime, MemoryParts, RuntimeLimits, RuntimeParts};
use sandbox::scrub::Scrubber;
use test_support::{FakeLlm, RecordingMemory, Script, ScriptedReply, WhenExhausted, WireFormat};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tools::ToolRegistry;
use types::config::ProviderEntry;
use types::protocol::bootstrap::{ApprovalPolicy, StartupDegradedReason};
use types::protocol::gateway::{
    GatewayClientFrame, GatewayEndpoint, GatewayServerFrame, GatewayServerMessage,
};
use types::runner::SandboxTier;
use types::{
    FunctionDecl, JsonSchema, ModelCatalog, ProviderType, SafetyTier, SecretString, SessionId,
    Tool, ToolContext, ToolError, UserId,
};

/// Every wait in these tests is bounded by this; hitting it is a failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Options {
    pub limits: GatewayLimits,
    pub approval: ApprovalPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: GatewayLimits::default(),
            approval: ApprovalPolicy::Ask,
        }
    }
}

pub struct Harness {
    pub llm: FakeLlm,
    pub runtime: Arc<AgentRuntime>,
    pub gateway: RunningGateway,
    pub endpoint: GatewayEndpoint,
    pub memory: Arc<RecordingMemory>,
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Replies are used in request order; once they run out the fake
    /// answers `You said: <prompt>`.
    pub async fn start(replies: Vec<ScriptedReply>) -> Self {
        Self::start_with(replies, Options::default()).await
    }

    pub async fn start_with(replies: Vec<ScriptedReply>, options: Options) -> Self {
        let llm = FakeLlm::start_script(Script {
            format: WireFormat::Openai,
            when_exhausted: WhenExhausted::Echo,
            replies,
        })
        .await
        .unwrap();
        let mut entry = ProviderEntry::new(ProviderType::Openai);
        entry.base_url = Some(llm.base_url());
        let catalog = ModelCatalog::pinned();
        let model = catalog
            .get(ProviderType::Openai, "gpt-4.1")
            .cloned()
            .unwrap();
        let provider =
            build_provider("fake", &entry, catalog, Some(&SecretString::new("k"))).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let scrubber = Arc::new(Scrubber::new());
        let memory = Arc::new(RecordingMemory::new());
        let gate = GatewayApprovalGate::audited(
            options.approval,
            memory.clone(),
            UserId::parse("alice").unwrap(),
        );
        let mut registry = ToolRegistry::new(scrubber.clone(), gate);
        registry
            .register(Arc::new(WriteMarker {
                dir: dir.path().to_path_buf(),
            }))
            .unwrap();
        let runtime = AgentRuntime::new(RuntimeParts {
            provider,
            provider_id: "fake".into(),
            model: model.clone(),
            tools: Arc::new(registry),
            scrubber,
            limits: RuntimeLimits::default(),
            system_prompt: "You are a test agent.".into(),
        })
        .with_memory(MemoryParts {
            memory: memory.clone(),
            retrieval: None,
            max_results: 3,
        });
        let runtime = Arc::new(runtime);
        let gateway = Gateway::new(GatewayParts {
            runtime: runtime.clone(),
            tier: SandboxTier::Process,
            degraded_reasons: vec![StartupDegradedReason::InsecureProcessTier],
            model: model.id.clone(),
            token: generate_token(),
            directory: Arc::new(InMemorySessionDirectory::new()),
            limits: options.limits,
        })
        .unwrap()
        .start(LOCALHOST_ANY_PORT)
        .await
        .unwrap();
        let endpoint = gateway.endpoint();
        Self {
            llm,
            runtime,
            gateway,
            endpoint,
            memory,
            dir,
        }
    }

    pub async fn connect(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(self.endpoint.url.as_str())
            .await
            .unwrap();
        Client { ws }
    }

    pub fn hello(&self, user: &str) -> GatewayClientFrame {
        GatewayClientFrame::Hello {
            user_id: UserId::parse(user).unwrap(),
            session_id: None,
            token: self.endpoint.token.clone(),
            resume_from: None,
            new_session: false,
        }
    }

    /// Connects and says hello as `user`; returns the client and its
    /// session id.
    pub async fn attach(&self, user: &str) -> (Client, SessionId) {
        self.attach_with(self.hello(user)).await
    }

    pub async fn attach_with(&self, hello: GatewayClientFrame) -> (Client, SessionId) {
        let mut client = self.connect().await;
        client.send(&hello).await;
        let session = client.expect_hello_ack().await;
        (client, session)
    }

    pub fn marker(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// What arrived on a client's socket.
#[derive(Debug)]
pub enum Incoming {
    Frame(GatewayServerMessage),
    Closed(Option<CloseFrame>),
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, frame: &GatewayClientFrame) {
        let text = serde_json::to_string(frame).unwrap();
        self.send_text(&text).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn turn(&mut self, content: &str) {
        self.send(&GatewayClientFrame::SendTurn {
            content: content.into(),
            client_turn_id: Some(content.into()),
        })
        .await;
    }

    /// The next frame or close; panics after `PATIENCE`.
    pub async fn next(&mut self) -> Incoming {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the gateway answered in time");
            match message {
                None => return Incoming::Closed(None),
                Some(Err(tungstenite::Error::ConnectionClosed)) => {
                    return Incoming::Closed(None);
                }
                Some(Err(error)) => panic!("websocket error: {error}"),
                Some(Ok(Message::Text(text))) => {
                    return Incoming::Frame(serde_json::from_str(text.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return Incoming::Closed(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(_))) => panic!("the gateway sent a binary frame"),
            }
        }
    }

    pub async fn recv(&mut self) -> GatewayServerMessage {
        match self.next().await {
            Incoming::Frame(message) => message,
            Incoming::Closed(frame) => panic!("connection closed: {frame:?}"),
        }
    }

    /// Frames up to and including the first one matching `done`.
    pub async fn recv_until(
        &mut self,
        done: impl Fn(&GatewayServerFrame) -> bool,
    ) -> Vec<GatewayServerMessage> {
        let mut frames = Vec::new();
        loop {
            let message = self.recv().await;
            let finished = done(&message.frame);
            frames.push(message);
            if finished {
                return frames;
            }
        }
    }

    /// Frames up to and including the next turn's end.
    pub async fn recv_turn(&mut self) -> Vec<GatewayServerMessage> {
        self.recv_until(GatewayServerFrame::is_turn_terminal).await
    }

    pub async fn expect_hello_ack(&mut self) -> SessionId {
        let message = self.recv().await;
        match message.frame {
            GatewayServerFrame::HelloAck {
                runtime_session_id, ..
            } => {
                assert_eq!(message.seq, 0, "a hello ack is connection-local");
                runtime_session_id
            }
            other => panic!("expected a hello ack, got {other:?}"),
        }
    }

    /// Expects the connection to be closed (after any error frames).
    pub async fn expect_closed(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next().await {
                Incoming::Frame(_) => {}
                Incoming::Closed(frame) => return frame,
            }
        }
    }
}

/// Session frames numbered one after another, nothing lost or repeated.
pub fn assert_consecutive(frames: &[GatewayServerMessage]) {
    let seqs: Vec<u64> = frames.iter().map(|m| m.seq).collect();
    let first = seqs.first().copied().unwrap_or_default();
    assert!(first > 0, "session frames are numbered: {seqs:?}");
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "frames lost or repeated"
    );
}

/// Concatenated `AssistantDelta` text.
pub fn deltas(frames: &[GatewayServerMessage]) -> String {
    frames
        .iter()
        .filter_map(|m| match &m.frame {
            GatewayServerFrame::AssistantDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The final message of the last frame, which must be `TurnCompleted`.
pub fn final_message(frames: &[GatewayServerMessage]) -> String {
    match frames.last().map(|m| &m.frame) {
        Some(GatewayServerFrame::TurnCompleted { final_message, .. }) => final_message.clone(),
        other => panic!("the turn did not complete: {other:?}"),
    }
}

/// A long answer streamed one word at a time with a pause between words.
pub fn slow_answer(words: usize, pause_ms: u64) -> (String, ScriptedReply) {
    let text: Vec<String> = (1..=words).map(|n| format!("word{n}")).collect();
    let text = text.join(" ");
    let reply = ScriptedReply::text(text.clone()).with_chunk_delay_ms(pause_ms);
    (text, reply)
}

/// A privileged tool with a visible effect: it creates a file.
#[derive(Debug)]
pub struct WriteMarker {
    pub dir: std::path::PathBuf,
}

#[async_trait]
impl Tool for WriteMarker {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "write_marker".into(),
            description: "creates a marker file".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([("name".to_owned(), JsonSchema::string())]),
                vec!["name".into()],
            ),
        }
    }

    async fn execute(&self, args: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let args: serde_json::Value = serde_json::from_str(args).unwrap();
        let name = args["name"].as_str().unwrap();
        std::fs::write(self.dir.join(name), "written").unwrap();
        Ok(format!("wrote {name}"))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::Privileged
    }
}
