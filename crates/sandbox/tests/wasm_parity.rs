//! The WASM runner answers exactly like the host runner: the same requests
//! against two identical workspaces, one through each, give the same
//! responses (successes and refusals alike). The intended differences,
//! symlinks that cross from one mount into another or name an absolute host
//! path, are pinned at the end.
#![cfg(feature = "wasm-isolation")]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sandbox::wasm::WasmWasiToolRunner;
use sandbox::{CapabilityProfile, FileRunner, HostFileRunner, Workspace};
use types::protocol::file_ops::{FileErrorKind, FileRequest, FileResponse};

use CapabilityProfile::{FileReadOnly, FileReadWrite, VaultReadStep, VaultWriteStep, Web};

/// The same workspace content twice: one served by each runner.
struct Twins {
    _dir: tempfile::TempDir,
    roots: [PathBuf; 2],
    host: HostFileRunner,
    wasm: WasmWasiToolRunner,
}

impl Twins {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let roots = [dir.path().join("host"), dir.path().join("wasm")];
        let workspaces = roots.clone().map(|root| Workspace::open(&root).unwrap());
        fs::write(dir.path().join("outside.txt"), "host file").unwrap();
        for root in &roots {
            let put = |path: &str, content: &[u8]| {
                let path = root.join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, content).unwrap();
            };
            put("shared/notes.md", b"one\ntwo\nthree\nfour\n");
            put("shared/same.txt", b"same same");
            put(
                "shared/src/main.rs",
                b"fn main() {\n    println!(\"hi\");\n}\n",
            );
            put("shared/src/lib.rs", b"pub fn hi() {}\n");
            put("shared/.git/config", b"fn hidden\n");
            put("shared/image.png", b"\x89PNG\r\n\x1a\n\0\0\0");
            put("shared/big.txt", &vec![b'z'; 5 * 1024 * 1024]);
            put("tmp/scratch.txt", b"scratch\n");
            put("vault/key", b"vault secret");
            fs::create_dir_all(root.join("shared/empty")).unwrap();
            symlink("notes.md", root.join("shared/notes-link")).unwrap();
            symlink(dir.path().join("outside.txt"), root.join("shared/out")).unwrap();
        }
        let [host_ws, wasm_ws] = workspaces;
        Self {
            _dir: dir,
            roots,
            host: HostFileRunner::new(host_ws),
            wasm: WasmWasiToolRunner::new(wasm_ws).unwrap(),
        }
    }

    /// Runs `request` through both runners and asserts the same answer.
    fn same(&self, profile: CapabilityProfile, request: FileRequest) -> FileResponse {
        let host = self.host.run(profile, &request);
        let wasm = self.wasm.run(profile, &request);
        assert_eq!(wasm, host, "{request:?} under {profile}");
        host
    }

    /// Both workspaces hold the same bytes at `path` (or neither has it).
    fn same_on_disk(&self, path: &str) {
        let [host, wasm] = self.roots.clone().map(|root| read_opt(&root.join(path)));
        assert_eq!(host, wasm, "{path}");
    }
}

fn read_opt(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

fn read(path: &str) -> FileRequest {
    FileRequest::Read {
        path: path.into(),
        start_line: None,
        max_lines: None,
    }
}

fn lines(path: &str, start_line: u64, max_lines: Option<u64>) -> FileRequest {
    FileRequest::Read {
        path: path.into(),
        start_line: Some(start_line),
        max_lines,
    }
}

fn list(path: &str) -> FileRequest {
    FileRequest::List { path: path.into() }
}

fn search(path: &str, pattern: &str, glob: Option<&str>, max_results: u32) -> FileRequest {
    FileRequest::Search {
        path: path.into(),
        pattern: pattern.into(),
        glob: glob.map(Into::into),
        max_results,
    }
}

fn write(path: &str, content: &str) -> FileRequest {
    FileRequest::Write {
        path: path.into(),
        content: content.into(),
    }
}

fn edit(path: &str, old_text: &str, new_text: &str) -> FileRequest {
    FileRequest::Edit {
        path: path.into(),
        old_text: old_text.into(),
        new_text: new_text.into(),
    }
}

fn delete(path: &str) -> FileRequest {
    FileRequest::Delete { path: path.into() }
}

fn error_kind(response: &FileResponse) -> Option<FileErrorKind> {
    match response {
        FileResponse::Error { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[test]
fn reads_lists_and_searches_match() {
    let twins = Twins::new();
    for request in [
        read("/shared/notes.md"),
        read("notes.md"),
        lines("/shared/notes.md", 2, Some(2)),
        lines("/shared/notes.md", 4, None),
        lines("/shared/notes.md", 9, None),
        lines("/shared/notes.md", 0, None),
        read("/shared/notes-link"),
        read("/shared/image.png"),
        read("/shared/big.txt"),
        read("/shared/src"),
        read("/shared/missing.txt"),
        read("/vault/key"),
        read("/shared/out"),
        read("/etc/passwd"),
        read("/shared/../../outside.txt"),
        list("/shared"),
        list("/shared/empty"),
        list("/shared/notes.md"),
        list("/vault"),
        list("/tmp/missing"),
        search("/shared", "fn", None, 100),
        search("/shared", "fn", Some("*.rs"), 100),
        search("/shared", "fn", Some("src/lib.rs"), 100),
        search("/shared", "e", None, 2),
        search("/shared/src/main.rs", "println", None, 10),
        search("/shared", "(", None, 10),
        search("/shared", "x", Some("["), 10),
    ] {
        twins.same(FileReadOnly, request);
    }
    assert!(matches!(
        twins.same(FileReadOnly, read("/shared/big.txt")),
        FileResponse::Text {
            truncated: true,
            ..
        }
    ));
}

#[test]
fn writes_edits_and_deletes_match() {
    let twins = Twins::new();
    let steps = [
        write("/shared/new/deep/file.txt", "hello\n"),
        write("/tmp/scratch.txt", "replaced\n"),
        write("/shared/src", "not a dir"),
        write("/shared", "root"),
        write("/shared/notes-link", "through the link\n"),
        edit("/shared/same.txt", "same", "x"),
        edit("/shared/same.txt", "nope", "x"),
        edit("/shared/same.txt", "", "x"),
        edit("/shared/notes.md", "two", "TWO"),
        edit("/shared/image.png", "PNG", "GIF"),
        delete("/shared/new"),
        delete("/tmp/scratch.txt"),
        delete("/shared"),
        delete("/shared/missing"),
        write("/vault/planted", "x"),
        delete("/vault/key"),
        write("/shared/out", "x"),
    ];
    for request in steps {
        twins.same(FileReadWrite, request);
    }
    for path in [
        "shared/new/deep/file.txt",
        "tmp/scratch.txt",
        "shared/notes.md",
        "shared/notes-link",
        "shared/same.txt",
        "vault/key",
        "vault/planted",
    ] {
        twins.same_on_disk(path);
    }
}

#[test]
fn read_only_profiles_refuse_the_same_way() {
    let twins = Twins::new();
    for (profile, request) in [
        (FileReadOnly, write("/shared/notes.md", "x")),
        (FileReadOnly, edit("/shared/notes.md", "one", "x")),
        (FileReadOnly, delete("/tmp/scratch.txt")),
        (VaultReadStep, read("/shared/notes.md")),
        (VaultReadStep, write("/vault/new", "x")),
        (Web, read("/tmp/scratch.txt")),
    ] {
        let response = twins.same(profile, request);
        assert_eq!(error_kind(&response), Some(FileErrorKind::PermissionDenied));
    }
    twins.same_on_disk("shared/notes.md");
    twins.same_on_disk("tmp/scratch.txt");
}

#[test]
fn vault_steps_match() {
    let twins = Twins::new();
    let read_step = twins.same(
        VaultReadStep,
        FileRequest::VaultRead {
            path: "/vault/key".into(),
        },
    );
    let FileResponse::Bytes { content_base64, .. } = read_step else {
        panic!("{read_step:?}");
    };
    twins.same(
        VaultWriteStep,
        FileRequest::VaultWrite {
            path: "/tmp/key-copy".into(),
            content_base64,
        },
    );
    twins.same(
        VaultWriteStep,
        FileRequest::VaultWrite {
            path: "/tmp/bad".into(),
            content_base64: "not base64!".into(),
        },
    );
    twins.same(
        VaultWriteStep,
        FileRequest::VaultRead {
            path: "/vault/key".into(),
        },
    );
    twins.same_on_disk("tmp/key-copy");
}

/// The intended differences. The host check judges a symlink by where it
/// leads, so a read tool may read `/shared/notes.md` through a link in
/// `/tmp`, or through a link whose target is an absolute host path. Inside
/// the sandbox a link must stay inside the preopen it is in and be
/// relative (the guest has no host paths): the WASM runner refuses both.
/// Stricter, and the model can use the real path.
#[test]
fn links_across_mounts_or_to_host_paths_are_refused_only_by_the_sandbox() {
    let twins = Twins::new();
    for root in &twins.roots {
        symlink(root.join("shared/notes.md"), root.join("tmp/notes-link")).unwrap();
        symlink("../shared/notes.md", root.join("tmp/relative-link")).unwrap();
        symlink(
            root.join("shared/notes.md"),
            root.join("shared/absolute-link"),
        )
        .unwrap();
    }
    for path in [
        "/tmp/notes-link",
        "/tmp/relative-link",
        "/shared/absolute-link",
    ] {
        let request = read(path);
        assert!(
            matches!(
                twins.host.run(FileReadOnly, &request),
                FileResponse::Text { .. }
            ),
            "{path}"
        );
        assert_eq!(
            error_kind(&twins.wasm.run(FileReadOnly, &request)),
            Some(FileErrorKind::PermissionDenied),
            "{path}"
        );
    }
}

/// Deleting a symlink deletes the link inside the sandbox (the guest opens
/// the workspace path itself), while the host runner deletes what the
/// path policy resolved it to: the link's target.
// FIXME(#5): `HostFileRunner` deletes a symlink's target instead of the
// link, because it operates on `Workspace::resolve`'s canonical path.
#[test]
fn deleting_a_symlink_deletes_the_link_in_the_sandbox() {
    let twins = Twins::new();
    let request = delete("/shared/notes-link");
    assert!(matches!(
        twins.wasm.run(FileReadWrite, &request),
        FileResponse::Deleted {
            kind: types::protocol::file_ops::EntryKind::Symlink,
            ..
        }
    ));
    assert!(matches!(
        twins.host.run(FileReadWrite, &request),
        FileResponse::Deleted {
            kind: types::protocol::file_ops::EntryKind::File,
            ..
        }
    ));
    let [host, wasm] = twins.roots.clone();
    assert!(wasm.join("shared/notes.md").exists());
    assert!(
        !host.join("shared/notes.md").exists(),
        "the host runner deleted the target"
    );
    assert!(host.join("shared/notes-link").is_symlink());
}
