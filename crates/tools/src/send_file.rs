//! `send_file`: the agent sends a file from `/shared` to the conversation
//! it is talking in. The tool checks the file (inside `/shared` after
//! every link is resolved, a regular file, at most `MAX_SEND_FILE_BYTES`)
//! and hands a description to a `FileCourier` — the gateway, which tells
//! the conversation's clients; a chat channel then uploads it. The bytes
//! never pass through the model.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sandbox::{CapabilityProfile, Workspace};
use serde::Deserialize;
use types::protocol::file_ops::{Access, Mount};
use types::{FunctionDecl, JsonSchema, SafetyTier, Tool, ToolContext, ToolError};
use wasm_guest::VirtualPath;

use crate::file::parse;
use crate::registry::{RegistryError, ToolRegistry};

/// The largest file a chat platform takes from a bot (Telegram: 50 MB).
pub const MAX_SEND_FILE_BYTES: u64 = 50 * 1000 * 1000;
/// The longest caption kept (Telegram's limit).
const MAX_CAPTION_CHARS: usize = 1024;

/// A file on its way to the conversation's clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFile {
    /// As the agent named it (`/shared/…`).
    pub path: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub caption: Option<String>,
}

/// Who carries a file to the conversation (the gateway).
#[async_trait]
pub trait FileCourier: Send + Sync {
    /// Hands `file` to the clients of the conversation `context` names;
    /// the error says why nobody can receive it.
    async fn deliver(&self, file: OutgoingFile, context: &ToolContext) -> Result<(), String>;
}

#[derive(Deserialize)]
struct SendArgs {
    path: String,
    caption: Option<String>,
}

/// The `send_file` tool.
pub struct SendFileTool {
    workspace: Workspace,
    courier: Arc<dyn FileCourier>,
}

impl fmt::Debug for SendFileTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFileTool").finish_non_exhaustive()
    }
}

impl SendFileTool {
    /// The file behind `path`: its size, or why it cannot be sent.
    fn check(&self, path: &str) -> Result<(String, u64), ToolError> {
        let virtual_path =
            VirtualPath::parse(path).map_err(|e| ToolError::InvalidArguments(e.message))?;
        if virtual_path.mount != Mount::Shared {
            return Err(ToolError::InvalidArguments(format!(
                "{path}: only files under /shared can be sent"
            )));
        }
        let real = self
            .workspace
            .resolve(CapabilityProfile::FileReadOnly, &virtual_path, Access::Read)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        if !real.starts_with(self.workspace.mount_dir(Mount::Shared)) {
            return Err(ToolError::InvalidArguments(format!(
                "{path} resolves to a location outside /shared"
            )));
        }
        let meta = std::fs::metadata(&real)
            .map_err(|e| ToolError::Execution(format!("{path} cannot be sent: {e}")))?;
        if !meta.is_file() {
            return Err(ToolError::InvalidArguments(format!(
                "{path} is not a regular file"
            )));
        }
        if meta.len() > MAX_SEND_FILE_BYTES {
            return Err(ToolError::InvalidArguments(format!(
                "{path} has {} bytes; at most {MAX_SEND_FILE_BYTES} can be sent",
                meta.len()
            )));
        }
        let name = virtual_path
            .components
            .last()
            .cloned()
            .unwrap_or_else(|| "file".to_owned());
        Ok((name, meta.len()))
    }
}

#[async_trait]
impl Tool for SendFileTool {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: "send_file".into(),
            description: "Send a file from /shared to the person you are talking with (in their chat app, or shown in their terminal). Use it for files they asked for; say in your answer what you sent.".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    (
                        "path".to_owned(),
                        JsonSchema::string().with_description("The file, e.g. /shared/report.pdf"),
                    ),
                    (
                        "caption".to_owned(),
                        JsonSchema::string().with_description("A short line shown with the file"),
                    ),
                ]),
                vec!["path".into()],
            ),
        }
    }

    async fn execute(&self, arguments: &str, context: &ToolContext) -> Result<String, ToolError> {
        let SendArgs { path, caption } = parse(arguments)?;
        let (file_name, size_bytes) = self.check(&path)?;
        let caption = caption
            .map(|text| {
                text.trim()
                    .chars()
                    .take(MAX_CAPTION_CHARS)
                    .collect::<String>()
            })
            .filter(|text| !text.is_empty());
        self.courier
            .deliver(
                OutgoingFile {
                    path: path.clone(),
                    file_name,
                    size_bytes,
                    caption,
                },
                context,
            )
            .await
            .map_err(|reason| ToolError::Execution(format!("{path} was not sent: {reason}")))?;
        Ok(format!("Sent {path} ({size_bytes} bytes)."))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::SideEffecting
    }
}

/// Registers `send_file`, delivering through `courier`.
pub fn register_send_file_tool(
    registry: &mut ToolRegistry,
    workspace: &Workspace,
    courier: Arc<dyn FileCourier>,
) -> Result<(), RegistryError> {
    registry.register(Arc::new(SendFileTool {
        workspace: workspace.clone(),
        courier,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<OutgoingFile>>);

    #[async_trait]
    impl FileCourier for Recorded {
        async fn deliver(&self, file: OutgoingFile, _: &ToolContext) -> Result<(), String> {
            self.0.lock().unwrap().push(file);
            Ok(())
        }
    }

    #[tokio::test]
    async fn only_regular_files_inside_shared_are_sent() {
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(root.path()).unwrap();
        let shared = workspace.mount_dir(Mount::Shared).to_path_buf();
        std::fs::write(shared.join("report.txt"), "numbers").unwrap();
        std::fs::write(workspace.mount_dir(Mount::Vault).join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(
            workspace.mount_dir(Mount::Vault).join("secret"),
            shared.join("sneaky"),
        )
        .unwrap();
        std::fs::create_dir(shared.join("dir")).unwrap();
        let courier = Arc::new(Recorded::default());
        let tool = SendFileTool {
            workspace,
            courier: courier.clone(),
        };
        let context = ToolContext::new("s-1");
        let sent = tool
            .execute(
                r#"{"path": "/shared/report.txt", "caption": " here "}"#,
                &context,
            )
            .await
            .unwrap();
        assert_eq!(sent, "Sent /shared/report.txt (7 bytes).");
        assert_eq!(
            courier.0.lock().unwrap().as_slice(),
            [OutgoingFile {
                path: "/shared/report.txt".into(),
                file_name: "report.txt".into(),
                size_bytes: 7,
                caption: Some("here".into()),
            }]
        );
        for (path, why) in [
            ("/vault/secret", "only files under /shared"),
            ("/shared/sneaky", "outside"),
            ("/shared/dir", "not a regular file"),
            ("/shared/../vault/secret", "climbs above /shared"),
            ("/shared/missing.txt", "cannot be sent"),
        ] {
            let error = tool
                .execute(&format!(r#"{{"path": "{path}"}}"#), &context)
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{path}: {error}");
        }
        assert_eq!(courier.0.lock().unwrap().len(), 1);
    }
}
