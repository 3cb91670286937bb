//! Registers the tools the envelope allows: file and vault tools always
//! (inside the WASM sandbox), `send_file` (through the gateway), the memory tools when memory is on, web
//! tools when enabled, `shell_exec` only
//! where the runner provided a safe backend. A tool whose backend is
//! unavailable is never registered, and the operator's disabled tools are
//! removed last.

use std::sync::Arc;
use std::time::Duration;

use sandbox::scrub::Scrubber;
use sandbox::shell_policy::ShellWorkspace;
use sandbox::{FileRunner, LazyWasmRunner, WasmRunnerConfig, Workspace};
use tools::file::register_file_tools;
use tools::memory::register_memory_tools;
use tools::send_file::{FileCourier, register_send_file_tool};
use tools::shell::{ShellBackend, ShellDaemonEndpoint, VsockShellSession, register_shell_tool};
use tools::vault::{TracingAudit, register_vault_tool};
use tools::web::register_web_tools;
use tools::{ApprovalGate, ToolRegistry, settings};
use types::protocol::bootstrap::{RunnerBootstrapEnvelope, ShellMode};
use types::protocol::file_ops::Mount;
use types::{AgentConfig, AgentMemory};

use super::GuestError;

/// Session id of the guest's shell-daemon session.
const SHELL_SESSION_ID: &str = "oxydra-vm";

/// What tools reach the gateway through (it does not exist yet when the
/// registry is built; both find the turn through the gateway's task-local).
pub struct GatewayLinks {
    /// Asks the conversation's clients before a privileged call.
    pub approval: Arc<dyn ApprovalGate>,
    /// Carries `send_file`'s files to the conversation's clients.
    pub courier: Arc<dyn FileCourier>,
}

pub fn build_registry(
    envelope: &RunnerBootstrapEnvelope,
    config: &AgentConfig,
    workspace: &Workspace,
    scrubber: Arc<Scrubber>,
    gateway: GatewayLinks,
    memory: Option<Arc<dyn AgentMemory>>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ToolRegistry, GuestError> {
    let tool_error = |what: &str, why: String| GuestError::Tools(format!("{what}: {why}"));
    let mut registry = ToolRegistry::new(scrubber, gateway.approval)
        .with_max_output_bytes(config.tools.max_output_bytes);
    // Set up on the first file call: an idle agent holds no WASM engine.
    let runner: Arc<dyn FileRunner> = Arc::new(LazyWasmRunner::new(
        workspace.clone(),
        WasmRunnerConfig::default(),
    ));
    register_file_tools(&mut registry, workspace, runner.clone())
        .map_err(|e| tool_error("file tools", e.to_string()))?;
    register_vault_tool(&mut registry, workspace, runner, Arc::new(TracingAudit))
        .map_err(|e| tool_error("vault_copyto", e.to_string()))?;
    register_send_file_tool(&mut registry, workspace, gateway.courier)
        .map_err(|e| tool_error("send_file", e.to_string()))?;
    if let Some(memory) = memory {
        register_memory_tools(&mut registry, memory)
            .map_err(|e| tool_error("memory tools", e.to_string()))?;
    }

    let web = &config.tools.web;
    if web.enabled {
        let guard = settings::egress_guard(&envelope.runtime_policy.egress, web)
            .map_err(|e| GuestError::Config(format!("tools.web.allow_internal: {e}")))?;
        let search = web
            .search
            .as_ref()
            .map(|search| settings::search_backend(search, lookup))
            .transpose()
            .map_err(|e| GuestError::Config(format!("tools.web.search: {e}")))?;
        register_web_tools(
            &mut registry,
            settings::web_config(web),
            search,
            Arc::new(guard),
        )
        .map_err(|e| tool_error("web tools", e.to_string()))?;
    }

    if let Some(backend) = shell_backend(envelope, workspace) {
        let policy =
            settings::shell_policy(&config.tools.shell, &backend, shell_workspace(workspace));
        register_shell_tool(
            &mut registry,
            backend,
            policy,
            Duration::from_secs(config.tools.shell.max_timeout_secs),
        )
        .map_err(|e| tool_error("shell_exec", e.to_string()))?;
    }

    for name in &envelope.runtime_policy.disabled_tools {
        if !registry.unregister(name) {
            tracing::warn!(tool = %name, "a disabled tool is not registered anyway");
        }
    }
    Ok(registry)
}

/// Where compound shell lines may `cd` and redirect to. Every shell starts
/// in the workspace's `shared` directory (the host directory in host mode;
/// `/workspace/shared` in the container sidecar, whose only mount it is)
/// and may reach the user's workspace around it, whose root is `shared`'s
/// parent in every tier (`/workspace` in a container).
fn shell_workspace(workspace: &Workspace) -> ShellWorkspace {
    let shared = workspace.mount_dir(Mount::Shared);
    ShellWorkspace::new(shared.parent().unwrap_or(shared), shared)
}

/// Where `shell_exec` runs, or `None` when it must not exist.
fn shell_backend(
    envelope: &RunnerBootstrapEnvelope,
    workspace: &Workspace,
) -> Option<ShellBackend> {
    let status = &envelope.startup_status;
    match envelope.runtime_policy.shell_mode {
        ShellMode::Disabled => None,
        ShellMode::Host => Some(ShellBackend::Host(
            workspace.mount_dir(Mount::Shared).to_path_buf(),
        )),
        ShellMode::Session => {
            let endpoint = envelope.sidecar_endpoint.as_deref()?;
            if !(status.sidecar_available && status.shell_available) {
                return None;
            }
            let endpoint = ShellDaemonEndpoint::parse(endpoint)
                .map_err(|e| tracing::warn!(%e, "the shell sidecar endpoint is unusable"))
                .ok()?;
            Some(ShellBackend::Session(Arc::new(VsockShellSession::new(
                endpoint,
                SHELL_SESSION_ID,
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_lines_may_reach_the_users_workspace_from_shared() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(&dir.path().join("alice")).unwrap();
        let shell = shell_workspace(&workspace);
        let shared = workspace.mount_dir(Mount::Shared);
        assert_eq!(shell.working_dir(), shared);
        assert_eq!(Some(shell.root()), shared.parent());
    }
}
