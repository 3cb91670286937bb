//! The path policy through the host runner, on real directories: escapes
//! via `..`, absolute paths and symlinks are refused by where they really
//! lead; allowed paths work.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sandbox::{CapabilityProfile, FileRunner, HostFileRunner, Workspace};
use types::protocol::file_ops::{FileErrorKind, FileRequest, FileResponse};

use CapabilityProfile::{FileReadOnly, FileReadWrite, VaultReadStep, VaultWriteStep, Web};

struct Fixture {
    dir: tempfile::TempDir,
    runner: HostFileRunner,
}

impl Fixture {
    /// A workspace at `<tmp>/alice`, plus a sibling user's workspace and a
    /// file outside both.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(&dir.path().join("alice")).unwrap();
        fs::create_dir_all(dir.path().join("bob/shared")).unwrap();
        fs::write(dir.path().join("bob/shared/diary.txt"), "bob's secrets").unwrap();
        fs::write(dir.path().join("outside.txt"), "host file").unwrap();
        fs::write(dir.path().join("alice/vault/key"), "vault secret").unwrap();
        fs::write(dir.path().join("alice/shared/notes.md"), "notes").unwrap();
        Self {
            runner: HostFileRunner::new(workspace),
            dir,
        }
    }

    fn host(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    fn link(&self, target: &Path, link: &str) {
        symlink(target, self.host(link)).unwrap();
    }

    fn run(&self, profile: CapabilityProfile, request: FileRequest) -> FileResponse {
        self.runner.run(profile, &request)
    }

    /// The refusal message, asserting the request was refused by policy.
    fn refused(&self, profile: CapabilityProfile, request: FileRequest) -> String {
        match self.run(profile, request.clone()) {
            FileResponse::Error {
                kind: FileErrorKind::PermissionDenied,
                message,
            } => message,
            other => panic!("{request:?} under {profile} was not refused: {other:?}"),
        }
    }
}

fn read(path: &str) -> FileRequest {
    FileRequest::Read {
        path: path.into(),
        start_line: None,
        max_lines: None,
    }
}

fn write(path: &str) -> FileRequest {
    FileRequest::Write {
        path: path.into(),
        content: "pwned".into(),
    }
}

#[test]
fn allowed_paths_work() {
    let fx = Fixture::new();
    assert!(matches!(
        fx.run(FileReadOnly, read("/shared/notes.md")),
        FileResponse::Text { .. }
    ));
    assert!(matches!(
        fx.run(FileReadOnly, read("/vault/key")),
        FileResponse::Text { .. }
    ));
    assert!(matches!(
        fx.run(FileReadWrite, write("/tmp/new/file.txt")),
        FileResponse::Written { .. }
    ));
    assert_eq!(
        fs::read_to_string(fx.host("alice/tmp/new/file.txt")).unwrap(),
        "pwned"
    );
}

#[test]
fn dot_dot_chains_cannot_leave_a_mount() {
    let fx = Fixture::new();
    for path in [
        "/shared/../../bob/shared/diary.txt",
        "/shared/../vault/key",
        "/tmp/a/../../../outside.txt",
        "../../outside.txt",
    ] {
        let message = fx.refused(FileReadWrite, read(path));
        assert!(message.contains("climbs above"), "{path}: {message}");
    }
}

#[test]
fn absolute_host_paths_are_not_workspace_paths() {
    let fx = Fixture::new();
    for path in ["/etc/passwd", "/proc/self/environ", "/home"] {
        match fx.run(FileReadOnly, read(path)) {
            FileResponse::Error {
                kind: FileErrorKind::InvalidInput,
                message,
            } => assert!(message.contains("/shared, /tmp or /vault"), "{message}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    // A host path that happens to start with /tmp is a path in the
    // workspace's own /tmp mount: contained, and there it does not exist.
    let host_path = fx.host("outside.txt").display().to_string();
    let expected = if host_path.starts_with("/tmp/") {
        FileErrorKind::NotFound
    } else {
        FileErrorKind::InvalidInput
    };
    assert!(matches!(
        fx.run(FileReadOnly, read(&host_path)),
        FileResponse::Error { kind, .. } if kind == expected
    ));
}

#[test]
fn symlinks_out_of_the_workspace_are_refused() {
    let fx = Fixture::new();
    fx.link(&fx.host("outside.txt"), "alice/shared/out");
    fx.link(&fx.host("bob/shared"), "alice/shared/bob");
    fx.link(Path::new("/etc"), "alice/tmp/etc");
    for path in ["/shared/out", "/shared/bob/diary.txt", "/tmp/etc/passwd"] {
        let message = fx.refused(FileReadOnly, read(path));
        assert!(
            message.contains("outside the workspace mounts"),
            "{path}: {message}"
        );
    }
    // Writing through a link out of the workspace must not create anything.
    let message = fx.refused(FileReadWrite, write("/shared/bob/planted.txt"));
    assert!(message.contains("outside"), "{message}");
    assert!(!fx.host("bob/shared/planted.txt").exists());
}

#[test]
fn symlinks_into_the_vault_are_judged_by_their_target() {
    let fx = Fixture::new();
    fx.link(&fx.host("alice/vault/key"), "alice/shared/key-link");
    fx.link(&fx.host("alice/vault"), "alice/tmp/vault-dir");
    // Write tools have no vault at all.
    let message = fx.refused(FileReadWrite, write("/shared/key-link"));
    assert!(message.contains("outside"), "{message}");
    fx.refused(FileReadWrite, write("/tmp/vault-dir/new"));
    assert_eq!(
        fs::read_to_string(fx.host("alice/vault/key")).unwrap(),
        "vault secret"
    );
    // Read tools may read the vault, through a link as well.
    assert!(matches!(
        fx.run(FileReadOnly, read("/shared/key-link")),
        FileResponse::Text { .. }
    ));
}

#[test]
fn symlinks_inside_allowed_roots_work() {
    let fx = Fixture::new();
    fx.link(&fx.host("alice/shared/notes.md"), "alice/tmp/notes-link");
    match fx.run(FileReadOnly, read("/tmp/notes-link")) {
        FileResponse::Text { text, .. } => assert_eq!(text, "notes"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        fx.run(FileReadWrite, write("/tmp/notes-link")),
        FileResponse::Written { .. }
    ));
    assert_eq!(
        fs::read_to_string(fx.host("alice/shared/notes.md")).unwrap(),
        "pwned"
    );
}

#[test]
fn dangling_links_cannot_be_written_through() {
    let fx = Fixture::new();
    let target = fx.host("created-outside.txt");
    fx.link(&target, "alice/shared/dangling");
    fx.link(&fx.host("no-such-dir"), "alice/shared/dangling-dir");
    let message = fx.refused(FileReadWrite, write("/shared/dangling"));
    assert!(message.contains("target does not exist"), "{message}");
    fx.refused(FileReadWrite, write("/shared/dangling-dir/x.txt"));
    assert!(!target.exists() && !fx.host("no-such-dir").exists());
}

#[test]
fn read_only_profiles_cannot_write() {
    let fx = Fixture::new();
    let message = fx.refused(FileReadOnly, write("/shared/notes.md"));
    assert_eq!(message, "/shared/notes.md is read-only for this tool");
    fx.refused(
        FileReadOnly,
        FileRequest::Delete {
            path: "/shared/notes.md".into(),
        },
    );
    fx.refused(
        FileReadOnly,
        FileRequest::Edit {
            path: "/shared/notes.md".into(),
            old_text: "notes".into(),
            new_text: "x".into(),
        },
    );
    assert_eq!(
        fs::read_to_string(fx.host("alice/shared/notes.md")).unwrap(),
        "notes"
    );
}

#[test]
fn vault_steps_hold_only_their_own_mounts() {
    let fx = Fixture::new();
    // Step 1 sees only the vault, read-only.
    assert!(matches!(
        fx.run(
            VaultReadStep,
            FileRequest::VaultRead {
                path: "/vault/key".into()
            }
        ),
        FileResponse::Bytes { .. }
    ));
    let message = fx.refused(VaultReadStep, read("/shared/notes.md"));
    assert_eq!(
        message,
        "/shared/notes.md cannot be used by this tool: it may only use /vault"
    );
    fx.refused(VaultReadStep, write("/vault/new"));
    // Step 2 writes shared/tmp and never sees the vault.
    fx.refused(
        VaultWriteStep,
        FileRequest::VaultRead {
            path: "/vault/key".into(),
        },
    );
    // The web profile has no filesystem at all.
    let message = fx.refused(Web, read("/tmp/x"));
    assert!(message.contains("no workspace mounts"), "{message}");
}

#[test]
fn workspace_open_creates_mounts_with_a_private_vault() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::open(&dir.path().join("carol")).unwrap();
    for mount in types::protocol::file_ops::Mount::ALL {
        assert!(workspace.mount_dir(mount).is_dir());
    }
    let mode = fs::metadata(dir.path().join("carol/vault"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}
