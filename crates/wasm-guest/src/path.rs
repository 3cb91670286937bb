//! Workspace paths (`/shared/notes.md`) and how an operation turns one into
//! a path it can open.

use std::fmt;
use std::path::PathBuf;

use types::protocol::file_ops::{Access, FileErrorKind, FileResponse, Mount};

/// An operation's failure: a kind and a message for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub kind: FileErrorKind,
    pub message: String,
}

impl OpError {
    pub fn new(kind: FileErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<OpError> for FileResponse {
    fn from(error: OpError) -> Self {
        FileResponse::Error {
            kind: error.kind,
            message: error.message,
        }
    }
}

/// A lexically normalised workspace path: a mount and the components
/// below it, with `.` removed and `..` applied. A path that would climb
/// above its mount is refused here, before anything touches a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualPath {
    pub mount: Mount,
    pub components: Vec<String>,
}

impl VirtualPath {
    /// Parses a path the model wrote. Absolute paths must start with a
    /// mount (`/shared`, `/tmp`, `/vault`); relative paths are relative to
    /// `/shared`.
    pub fn parse(path: &str) -> Result<Self, OpError> {
        let invalid = |why: &str| {
            OpError::new(
                FileErrorKind::InvalidInput,
                format!("invalid path {path:?}: {why}"),
            )
        };
        if path.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        if path.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty() && *p != ".");
        let mount = if path.starts_with('/') {
            let first = parts.next().unwrap_or_default();
            Mount::from_name(first)
                .ok_or_else(|| invalid("workspace paths start with /shared, /tmp or /vault"))?
        } else {
            Mount::Shared
        };
        let mut components = Vec::new();
        for part in parts {
            if part == ".." {
                if components.pop().is_none() {
                    return Err(OpError::new(
                        FileErrorKind::PermissionDenied,
                        format!("path {path:?} climbs above {mount}"),
                    ));
                }
            } else {
                components.push(part.to_owned());
            }
        }
        Ok(Self { mount, components })
    }

    /// Whether this is a mount's root directory itself.
    pub fn is_mount_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The same path with `name` appended.
    pub fn child(&self, name: &str) -> Self {
        let mut components = self.components.clone();
        components.push(name.to_owned());
        Self {
            mount: self.mount,
            components,
        }
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mount)?;
        for component in &self.components {
            write!(f, "/{component}")?;
        }
        Ok(())
    }
}

/// Turns a workspace path into a path the operation opens, checking that
/// the caller may access it. On the host this maps into the user's
/// workspace and applies the path policy; inside the WASM guest the
/// mounts are preopened at their workspace names, so the path is used
/// as-is and the sandbox itself enforces the limits.
pub trait PathMap {
    fn open_path(&self, path: &VirtualPath, access: Access) -> Result<PathBuf, OpError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Result<String, FileErrorKind> {
        VirtualPath::parse(path)
            .map(|p| p.to_string())
            .map_err(|e| e.kind)
    }

    #[test]
    fn normalises_workspace_paths() {
        assert_eq!(parse("/shared/a/./b//c"), Ok("/shared/a/b/c".into()));
        assert_eq!(parse("/tmp/a/../b"), Ok("/tmp/b".into()));
        assert_eq!(parse("notes/todo.md"), Ok("/shared/notes/todo.md".into()));
        assert_eq!(parse("/vault/"), Ok("/vault".into()));
        assert_eq!(parse("/shared/x/.."), Ok("/shared".into()));
    }

    #[test]
    fn refuses_escapes_and_garbage() {
        assert_eq!(
            parse("/shared/../vault/key"),
            Err(FileErrorKind::PermissionDenied)
        );
        assert_eq!(
            parse("../../etc/passwd"),
            Err(FileErrorKind::PermissionDenied)
        );
        assert_eq!(parse("/etc/passwd"), Err(FileErrorKind::InvalidInput));
        assert_eq!(parse("/"), Err(FileErrorKind::InvalidInput));
        assert_eq!(parse(""), Err(FileErrorKind::InvalidInput));
        assert_eq!(parse("/shared/a\0b"), Err(FileErrorKind::InvalidInput));
        let err = VirtualPath::parse("/etc/passwd").unwrap_err();
        assert!(
            err.message.contains("/shared, /tmp or /vault"),
            "{}",
            err.message
        );
    }

    #[test]
    fn mount_roots() {
        assert!(VirtualPath::parse("/tmp").unwrap().is_mount_root());
        assert!(!VirtualPath::parse("/tmp/x").unwrap().is_mount_root());
        assert_eq!(
            VirtualPath::parse("/tmp").unwrap().child("x").to_string(),
            "/tmp/x"
        );
    }
}
