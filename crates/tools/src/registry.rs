//! `ToolRegistry`: the pipeline every tool call goes through, in order:
//!
//! 1. look the tool up by name;
//! 2. parse the argument JSON and validate it against the tool's schema;
//! 3. security policy on the arguments (paths, command, URL), so nobody is
//!    asked to approve a call the policy would refuse anyway;
//! 4. safety gate: a `Privileged` call needs the approval gate's yes (time
//!    spent waiting for it never counts against the tool's timeout);
//! 5. run `execute` under the tool's timeout;
//! 6. truncate the output to `max_output_bytes` on a UTF-8 boundary;
//! 7. scrub credentials from it.
//!
//! Every failure is a `ToolError` whose text the model reads (formatted by
//! `failure_message`); nothing here panics on model input.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use jsonschema::error::ValidationErrorKind;
use sandbox::scrub::Scrubber;
use serde_json::Value;
use thiserror::Error;
use tracing::Instrument;
use types::protocol::bootstrap::ApprovalPolicy;
use types::{FunctionDecl, SafetyTier, SessionId, Tool, ToolCall, ToolContext, ToolError};

/// Tool output beyond this many bytes is cut (16 KiB).
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 * 1024;
/// How much of the arguments the one-line summary of an approval shows.
const MAX_SUMMARY_CHARS: usize = 200;

/// A check on a call's (schema-valid) arguments before the tool runs.
pub trait ArgumentPolicy: Send + Sync + fmt::Debug {
    fn check(&self, arguments: &Value) -> Result<(), ToolError>;
}

/// A privileged call waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub call_id: String,
    pub tool: String,
    pub safety_tier: SafetyTier,
    /// The complete arguments, scrubbed, for a human to judge.
    pub arguments: String,
    /// The same, shortened to one line's worth.
    pub arguments_summary: String,
    /// The conversation the call belongs to.
    pub session_id: SessionId,
}

/// The answer to an `ApprovalRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalDecision {
    Approved,
    Denied { reason: String },
}

/// Decides on privileged calls: a fixed policy, or (in the gateway) a
/// human asked through the client.
#[async_trait]
pub trait ApprovalGate: Send + Sync + fmt::Debug {
    async fn decide(&self, request: &ApprovalRequest) -> ApprovalDecision;
}

/// An approval gate that never asks: `Allow` approves every privileged
/// call, `Deny` refuses them. `Ask` needs a human and is answered by the
/// gateway's gate; without one it refuses.
#[derive(Debug, Clone, Copy)]
pub struct StaticApproval(pub ApprovalPolicy);

#[async_trait]
impl ApprovalGate for StaticApproval {
    async fn decide(&self, _request: &ApprovalRequest) -> ApprovalDecision {
        match self.0 {
            ApprovalPolicy::Allow => ApprovalDecision::Approved,
            ApprovalPolicy::Deny => ApprovalDecision::Denied {
                reason: "privileged tools are disabled by the operator's policy".into(),
            },
            ApprovalPolicy::Ask => ApprovalDecision::Denied {
                reason: "approval is required but no one is connected to approve it".into(),
            },
        }
    }
}

/// A tool that cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error("a tool named '{0}' is already registered")]
    Duplicate(String),
    #[error("tool '{tool}' declares an invalid parameter schema: {message}")]
    InvalidSchema { tool: String, message: String },
}

struct Entry {
    tool: Arc<dyn Tool>,
    decl: FunctionDecl,
    /// The declared parameters as JSON.
    schema: Value,
    /// Compiled on the tool's first call: every compiled validator carries
    /// its own copy of the JSON Schema registry (about 2 MiB), which an
    /// idle agent should not hold for tools it never calls.
    validator: OnceLock<Result<jsonschema::Validator, String>>,
    policy: Option<Arc<dyn ArgumentPolicy>>,
}

impl Entry {
    fn validator(&self) -> Result<&jsonschema::Validator, ToolError> {
        self.validator
            .get_or_init(|| jsonschema::validator_for(&self.schema).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| {
                ToolError::Execution(format!(
                    "the parameter schema of tool '{}' does not compile: {e}",
                    self.decl.name
                ))
            })
    }
}

/// The tools an agent may call, and the pipeline that calls them.
pub struct ToolRegistry {
    entries: BTreeMap<String, Entry>,
    approval: Arc<dyn ApprovalGate>,
    scrubber: Arc<Scrubber>,
    max_output_bytes: usize,
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.entries.keys().collect::<Vec<_>>())
            .field("approval", &self.approval)
            .field("max_output_bytes", &self.max_output_bytes)
            .finish()
    }
}

impl ToolRegistry {
    pub fn new(scrubber: Arc<Scrubber>, approval: Arc<dyn ApprovalGate>) -> Self {
        Self {
            entries: BTreeMap::new(),
            approval,
            scrubber,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }

    pub fn with_max_output_bytes(mut self, max_output_bytes: usize) -> Self {
        self.max_output_bytes = max_output_bytes;
        self
    }

    /// Registers a tool whose arguments need no policy check.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        self.insert(tool, None)
    }

    /// Registers a tool with the policy its arguments must pass.
    pub fn register_with_policy(
        &mut self,
        tool: Arc<dyn Tool>,
        policy: Arc<dyn ArgumentPolicy>,
    ) -> Result<(), RegistryError> {
        self.insert(tool, Some(policy))
    }

    fn insert(
        &mut self,
        tool: Arc<dyn Tool>,
        policy: Option<Arc<dyn ArgumentPolicy>>,
    ) -> Result<(), RegistryError> {
        let decl = tool.schema();
        if self.entries.contains_key(&decl.name) {
            return Err(RegistryError::Duplicate(decl.name));
        }
        let invalid = |message: String| RegistryError::InvalidSchema {
            tool: decl.name.clone(),
            message,
        };
        let schema = serde_json::to_value(&decl.parameters).map_err(|e| invalid(e.to_string()))?;
        // No meta-schema check here: `JsonSchema` can only express valid
        // JSON Schema, and the meta-schema validators cost ~13 MiB to build.
        self.entries.insert(
            decl.name.clone(),
            Entry {
                tool,
                decl,
                schema,
                validator: OnceLock::new(),
                policy,
            },
        );
        Ok(())
    }

    /// The declarations to send to the model, in name order.
    pub fn declarations(&self) -> Vec<FunctionDecl> {
        self.entries.values().map(|e| e.decl.clone()).collect()
    }

    /// The tier of a registered tool (the runtime batches `ReadOnly` calls).
    pub fn safety_tier(&self, name: &str) -> Option<SafetyTier> {
        self.entries.get(name).map(|e| e.tool.safety_tier())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Removes a tool (an operator disabled it); `false` when there was none.
    pub fn unregister(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    /// Runs one call, made in the conversation `context` names, through
    /// the whole pipeline.
    pub async fn execute_with_policy(
        &self,
        call: &ToolCall,
        context: &ToolContext,
    ) -> Result<String, ToolError> {
        let span = tracing::info_span!("tool_call", tool = %call.name, call_id = %call.id);
        async {
            let result = self.pipeline(call, context).await;
            match &result {
                Ok(output) => tracing::info!(bytes = output.len(), "tool call succeeded"),
                Err(error) => tracing::info!(%error, "tool call failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn pipeline(&self, call: &ToolCall, context: &ToolContext) -> Result<String, ToolError> {
        let entry = self
            .entries
            .get(&call.name)
            .ok_or_else(|| ToolError::NotFound(call.name.clone()))?;
        let arguments = parse_arguments(&call.arguments)?;
        validate(entry.validator()?, &arguments)?;
        if let Some(policy) = &entry.policy {
            policy.check(&arguments)?;
        }
        let tier = entry.tool.safety_tier();
        if tier == SafetyTier::Privileged {
            let scrubbed = self.scrubber.scrub(&call.arguments).into_owned();
            let request = ApprovalRequest {
                call_id: call.id.clone(),
                tool: call.name.clone(),
                safety_tier: tier,
                arguments_summary: summarize(&scrubbed),
                arguments: scrubbed,
                session_id: context.session_id.clone(),
            };
            if let ApprovalDecision::Denied { reason } = self.approval.decide(&request).await {
                return Err(ToolError::ApprovalDenied {
                    tool: call.name.clone(),
                    reason,
                });
            }
        }
        // The tool's timeout starts only now, after any wait for approval.
        let timeout = entry.tool.timeout();
        let output = tokio::time::timeout(timeout, entry.tool.execute(&call.arguments, context))
            .await
            .map_err(|_| ToolError::Timeout {
                tool: call.name.clone(),
                after: timeout,
            })??;
        let output = truncate_output(&output, self.max_output_bytes);
        Ok(self.scrubber.scrub(&output).into_owned())
    }
}

/// `text` cut to `MAX_SUMMARY_CHARS` characters.
fn summarize(text: &str) -> String {
    match text.char_indices().nth(MAX_SUMMARY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The tool-result text for a failed call; the model reads it and can
/// correct itself.
pub fn failure_message(error: &ToolError) -> String {
    format!("Tool execution failed: {error}")
}

fn parse_arguments(text: &str) -> Result<Value, ToolError> {
    // Some models send "" for a call without arguments.
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text)
        .map_err(|e| ToolError::InvalidArguments(format!("the arguments are not valid JSON ({e})")))
}

/// Schema validation with messages that name the field and the fix.
fn validate(validator: &jsonschema::Validator, arguments: &Value) -> Result<(), ToolError> {
    let messages: Vec<String> = validator
        .iter_errors(arguments)
        .map(|error| {
            let field = error.instance_path.to_string();
            let field = field.trim_start_matches('/').replace('/', ".");
            match &error.kind {
                ValidationErrorKind::Required { property } => {
                    format!("missing required field {property}").replace('"', "'")
                }
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!("unknown field(s) '{}'", unexpected.join("', '"))
                }
                _ if field.is_empty() => error.to_string(),
                _ => format!("field '{field}': {error}"),
            }
        })
        .collect();
    if messages.is_empty() {
        Ok(())
    } else {
        Err(ToolError::InvalidArguments(messages.join("; ")))
    }
}

/// Cuts `output` to at most `max_bytes` on a character boundary and says
/// how large it was.
pub fn truncate_output(output: &str, max_bytes: usize) -> String {
    if output.len() <= max_bytes {
        return output.to_owned();
    }
    let mut cut = max_bytes;
    while !output.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n[output truncated — original size: {} bytes]",
        &output[..cut],
        thousands(output.len())
    )
}

/// `142857` → `142,857`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
