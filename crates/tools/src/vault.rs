//! `vault_copyto`: copies a file out of `/vault` into `/shared` or `/tmp`
//! in two separate invocations, so that no single one ever holds the vault
//! together with a writable mount. Step 1 (`VaultReadStep`) sees only the
//! vault, read-only; step 2 (`VaultWriteStep`) sees only `shared`/`tmp`.
//! Both steps are written to the audit log under one `operation_id`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sandbox::{CapabilityProfile, FileRunner, Workspace};
use serde::Deserialize;
use types::protocol::file_ops::{Access, FileRequest, FileResponse};
use types::{FunctionDecl, JsonSchema, SafetyTier, Tool, ToolContext, ToolError};

use crate::file::{PathPolicy, parse, run_file_request};
use crate::registry::{RegistryError, ToolRegistry};

/// How long both steps together may take.
const VAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Which half of a vault copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultStep {
    Read,
    Write,
}

/// One audited step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub operation_id: String,
    pub step: VaultStep,
    pub profile: CapabilityProfile,
    pub path: String,
    /// Bytes moved, or why the step failed.
    pub outcome: Result<u64, String>,
}

/// Where audit entries go.
pub trait AuditSink: Send + Sync + fmt::Debug {
    fn record(&self, entry: &AuditEntry);
}

/// Writes audit entries as `tracing` events on the `oxydra::audit` target.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAudit;

impl AuditSink for TracingAudit {
    fn record(&self, entry: &AuditEntry) {
        match &entry.outcome {
            Ok(bytes) => tracing::info!(
                target: "oxydra::audit",
                operation_id = %entry.operation_id,
                step = ?entry.step,
                profile = %entry.profile,
                path = %entry.path,
                bytes,
                "vault copy step"
            ),
            Err(reason) => tracing::warn!(
                target: "oxydra::audit",
                operation_id = %entry.operation_id,
                step = ?entry.step,
                profile = %entry.profile,
                path = %entry.path,
                %reason,
                "vault copy step failed"
            ),
        }
    }
}

#[derive(Deserialize)]
struct CopyArgs {
    source: String,
    destination: String,
}

/// The `vault_copyto` tool.
pub struct VaultCopyTool {
    runner: Arc<dyn FileRunner>,
    audit: Arc<dyn AuditSink>,
}

impl fmt::Debug for VaultCopyTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultCopyTool")
            .field("audit", &self.audit)
            .finish()
    }
}

impl VaultCopyTool {
    pub fn new(runner: Arc<dyn FileRunner>, audit: Arc<dyn AuditSink>) -> Self {
        Self { runner, audit }
    }

    /// Runs one step and records it.
    async fn step(
        &self,
        operation_id: &str,
        step: VaultStep,
        profile: CapabilityProfile,
        request: FileRequest,
    ) -> Result<FileResponse, ToolError> {
        let path = request.path().to_owned();
        let result = run_file_request(&self.runner, profile, request).await;
        let outcome = match &result {
            Ok(FileResponse::Bytes { bytes, .. } | FileResponse::Written { bytes, .. }) => {
                Ok(*bytes)
            }
            Ok(_) => Ok(0),
            Err(error) => Err(error.to_string()),
        };
        self.audit.record(&AuditEntry {
            operation_id: operation_id.to_owned(),
            step,
            profile,
            path,
            outcome,
        });
        result
    }
}

#[async_trait]
impl Tool for VaultCopyTool {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "vault_copyto".into(),
            description: "Copy a file from /vault into /shared or /tmp so other tools can use it. The copy is audited.".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    (
                        "source".to_owned(),
                        JsonSchema::string().with_description("The vault file, e.g. /vault/credentials.json"),
                    ),
                    (
                        "destination".to_owned(),
                        JsonSchema::string().with_description("Where to put the copy, under /shared or /tmp"),
                    ),
                ]),
                vec!["source".into(), "destination".into()],
            ),
        }
    }

    async fn execute(&self, arguments: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let CopyArgs {
            source,
            destination,
        } = parse(arguments)?;
        let operation_id = format!("{:016x}", rand::random::<u64>());
        let read = self
            .step(
                &operation_id,
                VaultStep::Read,
                CapabilityProfile::VaultReadStep,
                FileRequest::VaultRead {
                    path: source.clone(),
                },
            )
            .await?;
        let FileResponse::Bytes { content_base64, .. } = read else {
            return Err(ToolError::Execution(format!(
                "reading {source} returned no data"
            )));
        };
        let written = self
            .step(
                &operation_id,
                VaultStep::Write,
                CapabilityProfile::VaultWriteStep,
                FileRequest::VaultWrite {
                    path: destination,
                    content_base64,
                },
            )
            .await?;
        let FileResponse::Written { path, bytes } = written else {
            return Err(ToolError::Execution("the copy was not written".into()));
        };
        Ok(format!(
            "Copied {bytes} bytes from {source} to {path} (operation {operation_id})"
        ))
    }

    fn timeout(&self) -> Duration {
        VAULT_TOOL_TIMEOUT
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::SideEffecting
    }
}

/// Registers `vault_copyto` with its two-profile path policy.
pub fn register_vault_tool(
    registry: &mut ToolRegistry,
    workspace: &Workspace,
    runner: Arc<dyn FileRunner>,
    audit: Arc<dyn AuditSink>,
) -> Result<(), RegistryError> {
    registry.register_with_policy(
        Arc::new(VaultCopyTool::new(runner, audit)),
        Arc::new(PathPolicy::new(
            workspace.clone(),
            vec![
                ("source", CapabilityProfile::VaultReadStep, Access::Read),
                (
                    "destination",
                    CapabilityProfile::VaultWriteStep,
                    Access::Write,
                ),
            ],
        )),
    )
}
