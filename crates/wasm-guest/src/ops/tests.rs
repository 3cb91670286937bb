//! The operations against real directories, with no policy in between.

use std::fs;
use std::path::PathBuf;

use types::protocol::file_ops::{Access, EntryKind, FileErrorKind, FileRequest, FileResponse};

use super::*;

/// Maps mounts to `<root>/<mount>` with no checks at all.
struct UncheckedRoot(PathBuf);

impl PathMap for UncheckedRoot {
    fn open_path(&self, path: &VirtualPath, _access: Access) -> Result<PathBuf, OpError> {
        let mut open = self.0.join(path.mount.name());
        open.extend(&path.components);
        Ok(open)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    map: UncheckedRoot,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for mount in ["shared", "tmp", "vault"] {
            fs::create_dir(dir.path().join(mount)).unwrap();
        }
        let map = UncheckedRoot(dir.path().to_owned());
        Self { _dir: dir, map }
    }

    fn file(&self, path: &str, content: &[u8]) {
        let full = self.map.0.join(path.trim_start_matches('/'));
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
    }

    fn host(&self, path: &str) -> PathBuf {
        self.map.0.join(path.trim_start_matches('/'))
    }

    fn run(&self, request: FileRequest) -> FileResponse {
        execute(&request, &self.map)
    }

    fn error(&self, request: FileRequest) -> (FileErrorKind, String) {
        match self.run(request) {
            FileResponse::Error { kind, message } => (kind, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

fn read(path: &str, start_line: Option<u64>, max_lines: Option<u64>) -> FileRequest {
    FileRequest::Read {
        path: path.into(),
        start_line,
        max_lines,
    }
}

#[test]
fn read_whole_file_and_line_ranges() {
    let fx = Fixture::new();
    fx.file("shared/a.txt", "one\ntwo\nthree\nfour\n".as_bytes());
    assert_eq!(
        fx.run(read("/shared/a.txt", None, None)),
        FileResponse::Text {
            text: "one\ntwo\nthree\nfour\n".into(),
            lines: 4,
            truncated: false
        }
    );
    assert_eq!(
        fx.run(read("a.txt", Some(2), Some(2))),
        FileResponse::Text {
            text: "two\nthree\n".into(),
            lines: 2,
            truncated: true
        }
    );
    let (kind, message) = fx.error(read("/shared/a.txt", Some(9), None));
    assert_eq!(kind, FileErrorKind::InvalidInput);
    assert!(message.contains("only 4 lines"), "{message}");
    assert_eq!(
        fx.error(read("/shared/a.txt", Some(0), None)).0,
        FileErrorKind::InvalidInput
    );
}

#[test]
fn read_refuses_binary_directories_and_missing_files() {
    let fx = Fixture::new();
    fx.file("shared/img.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    fx.file("shared/latin1.txt", b"caf\xe9");
    let (kind, message) = fx.error(read("/shared/img.png", None, None));
    assert_eq!(kind, FileErrorKind::Binary);
    assert!(message.contains("not UTF-8 text"), "{message}");
    assert_eq!(
        fx.error(read("/shared/latin1.txt", None, None)).0,
        FileErrorKind::Binary
    );
    let (kind, message) = fx.error(read("/shared", None, None));
    assert_eq!(kind, FileErrorKind::NotAFile);
    assert!(message.contains("use file_list"), "{message}");
    let (kind, message) = fx.error(read("/tmp/nope", None, None));
    assert_eq!(kind, FileErrorKind::NotFound);
    assert_eq!(message, "/tmp/nope does not exist");
}

#[test]
fn read_caps_huge_files_on_a_character_boundary() {
    let fx = Fixture::new();
    // 'é' is two bytes; make the cap fall inside one.
    let mut big = "x".repeat(MAX_READ_BYTES as usize - 1);
    big.push_str(&"é".repeat(10));
    fx.file("tmp/big.txt", big.as_bytes());
    match fx.run(read("/tmp/big.txt", None, None)) {
        FileResponse::Text {
            text, truncated, ..
        } => {
            assert!(truncated);
            assert_eq!(text.len(), MAX_READ_BYTES as usize - 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_sorts_and_does_not_follow_links() {
    let fx = Fixture::new();
    fx.file("shared/b.txt", b"12345");
    fx.file("shared/a/inner.txt", b"x");
    std::os::unix::fs::symlink(fx.host("vault"), fx.host("shared/link")).unwrap();
    let FileResponse::Entries { entries } = fx.run(FileRequest::List {
        path: "/shared".into(),
    }) else {
        panic!("expected entries");
    };
    let summary: Vec<_> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind, e.size))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", EntryKind::Directory, 0),
            ("b.txt", EntryKind::File, 5),
            ("link", EntryKind::Symlink, 0)
        ]
    );
    let (kind, _) = fx.error(FileRequest::List {
        path: "/shared/b.txt".into(),
    });
    assert_eq!(kind, FileErrorKind::NotADirectory);
}

fn search(path: &str, pattern: &str, glob: Option<&str>, max_results: u32) -> FileRequest {
    FileRequest::Search {
        path: path.into(),
        pattern: pattern.into(),
        glob: glob.map(Into::into),
        max_results,
    }
}

#[test]
fn search_recurses_filters_caps_and_skips_binary() {
    let fx = Fixture::new();
    fx.file("shared/src/main.rs", b"fn main() {\n    helper();\n}\n");
    fx.file("shared/src/lib.rs", b"pub fn helper() {}\n");
    fx.file("shared/notes.md", b"fn in prose\n");
    fx.file("shared/blob.bin", b"fn\0binary");
    fx.file("shared/.git/config", b"fn hidden\n");
    let FileResponse::Matches { matches, truncated } =
        fx.run(search("/shared", r"fn \w+", Some("*.rs"), 10))
    else {
        panic!("expected matches");
    };
    assert!(!truncated);
    let found: Vec<_> = matches.iter().map(|m| (m.path.as_str(), m.line)).collect();
    assert_eq!(
        found,
        [("/shared/src/lib.rs", 1), ("/shared/src/main.rs", 1)]
    );

    let FileResponse::Matches { matches, truncated } = fx.run(search("/shared", "fn", None, 2))
    else {
        panic!("expected matches");
    };
    assert!(truncated);
    assert_eq!(matches.len(), 2);
    assert!(
        matches
            .iter()
            .all(|m| !m.path.contains(".git") && !m.path.contains("blob"))
    );

    let (kind, message) = fx.error(search("/shared", "fn (", None, 5));
    assert_eq!(kind, FileErrorKind::InvalidInput);
    assert!(message.contains("invalid search pattern"), "{message}");
    assert_eq!(
        fx.error(search("/shared", "x", Some("[z-a]"), 5)).0,
        FileErrorKind::InvalidInput
    );
}

#[test]
fn write_creates_parents_and_refuses_directories() {
    let fx = Fixture::new();
    let response = fx.run(FileRequest::Write {
        path: "/tmp/deep/er/new.txt".into(),
        content: "héllo".into(),
    });
    assert_eq!(
        response,
        FileResponse::Written {
            path: "/tmp/deep/er/new.txt".into(),
            bytes: 6
        }
    );
    assert_eq!(
        fs::read_to_string(fx.host("tmp/deep/er/new.txt")).unwrap(),
        "héllo"
    );
    for path in ["/tmp", "/tmp/deep"] {
        let (kind, _) = fx.error(FileRequest::Write {
            path: path.into(),
            content: "x".into(),
        });
        assert_eq!(kind, FileErrorKind::NotAFile, "{path}");
    }
}

fn edit(path: &str, old: &str, new: &str) -> FileRequest {
    FileRequest::Edit {
        path: path.into(),
        old_text: old.into(),
        new_text: new.into(),
    }
}

#[test]
fn edit_replaces_exactly_one_occurrence() {
    let fx = Fixture::new();
    fx.file("shared/c.rs", b"let a = 1;\nlet b = 1;\n");
    let (kind, message) = fx.error(edit("/shared/c.rs", "= 1", "= 3"));
    assert_eq!(kind, FileErrorKind::AmbiguousMatch);
    assert!(message.contains("occurs 2 times"), "{message}");
    assert_eq!(
        fx.run(edit("/shared/c.rs", "a = 1", "a = 2")),
        FileResponse::Edited {
            path: "/shared/c.rs".into()
        }
    );
    assert_eq!(
        fs::read_to_string(fx.host("shared/c.rs")).unwrap(),
        "let a = 2;\nlet b = 1;\n"
    );
    let (kind, message) = fx.error(edit("/shared/c.rs", "let z", "x"));
    assert_eq!(kind, FileErrorKind::NoMatch);
    assert!(message.contains("not found"), "{message}");
    assert_eq!(
        fx.error(edit("/shared/c.rs", "", "x")).0,
        FileErrorKind::InvalidInput
    );
    // Nothing changed by the failed edits.
    assert_eq!(
        fs::read_to_string(fx.host("shared/c.rs")).unwrap(),
        "let a = 2;\nlet b = 1;\n"
    );
}

#[test]
fn delete_files_directories_links_but_not_mounts() {
    let fx = Fixture::new();
    fx.file("tmp/f.txt", b"x");
    fx.file("tmp/d/e/f.txt", b"x");
    fx.file("vault/key", b"secret");
    std::os::unix::fs::symlink(fx.host("vault/key"), fx.host("tmp/link")).unwrap();
    for (path, kind) in [
        ("/tmp/f.txt", EntryKind::File),
        ("/tmp/d", EntryKind::Directory),
        ("/tmp/link", EntryKind::Symlink),
    ] {
        assert_eq!(
            fx.run(FileRequest::Delete { path: path.into() }),
            FileResponse::Deleted {
                path: path.into(),
                kind
            }
        );
    }
    // Deleting the link never touched its target.
    assert_eq!(fs::read(fx.host("vault/key")).unwrap(), b"secret");
    let (kind, message) = fx.error(FileRequest::Delete {
        path: "/tmp/".into(),
    });
    assert_eq!(kind, FileErrorKind::PermissionDenied);
    assert!(message.contains("workspace mount"), "{message}");
    assert_eq!(
        fx.error(FileRequest::Delete {
            path: "/tmp/gone".into()
        })
        .0,
        FileErrorKind::NotFound
    );
}

#[test]
fn vault_steps_round_trip_bytes() {
    let fx = Fixture::new();
    let secret = b"\x00\x01binary\xffkey";
    fx.file("vault/key.bin", secret);
    let FileResponse::Bytes {
        content_base64,
        bytes,
    } = fx.run(FileRequest::VaultRead {
        path: "/vault/key.bin".into(),
    })
    else {
        panic!("expected bytes");
    };
    assert_eq!(bytes, secret.len() as u64);
    fx.run(FileRequest::VaultWrite {
        path: "/shared/copy.bin".into(),
        content_base64,
    });
    assert_eq!(fs::read(fx.host("shared/copy.bin")).unwrap(), secret);
    let (kind, _) = fx.error(FileRequest::VaultWrite {
        path: "/shared/x".into(),
        content_base64: "not base64!".into(),
    });
    assert_eq!(kind, FileErrorKind::InvalidInput);
}

#[test]
fn escaping_paths_never_reach_the_filesystem() {
    let fx = Fixture::new();
    for path in ["/shared/../../etc/passwd", "/etc/passwd", "../x"] {
        let (kind, _) = fx.error(read(path, None, None));
        assert!(
            matches!(
                kind,
                FileErrorKind::PermissionDenied | FileErrorKind::InvalidInput
            ),
            "{path}: {kind:?}"
        );
    }
}
