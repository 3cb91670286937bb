//! The file tools: `file_read`, `file_search`, `file_list` (read-only) and
//! `file_write`, `file_edit`, `file_delete` (side-effecting). Each turns
//! its arguments into a `FileRequest` and runs it through a `FileRunner`
//! with its capability profile; the path policy also checks the arguments
//! in front, in the registry pipeline.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sandbox::{CapabilityProfile, FileRunner, Workspace};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use types::protocol::file_ops::{
    Access, DirEntry, EntryKind, FileErrorKind, FileRequest, FileResponse,
};
use types::{FunctionDecl, JsonSchema, SafetyTier, Tool, ToolContext, ToolError};
use wasm_guest::VirtualPath;

use crate::registry::{ArgumentPolicy, RegistryError, ToolRegistry};

/// How long one file operation may take.
pub const FILE_TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// Search results when the model does not say.
const DEFAULT_MAX_RESULTS: u32 = 100;
/// The most search results a call may ask for.
const MAX_RESULTS_LIMIT: u32 = 1000;

/// Which file tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileToolKind {
    Read,
    Search,
    List,
    Write,
    Edit,
    Delete,
}

impl FileToolKind {
    pub const ALL: [FileToolKind; 6] = [
        Self::Read,
        Self::Search,
        Self::List,
        Self::Write,
        Self::Edit,
        Self::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "file_read",
            Self::Search => "file_search",
            Self::List => "file_list",
            Self::Write => "file_write",
            Self::Edit => "file_edit",
            Self::Delete => "file_delete",
        }
    }

    pub fn profile(self) -> CapabilityProfile {
        match self {
            Self::Read | Self::Search | Self::List => CapabilityProfile::FileReadOnly,
            Self::Write | Self::Edit | Self::Delete => CapabilityProfile::FileReadWrite,
        }
    }

    fn access(self) -> Access {
        match self {
            Self::Read | Self::Search | Self::List => Access::Read,
            Self::Write | Self::Edit | Self::Delete => Access::Write,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Read => {
                "Read a UTF-8 text file from the workspace (/shared, /tmp or /vault), optionally a range of lines. Binary files are refused."
            }
            Self::Search => {
                "Search files under a workspace directory (recursively) for lines matching a regular expression; optionally only files matching a glob such as *.rs."
            }
            Self::List => "List the entries of a workspace directory with their type and size.",
            Self::Write => {
                "Create or overwrite a file in /shared or /tmp with the given text; missing parent directories are created."
            }
            Self::Edit => {
                "Replace one exact snippet of text in a file in /shared or /tmp. The snippet must occur exactly once; include surrounding lines to make it unique."
            }
            Self::Delete => {
                "Delete a file or a directory (with everything in it) in /shared or /tmp."
            }
        }
    }

    fn parameters(self) -> JsonSchema {
        let path = |what: &str| {
            JsonSchema::string().with_description(format!(
                "Workspace path of the {what}, e.g. /shared/notes.md (relative paths are under /shared)"
            ))
        };
        let fields: Vec<(&str, JsonSchema, bool)> = match self {
            Self::Read => vec![
                ("path", path("file"), true),
                (
                    "start_line",
                    JsonSchema::integer()
                        .with_minimum(1)
                        .with_description("First line to return, 1-based"),
                    false,
                ),
                (
                    "max_lines",
                    JsonSchema::integer()
                        .with_minimum(1)
                        .with_description("How many lines to return"),
                    false,
                ),
            ],
            Self::Search => vec![
                ("path", path("directory or file to search"), true),
                (
                    "pattern",
                    JsonSchema::string().with_description("Regular expression (Rust regex syntax)"),
                    true,
                ),
                (
                    "glob",
                    JsonSchema::string()
                        .with_description("Only search files matching this glob, e.g. *.md"),
                    false,
                ),
                (
                    "max_results",
                    JsonSchema::integer()
                        .with_minimum(1)
                        .with_maximum(i64::from(MAX_RESULTS_LIMIT))
                        .with_description("Most matching lines to return (default 100)"),
                    false,
                ),
            ],
            Self::List => vec![("path", path("directory"), true)],
            Self::Write => vec![
                ("path", path("file"), true),
                (
                    "content",
                    JsonSchema::string().with_description("The complete new file content"),
                    true,
                ),
            ],
            Self::Edit => vec![
                ("path", path("file"), true),
                (
                    "old_text",
                    JsonSchema::string().with_description("Exact text to replace; must occur once"),
                    true,
                ),
                (
                    "new_text",
                    JsonSchema::string().with_description("Replacement text"),
                    true,
                ),
            ],
            Self::Delete => vec![("path", path("file or directory"), true)],
        };
        let required = fields
            .iter()
            .filter(|(_, _, required)| *required)
            .map(|(name, _, _)| (*name).to_owned())
            .collect();
        let properties: BTreeMap<String, JsonSchema> = fields
            .into_iter()
            .map(|(name, schema, _)| (name.to_owned(), schema))
            .collect();
        JsonSchema::object(properties, required)
    }
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    start_line: Option<u64>,
    max_lines: Option<u64>,
}

#[derive(Deserialize)]
struct SearchArgs {
    path: String,
    pattern: String,
    glob: Option<String>,
    max_results: Option<u32>,
}

#[derive(Deserialize)]
struct PathArgs {
    path: String,
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
struct EditArgs {
    path: String,
    old_text: String,
    new_text: String,
}

pub(crate) fn parse<T: DeserializeOwned>(arguments: &str) -> Result<T, ToolError> {
    let text = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    serde_json::from_str(text).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

impl FileToolKind {
    fn request(self, arguments: &str) -> Result<FileRequest, ToolError> {
        Ok(match self {
            Self::Read => {
                let ReadArgs {
                    path,
                    start_line,
                    max_lines,
                } = parse(arguments)?;
                FileRequest::Read {
                    path,
                    start_line,
                    max_lines,
                }
            }
            Self::Search => {
                let args: SearchArgs = parse(arguments)?;
                FileRequest::Search {
                    path: args.path,
                    pattern: args.pattern,
                    glob: args.glob,
                    max_results: args
                        .max_results
                        .unwrap_or(DEFAULT_MAX_RESULTS)
                        .clamp(1, MAX_RESULTS_LIMIT),
                }
            }
            Self::List => FileRequest::List {
                path: parse::<PathArgs>(arguments)?.path,
            },
            Self::Write => {
                let WriteArgs { path, content } = parse(arguments)?;
                FileRequest::Write { path, content }
            }
            Self::Edit => {
                let EditArgs {
                    path,
                    old_text,
                    new_text,
                } = parse(arguments)?;
                FileRequest::Edit {
                    path,
                    old_text,
                    new_text,
                }
            }
            Self::Delete => FileRequest::Delete {
                path: parse::<PathArgs>(arguments)?.path,
            },
        })
    }
}

/// Runs `request` on a blocking thread and maps failures to tool errors.
pub(crate) async fn run_file_request(
    runner: &Arc<dyn FileRunner>,
    profile: CapabilityProfile,
    request: FileRequest,
) -> Result<FileResponse, ToolError> {
    let runner = runner.clone();
    let response = tokio::task::spawn_blocking(move || runner.run(profile, &request))
        .await
        .map_err(|e| ToolError::Execution(format!("the file operation was interrupted: {e}")))?;
    match response {
        FileResponse::Error {
            kind: FileErrorKind::PermissionDenied,
            message,
        } => Err(ToolError::PolicyViolation { reason: message }),
        FileResponse::Error { message, .. } => Err(ToolError::Execution(message)),
        response => Ok(response),
    }
}

/// One of the six file tools.
pub struct FileTool {
    kind: FileToolKind,
    runner: Arc<dyn FileRunner>,
}

impl fmt::Debug for FileTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTool")
            .field("kind", &self.kind)
            .finish()
    }
}

impl FileTool {
    pub fn new(kind: FileToolKind, runner: Arc<dyn FileRunner>) -> Self {
        Self { kind, runner }
    }
}

#[async_trait]
impl Tool for FileTool {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: self.kind.name().to_owned(),
            description: self.kind.description().to_owned(),
            parameters: self.kind.parameters(),
        }
    }

    async fn execute(&self, arguments: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let request = self.kind.request(arguments)?;
        let response = run_file_request(&self.runner, self.kind.profile(), request).await?;
        Ok(render(&response))
    }

    fn timeout(&self) -> Duration {
        FILE_TOOL_TIMEOUT
    }

    fn safety_tier(&self) -> SafetyTier {
        match self.kind.access() {
            Access::Read => SafetyTier::ReadOnly,
            Access::Write => SafetyTier::SideEffecting,
        }
    }
}

/// The text the model reads for a successful operation.
fn render(response: &FileResponse) -> String {
    match response {
        FileResponse::Text {
            text,
            lines,
            truncated,
        } => {
            if *truncated {
                format!(
                    "{text}\n[{lines} lines shown; the file continues — pass start_line to read further]"
                )
            } else {
                text.clone()
            }
        }
        FileResponse::Entries { entries } if entries.is_empty() => "(empty directory)".to_owned(),
        FileResponse::Entries { entries } => entries
            .iter()
            .map(render_entry)
            .collect::<Vec<_>>()
            .join("\n"),
        FileResponse::Matches { matches, .. } if matches.is_empty() => "No matches.".to_owned(),
        FileResponse::Matches { matches, truncated } => {
            let mut lines: Vec<String> = matches
                .iter()
                .map(|m| format!("{}:{}: {}", m.path, m.line, m.text))
                .collect();
            if *truncated {
                lines.push(format!(
                    "[more than {} matches; narrow the pattern or path]",
                    matches.len()
                ));
            }
            lines.join("\n")
        }
        FileResponse::Written { path, bytes } => format!("Wrote {bytes} bytes to {path}"),
        FileResponse::Edited { path } => format!("Edited {path}"),
        FileResponse::Deleted { path, kind } => match kind {
            EntryKind::Directory => format!("Deleted directory {path} and its contents"),
            EntryKind::File | EntryKind::Symlink | EntryKind::Other => format!("Deleted {path}"),
        },
        FileResponse::Bytes { bytes, .. } => format!("{bytes} bytes"),
        FileResponse::Error { message, .. } => message.clone(),
    }
}

fn render_entry(entry: &DirEntry) -> String {
    match entry.kind {
        EntryKind::Directory => format!("{}/", entry.name),
        EntryKind::File => format!("{} ({} bytes)", entry.name, entry.size),
        EntryKind::Symlink => format!("{} (symlink)", entry.name),
        EntryKind::Other => format!("{} (special file)", entry.name),
    }
}

/// The host-side path check in front of a file tool: every path argument
/// must resolve inside the mounts its profile allows.
#[derive(Debug, Clone)]
pub struct PathPolicy {
    workspace: Workspace,
    checks: Vec<(&'static str, CapabilityProfile, Access)>,
}

impl PathPolicy {
    /// Checks the `path` argument of a file tool.
    pub fn for_file_tool(workspace: Workspace, kind: FileToolKind) -> Self {
        Self {
            workspace,
            checks: vec![("path", kind.profile(), kind.access())],
        }
    }

    /// Checks several path arguments, each with its own profile.
    pub fn new(
        workspace: Workspace,
        checks: Vec<(&'static str, CapabilityProfile, Access)>,
    ) -> Self {
        Self { workspace, checks }
    }
}

impl ArgumentPolicy for PathPolicy {
    fn check(&self, arguments: &Value) -> Result<(), ToolError> {
        for (field, profile, access) in &self.checks {
            let Some(path) = arguments.get(*field).and_then(Value::as_str) else {
                continue;
            };
            let path = VirtualPath::parse(path).map_err(|e| match e.kind {
                FileErrorKind::PermissionDenied => ToolError::PolicyViolation { reason: e.message },
                _ => ToolError::InvalidArguments(e.message),
            })?;
            self.workspace
                .resolve(*profile, &path, *access)
                .map_err(|violation| ToolError::PolicyViolation {
                    reason: violation.to_string(),
                })?;
        }
        Ok(())
    }
}

/// Registers the six file tools with their path policies.
pub fn register_file_tools(
    registry: &mut ToolRegistry,
    workspace: &Workspace,
    runner: Arc<dyn FileRunner>,
) -> Result<(), RegistryError> {
    for kind in FileToolKind::ALL {
        registry.register_with_policy(
            Arc::new(FileTool::new(kind, runner.clone())),
            Arc::new(PathPolicy::for_file_tool(workspace.clone(), kind)),
        )?;
    }
    Ok(())
}
