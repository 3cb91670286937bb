//! The file-operation protocol between a file tool and the runner that
//! executes it: a typed request in, a typed response out. The same JSON
//! crosses into the WASM guest (on stdin/stdout), so host and guest run
//! one implementation of every operation.
//!
//! Paths are the workspace paths the model sees: `/shared/...`,
//! `/tmp/...`, `/vault/...`.

use serde::{Deserialize, Serialize};

/// A workspace mount as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mount {
    /// Persistent user data.
    Shared,
    /// Scratch space.
    Tmp,
    /// Sensitive files, read only through `vault_copyto`.
    Vault,
}

impl Mount {
    pub const ALL: [Mount; 3] = [Mount::Shared, Mount::Tmp, Mount::Vault];

    /// The directory name, also the first path component the model uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Tmp => "tmp",
            Self::Vault => "vault",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}", self.name())
    }
}

/// Whether an operation needs to read or to change its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
}

/// One file operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FileRequest {
    /// UTF-8 text, optionally a range of lines (1-based, inclusive start).
    Read {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_line: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_lines: Option<u64>,
    },
    /// Lines matching a regular expression in the files under `path`
    /// (recursively), optionally only files whose path matches `glob`.
    Search {
        path: String,
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        glob: Option<String>,
        max_results: u32,
    },
    /// The entries of a directory.
    List { path: String },
    /// Creates or replaces a file (parents are created).
    Write { path: String, content: String },
    /// Replaces the single occurrence of `old_text` with `new_text`.
    Edit {
        path: String,
        old_text: String,
        new_text: String,
    },
    /// Deletes a file, or a directory with everything in it.
    Delete { path: String },
    /// Vault copy, step 1: the bytes of a vault file.
    VaultRead { path: String },
    /// Vault copy, step 2: writes bytes read in step 1.
    VaultWrite {
        path: String,
        content_base64: String,
    },
}

impl FileRequest {
    /// The path the request names.
    pub fn path(&self) -> &str {
        match self {
            Self::Read { path, .. }
            | Self::Search { path, .. }
            | Self::List { path }
            | Self::Write { path, .. }
            | Self::Edit { path, .. }
            | Self::Delete { path }
            | Self::VaultRead { path }
            | Self::VaultWrite { path, .. } => path,
        }
    }

    /// Whether the request changes its target.
    pub fn access(&self) -> Access {
        match self {
            Self::Read { .. }
            | Self::Search { .. }
            | Self::List { .. }
            | Self::VaultRead { .. } => Access::Read,
            Self::Write { .. }
            | Self::Edit { .. }
            | Self::Delete { .. }
            | Self::VaultWrite { .. } => Access::Write,
        }
    }
}

/// What kind of filesystem entry something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    /// Bytes, for files; 0 otherwise.
    pub size: u64,
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchMatch {
    pub path: String,
    /// 1-based.
    pub line: u64,
    pub text: String,
}

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileErrorKind {
    NotFound,
    NotAFile,
    NotADirectory,
    /// The file is not UTF-8 text.
    Binary,
    InvalidInput,
    /// Outside the mounts this operation may use, or a write to a
    /// read-only mount.
    PermissionDenied,
    /// `file_edit`: the text to replace does not occur.
    NoMatch,
    /// `file_edit`: the text to replace occurs more than once.
    AmbiguousMatch,
    TooLarge,
    Io,
}

/// The result of one file operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum FileResponse {
    Text {
        text: String,
        /// Lines returned, and whether the file continues past them.
        lines: u64,
        truncated: bool,
    },
    Entries {
        entries: Vec<DirEntry>,
    },
    Matches {
        matches: Vec<SearchMatch>,
        /// More matches exist than `max_results`.
        truncated: bool,
    },
    Written {
        path: String,
        bytes: u64,
    },
    Edited {
        path: String,
    },
    Deleted {
        path: String,
        kind: EntryKind,
    },
    Bytes {
        content_base64: String,
        bytes: u64,
    },
    Error {
        kind: FileErrorKind,
        message: String,
    },
}

impl FileResponse {
    pub fn error(kind: FileErrorKind, message: impl Into<String>) -> Self {
        Self::Error {
            kind,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn every_request_round_trips_and_names_its_access() {
        let requests = [
            (
                FileRequest::Read {
                    path: "/shared/a".into(),
                    start_line: Some(3),
                    max_lines: None,
                },
                Access::Read,
            ),
            (
                FileRequest::Search {
                    path: "/shared".into(),
                    pattern: "fn main".into(),
                    glob: Some("*.rs".into()),
                    max_results: 50,
                },
                Access::Read,
            ),
            (
                FileRequest::List {
                    path: "/tmp".into(),
                },
                Access::Read,
            ),
            (
                FileRequest::Write {
                    path: "/tmp/x".into(),
                    content: "héllo".into(),
                },
                Access::Write,
            ),
            (
                FileRequest::Edit {
                    path: "/shared/a".into(),
                    old_text: "a".into(),
                    new_text: "b".into(),
                },
                Access::Write,
            ),
            (
                FileRequest::Delete {
                    path: "/tmp/x".into(),
                },
                Access::Write,
            ),
            (
                FileRequest::VaultRead {
                    path: "/vault/k".into(),
                },
                Access::Read,
            ),
            (
                FileRequest::VaultWrite {
                    path: "/shared/k".into(),
                    content_base64: "AAE=".into(),
                },
                Access::Write,
            ),
        ];
        for (request, access) in &requests {
            round_trip(request);
            assert_eq!(request.access(), *access);
            assert!(request.path().starts_with('/'));
        }
    }

    #[test]
    fn every_response_round_trips() {
        for response in [
            FileResponse::Text {
                text: "a\nb".into(),
                lines: 2,
                truncated: true,
            },
            FileResponse::Entries {
                entries: vec![DirEntry {
                    name: "a".into(),
                    kind: EntryKind::File,
                    size: 3,
                }],
            },
            FileResponse::Matches {
                matches: vec![SearchMatch {
                    path: "/shared/a".into(),
                    line: 1,
                    text: "x".into(),
                }],
                truncated: false,
            },
            FileResponse::Written {
                path: "/tmp/x".into(),
                bytes: 5,
            },
            FileResponse::Edited {
                path: "/shared/a".into(),
            },
            FileResponse::Deleted {
                path: "/tmp/d".into(),
                kind: EntryKind::Directory,
            },
            FileResponse::Bytes {
                content_base64: "AAE=".into(),
                bytes: 2,
            },
            FileResponse::error(FileErrorKind::AmbiguousMatch, "2 matches"),
        ] {
            round_trip(&response);
        }
    }

    #[test]
    fn wire_shape_and_errors() {
        assert_eq!(
            serde_json::to_value(FileRequest::List {
                path: "/tmp".into()
            })
            .unwrap(),
            json!({"op": "list", "path": "/tmp"})
        );
        let err = serde_json::from_str::<FileRequest>(r#"{"op":"chmod","path":"/x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `chmod`"), "{err}");
    }
}
