//! Escape attempts against the WASM runner that must fail INSIDE the
//! sandbox: every test here skips the host-side path check
//! (`run_unchecked`, `run_module_unchecked`), so what refuses is the guest
//! or wasmtime-wasi with only the profile's mounts preopened.
//!
//! Two kinds of attacker:
//! - the real guest fed crafted requests (`run_unchecked`): proves the
//!   shipped program plus WASI hold without the host check;
//! - a raw WASI probe (`probe`, a WAT module) that calls `path_open`,
//!   `path_link` and `path_symlink` with any path it likes: proves WASI
//!   itself refuses, whatever a (compromised) guest asks for. The real
//!   guest never hands WASI a `..` (its `VirtualPath` resolves them
//!   lexically first), so only the probe can test `..` at the WASI level.
#![cfg(feature = "wasm-isolation")]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sandbox::wasm::WasmWasiToolRunner;
use sandbox::{CapabilityProfile, FileRunner, Workspace};
use types::protocol::file_ops::{FileErrorKind, FileRequest, FileResponse};

use CapabilityProfile::{FileReadOnly, FileReadWrite, VaultReadStep, VaultWriteStep, Web};

/// WASI preview 1 errno values the probe reports.
const ERRNO_SUCCESS: u8 = 0;
const ERRNO_BADF: u8 = 8;

/// The first preopens, in the order the runner adds a profile's mounts:
/// `/shared` then `/tmp` (then `/vault` for `FileReadOnly`).
const SHARED_FD: u32 = 3;
const TMP_FD: u32 = 4;

struct Fixture {
    dir: tempfile::TempDir,
    runner: Arc<WasmWasiToolRunner>,
}

impl Fixture {
    /// A workspace at `<tmp>/alice`, a sibling user's files, and files
    /// outside both.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(&dir.path().join("alice")).unwrap();
        fs::create_dir_all(dir.path().join("bob/shared")).unwrap();
        fs::write(dir.path().join("bob/shared/diary.txt"), "bob's secrets").unwrap();
        fs::write(dir.path().join("outside.txt"), "host file").unwrap();
        fs::create_dir_all(dir.path().join("outside-dir")).unwrap();
        fs::write(dir.path().join("outside-dir/secret.txt"), "OUTSIDE").unwrap();
        fs::write(dir.path().join("alice/vault/key"), "vault secret").unwrap();
        fs::write(dir.path().join("alice/shared/notes.md"), "notes").unwrap();
        Self {
            runner: Arc::new(WasmWasiToolRunner::new(workspace).unwrap()),
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
        self.runner.run_unchecked(profile, &request)
    }

    /// Asserts the sandbox refused `request` and returns the error.
    fn refused(&self, profile: CapabilityProfile, request: FileRequest) -> (FileErrorKind, String) {
        match self.run(profile, request.clone()) {
            FileResponse::Error { kind, message } => (kind, message),
            other => panic!("{request:?} under {profile} escaped the sandbox: {other:?}"),
        }
    }

    /// Runs the raw WASI probe and returns one errno per attempt.
    fn probe(&self, profile: CapabilityProfile, attempts: &[Attempt]) -> Vec<u8> {
        let output = self
            .runner
            .run_module_unchecked(&probe_module(attempts), profile, b"")
            .unwrap();
        assert_eq!(output.len(), attempts.len(), "one errno per attempt");
        output
    }

    fn assert_untouched(&self) {
        assert_eq!(
            fs::read_to_string(self.host("outside.txt")).unwrap(),
            "host file"
        );
        assert_eq!(
            fs::read_to_string(self.host("alice/vault/key")).unwrap(),
            "vault secret"
        );
        assert_eq!(
            fs::read_to_string(self.host("alice/shared/notes.md")).unwrap(),
            "notes"
        );
        for planted in [
            "planted.txt",
            "alice/planted.txt",
            "bob/shared/planted.txt",
            "outside-dir/planted.txt",
            "alice/vault/planted.txt",
        ] {
            assert!(!self.host(planted).exists(), "{planted} was created");
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

/// One raw WASI call the probe makes.
#[derive(Debug, Clone)]
enum Attempt {
    /// `path_open` under a directory fd, following symlinks; with `create`,
    /// for writing with `O_CREAT`.
    Open { fd: u32, path: String, create: bool },
    /// `path_open` without following a final symlink.
    OpenNoFollow { fd: u32, path: String },
    /// `path_link` (a hard link).
    Link {
        old_fd: u32,
        old: String,
        new_fd: u32,
        new: String,
    },
    /// `path_symlink`.
    Symlink {
        target: String,
        fd: u32,
        path: String,
    },
}

fn open(fd: u32, path: &str) -> Attempt {
    Attempt::Open {
        fd,
        path: path.into(),
        create: false,
    }
}

fn create(fd: u32, path: &str) -> Attempt {
    Attempt::Open {
        fd,
        path: path.into(),
        create: true,
    }
}

/// A WAT string literal for `text`, every byte escaped.
fn wat_string(text: &str) -> String {
    text.bytes().map(|b| format!("\\{b:02x}")).collect()
}

/// A module that makes each attempt in turn and writes the errno of each
/// (one byte) to stdout. Strings live from offset 1024; results from 64.
fn probe_module(attempts: &[Attempt]) -> Vec<u8> {
    const OPEN_FD: u32 = 8; // path_open's result
    const NWRITTEN: u32 = 16;
    const IOVEC: u32 = 24;
    const RESULTS: u32 = 64;
    let mut data = String::new();
    let mut body = String::new();
    let mut offset = 1024u32;
    let mut string = |text: &str| {
        data.push_str(&format!(
            "(data (i32.const {offset}) \"{}\")\n",
            wat_string(text)
        ));
        let at = (offset, text.len());
        offset += text.len() as u32 + 1;
        at
    };
    for (i, attempt) in attempts.iter().enumerate() {
        let call = match attempt {
            Attempt::Open { fd, path, create } => {
                let (ptr, len) = string(path);
                // rights: FD_READ (2), plus FD_WRITE (64) to create;
                // oflags: O_CREAT (1); lookup flags: SYMLINK_FOLLOW (1).
                let (oflags, rights) = if *create { (1, 66) } else { (0, 2) };
                format!(
                    "(call $path_open (i32.const {fd}) (i32.const 1) (i32.const {ptr}) \
                     (i32.const {len}) (i32.const {oflags}) (i64.const {rights}) \
                     (i64.const {rights}) (i32.const 0) (i32.const {OPEN_FD}))"
                )
            }
            Attempt::OpenNoFollow { fd, path } => {
                let (ptr, len) = string(path);
                format!(
                    "(call $path_open (i32.const {fd}) (i32.const 0) (i32.const {ptr}) \
                     (i32.const {len}) (i32.const 0) (i64.const 2) (i64.const 2) \
                     (i32.const 0) (i32.const {OPEN_FD}))"
                )
            }
            Attempt::Link {
                old_fd,
                old,
                new_fd,
                new,
            } => {
                let (old_ptr, old_len) = string(old);
                let (new_ptr, new_len) = string(new);
                format!(
                    "(call $path_link (i32.const {old_fd}) (i32.const 0) (i32.const {old_ptr}) \
                     (i32.const {old_len}) (i32.const {new_fd}) (i32.const {new_ptr}) \
                     (i32.const {new_len}))"
                )
            }
            Attempt::Symlink { target, fd, path } => {
                let (target_ptr, target_len) = string(target);
                let (ptr, len) = string(path);
                format!(
                    "(call $path_symlink (i32.const {target_ptr}) (i32.const {target_len}) \
                     (i32.const {fd}) (i32.const {ptr}) (i32.const {len}))"
                )
            }
        };
        body.push_str(&format!(
            "(i32.store8 (i32.const {}) {call})\n",
            RESULTS + i as u32
        ));
    }
    let count = attempts.len();
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link"
    (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  {data}
  (func (export "_start")
    {body}
    (i32.store (i32.const {IOVEC}) (i32.const {RESULTS}))
    (i32.store (i32.const {iovec_len}) (i32.const {count}))
    (drop (call $fd_write (i32.const 1) (i32.const {IOVEC}) (i32.const 1)
      (i32.const {NWRITTEN})))))"#,
        iovec_len = IOVEC + 4,
    );
    wat::parse_str(wat).unwrap()
}

/// The probe itself works: allowed opens, a link and a symlink inside a
/// writable mount succeed. Without this, the refusals below could be
/// probe bugs.
#[test]
fn the_probe_can_do_what_the_profile_allows() {
    let fx = Fixture::new();
    let errnos = fx.probe(
        FileReadWrite,
        &[
            open(SHARED_FD, "notes.md"),
            create(TMP_FD, "made-by-probe.txt"),
            Attempt::Link {
                old_fd: SHARED_FD,
                old: "notes.md".into(),
                new_fd: SHARED_FD,
                new: "notes-hard.md".into(),
            },
            Attempt::Symlink {
                target: "notes.md".into(),
                fd: SHARED_FD,
                path: "notes-soft.md".into(),
            },
            open(SHARED_FD, "notes-soft.md"),
        ],
    );
    assert_eq!(errnos, [ERRNO_SUCCESS; 5]);
    assert!(fx.host("alice/tmp/made-by-probe.txt").exists());
    assert!(fx.host("alice/shared/notes-hard.md").exists());
}

/// `..` at the WASI level: `path_open("../…")` under a preopen is refused
/// however the chain is spelled, for reading and for creating.
#[test]
fn dot_dot_chains_are_refused_by_wasi() {
    let fx = Fixture::new();
    let attempts = [
        open(SHARED_FD, ".."),
        open(SHARED_FD, "../vault/key"),
        open(SHARED_FD, "../../outside.txt"),
        open(SHARED_FD, "../../bob/shared/diary.txt"),
        open(SHARED_FD, "a/../../vault/key"),
        open(SHARED_FD, "./../tmp/../vault/key"),
        open(TMP_FD, "../../../../../../../../etc/passwd"),
        create(SHARED_FD, "../planted.txt"),
        create(SHARED_FD, "../../planted.txt"),
    ];
    let errnos = fx.probe(FileReadWrite, &attempts);
    for (attempt, errno) in attempts.iter().zip(&errnos) {
        assert_ne!(*errno, ERRNO_SUCCESS, "{attempt:?} escaped");
    }
    fx.assert_untouched();
}

/// `..` in a request to the real guest: its own lexical check refuses
/// before any WASI call (the request never reaches `path_open` with a
/// `..`), and that check runs inside the sandbox too.
#[test]
fn dot_dot_chains_in_requests_are_refused_by_the_guest() {
    let fx = Fixture::new();
    for path in [
        "/shared/../../bob/shared/diary.txt",
        "/shared/../vault/key",
        "/tmp/a/../../../outside.txt",
        "../../outside.txt",
    ] {
        let (kind, message) = fx.refused(FileReadWrite, read(path));
        assert_eq!(kind, FileErrorKind::PermissionDenied, "{path}: {message}");
        assert!(message.contains("climbs above"), "{path}: {message}");
    }
    let (_, message) = fx.refused(FileReadWrite, write("/shared/../../planted.txt"));
    assert!(message.contains("climbs above"), "{message}");
    fx.assert_untouched();
}

/// Absolute host paths: WASI refuses them under any preopen; the guest
/// refuses them as not being workspace paths, and a host path that starts
/// with `/tmp` stays inside the `/tmp` mount.
#[test]
fn absolute_host_paths_are_unreachable() {
    let fx = Fixture::new();
    let outside = fx.host("outside.txt").display().to_string();
    let attempts = [
        open(SHARED_FD, "/etc/passwd"),
        open(SHARED_FD, &outside),
        open(TMP_FD, "/proc/self/environ"),
        create(TMP_FD, &fx.host("planted.txt").display().to_string()),
    ];
    let errnos = fx.probe(FileReadWrite, &attempts);
    for (attempt, errno) in attempts.iter().zip(&errnos) {
        assert_ne!(*errno, ERRNO_SUCCESS, "{attempt:?} escaped");
    }

    for path in ["/etc/passwd", "/proc/self/environ", "/home"] {
        let (kind, message) = fx.refused(FileReadOnly, read(path));
        assert_eq!(kind, FileErrorKind::InvalidInput, "{path}: {message}");
    }
    // `/tmp/…/outside.txt` is a path inside the workspace's own /tmp.
    if outside.starts_with("/tmp/") {
        let (kind, _) = fx.refused(FileReadOnly, read(&outside));
        assert_eq!(kind, FileErrorKind::NotFound);
    }
    fx.assert_untouched();
}

/// Symlinks created before the call that lead out of their preopen: the
/// real guest follows them into a WASI refusal, for reads and writes, and
/// even into the vault when the vault is mounted too (a link may not cross
/// from one preopen to another — stricter than the host check, which
/// allows a read tool to read the vault through a link).
#[test]
fn symlinks_out_of_a_root_are_refused() {
    let fx = Fixture::new();
    fx.link(&fx.host("outside.txt"), "alice/shared/out");
    fx.link(Path::new("../../outside.txt"), "alice/shared/relative-out");
    fx.link(&fx.host("bob/shared"), "alice/shared/bob");
    fx.link(Path::new("/etc"), "alice/tmp/etc");
    fx.link(&fx.host("alice/vault/key"), "alice/shared/key-link");
    fx.link(&fx.host("alice/vault"), "alice/tmp/vault-dir");
    for (profile, request) in [
        (FileReadOnly, read("/shared/out")),
        (FileReadOnly, read("/shared/relative-out")),
        (FileReadOnly, read("/shared/bob/diary.txt")),
        (FileReadOnly, read("/tmp/etc/passwd")),
        (FileReadOnly, read("/shared/key-link")),
        (FileReadWrite, read("/shared/key-link")),
        (
            FileReadOnly,
            FileRequest::List {
                path: "/shared/bob".into(),
            },
        ),
        (FileReadWrite, write("/shared/bob/planted.txt")),
        (FileReadWrite, write("/tmp/vault-dir/planted.txt")),
        (FileReadWrite, write("/shared/out")),
    ] {
        let (_, message) = fx.refused(profile, request.clone());
        for secret in ["host file", "bob's secrets", "vault secret", "root:"] {
            assert!(!message.contains(secret), "{request:?}: {message}");
        }
    }
    let attempts = [
        open(SHARED_FD, "out"),
        open(SHARED_FD, "relative-out"),
        open(SHARED_FD, "bob/diary.txt"),
        Attempt::OpenNoFollow {
            fd: SHARED_FD,
            path: "out".into(),
        },
        create(SHARED_FD, "bob/planted.txt"),
    ];
    let errnos = fx.probe(FileReadWrite, &attempts);
    for (attempt, errno) in attempts.iter().zip(&errnos) {
        assert_ne!(*errno, ERRNO_SUCCESS, "{attempt:?} escaped");
    }
    fx.assert_untouched();
}

/// A symlink the guest creates itself cannot lead out either: creating it
/// may succeed (it is only a name), following it is refused.
#[test]
fn symlinks_made_inside_the_sandbox_cannot_be_followed_out() {
    let fx = Fixture::new();
    let errnos = fx.probe(
        FileReadWrite,
        &[
            Attempt::Symlink {
                target: "../../outside.txt".into(),
                fd: SHARED_FD,
                path: "evil".into(),
            },
            open(SHARED_FD, "evil"),
            Attempt::Symlink {
                target: fx.host("outside.txt").display().to_string(),
                fd: SHARED_FD,
                path: "evil-absolute".into(),
            },
            open(SHARED_FD, "evil-absolute"),
        ],
    );
    assert_ne!(errnos[1], ERRNO_SUCCESS, "followed a relative link out");
    assert_ne!(errnos[3], ERRNO_SUCCESS, "followed an absolute link out");
    fx.assert_untouched();
}

/// The check-then-use race of the host runner: a thread swaps a directory
/// in `/shared` for a symlink to a directory outside, and back, in a tight
/// loop while calls run through it. Every read returns the inside file or
/// an error, never the outside one; no write lands outside.
#[test]
fn symlinks_swapped_in_during_calls_never_lead_out() {
    let fx = Fixture::new();
    let swap = fx.host("alice/shared/swap");
    let parked = fx.host("alice/shared/swap-parked");
    fs::create_dir(&swap).unwrap();
    fs::write(swap.join("secret.txt"), "inside").unwrap();
    let outside_dir = fx.host("outside-dir");
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (swap, parked, outside_dir) = (swap.clone(), parked.clone(), outside_dir.clone());
        std::thread::spawn(move || {
            // A write call may recreate `swap` as an empty directory (its
            // parent is created) in the moment it is missing: clear it away.
            while !stop.load(Ordering::Relaxed) {
                fs::rename(&swap, &parked).unwrap();
                while symlink(&outside_dir, &swap).is_err() {
                    clear(&swap);
                }
                clear(&swap);
                while fs::rename(&parked, &swap).is_err() {
                    clear(&swap);
                }
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut inside, mut refused) = (0, 0);
    for i in 0..300 {
        let response = if i % 3 == 2 {
            fx.run(FileReadWrite, write("/shared/swap/planted.txt"))
        } else {
            fx.run(FileReadOnly, read("/shared/swap/secret.txt"))
        };
        match response {
            FileResponse::Text { text, .. } => {
                assert_eq!(text, "inside", "call {i} read through the swapped link");
                inside += 1;
            }
            FileResponse::Written { .. } => inside += 1,
            FileResponse::Error { message, .. } => {
                assert!(!message.contains("OUTSIDE"), "{message}");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !outside_dir.join("planted.txt").exists(),
            "call {i} wrote outside"
        );
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!(
        "{} swaps; {inside} calls saw the directory, {refused} were refused",
        swaps.load(Ordering::Relaxed)
    );
    assert!(swaps.load(Ordering::Relaxed) > 0, "the swapper never ran");

    // Both states, deterministically: the link is refused, the directory
    // works.
    fs::rename(&swap, &parked).unwrap();
    symlink(&outside_dir, &swap).unwrap();
    fx.refused(FileReadOnly, read("/shared/swap/secret.txt"));
    fs::remove_file(&swap).unwrap();
    fs::rename(&parked, &swap).unwrap();
    assert!(matches!(
        fx.run(FileReadOnly, read("/shared/swap/secret.txt")),
        FileResponse::Text { text, .. } if text == "inside"
    ));
}

/// Removes whatever is at `path` (a symlink itself, never its target).
fn clear(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => drop(fs::remove_dir_all(path)),
        Ok(_) => drop(fs::remove_file(path)),
        Err(_) => {}
    }
}

/// Hard links. A hard link is the file itself, not a pointer to a path, so
/// neither WASI nor the host check can tell one that already sits in a
/// mount from any other file: this test pins that such a link IS readable.
/// The guarantee is about making them: the guest has no link operation,
/// and raw `path_link` cannot name anything outside a writable preopen, so
/// nothing in the sandbox can create a link to a file outside. Keeping
/// foreign hard links out of the workspace (e.g. one filesystem per user
/// workspace) is the deployment's job.
#[test]
fn hard_links_cannot_be_made_to_outside_and_existing_ones_are_the_file() {
    let fx = Fixture::new();
    fs::hard_link(fx.host("outside.txt"), fx.host("alice/shared/hard")).unwrap();
    // The documented limitation: a pre-existing hard link to a file outside
    // the workspace is readable, through the checked path as well.
    assert!(matches!(
        fx.runner.run(FileReadOnly, &read("/shared/hard")),
        FileResponse::Text { text, .. } if text == "host file"
    ));

    let attempts = [
        Attempt::Link {
            old_fd: SHARED_FD,
            old: "../../outside.txt".into(),
            new_fd: SHARED_FD,
            new: "stolen".into(),
        },
        Attempt::Link {
            old_fd: SHARED_FD,
            old: fx.host("outside.txt").display().to_string(),
            new_fd: SHARED_FD,
            new: "stolen-absolute".into(),
        },
        Attempt::Link {
            old_fd: SHARED_FD,
            old: "notes.md".into(),
            new_fd: SHARED_FD,
            new: "../../planted.txt".into(),
        },
        // Through a symlink that leads out.
        Attempt::Symlink {
            target: "../../outside-dir".into(),
            fd: SHARED_FD,
            path: "outdir".into(),
        },
        Attempt::Link {
            old_fd: SHARED_FD,
            old: "outdir/secret.txt".into(),
            new_fd: SHARED_FD,
            new: "stolen-via-link".into(),
        },
    ];
    let errnos = fx.probe(FileReadWrite, &attempts);
    for (i, (attempt, errno)) in attempts.iter().zip(&errnos).enumerate() {
        if !matches!(attempt, Attempt::Symlink { .. }) {
            assert_ne!(*errno, ERRNO_SUCCESS, "attempt {i} {attempt:?} made a link");
        }
    }
    for name in ["stolen", "stolen-absolute", "stolen-via-link"] {
        assert!(!fx.host("alice/shared").join(name).exists(), "{name}");
    }
    fx.assert_untouched();
}

/// Read-only preopens: writes, edits, deletes and creations are refused by
/// WASI, and nothing changes.
#[test]
fn read_only_preopens_refuse_writes() {
    let fx = Fixture::new();
    for (profile, request) in [
        (FileReadOnly, write("/shared/notes.md")),
        (FileReadOnly, write("/tmp/planted.txt")),
        (
            FileReadOnly,
            FileRequest::Edit {
                path: "/shared/notes.md".into(),
                old_text: "notes".into(),
                new_text: "pwned".into(),
            },
        ),
        (
            FileReadOnly,
            FileRequest::Delete {
                path: "/shared/notes.md".into(),
            },
        ),
        (
            FileReadOnly,
            FileRequest::Delete {
                path: "/vault/key".into(),
            },
        ),
        (VaultReadStep, write("/vault/planted.txt")),
        (
            VaultReadStep,
            FileRequest::VaultWrite {
                path: "/vault/key".into(),
                content_base64: "cHduZWQ=".into(),
            },
        ),
    ] {
        let (kind, message) = fx.refused(profile, request.clone());
        assert_eq!(
            kind,
            FileErrorKind::PermissionDenied,
            "{request:?}: {message}"
        );
    }
    let attempts = [
        create(SHARED_FD, "planted.txt"),
        create(SHARED_FD, "notes.md"),
        create(TMP_FD, "planted.txt"),
    ];
    let errnos = fx.probe(FileReadOnly, &attempts);
    for (attempt, errno) in attempts.iter().zip(&errnos) {
        assert_ne!(*errno, ERRNO_SUCCESS, "{attempt:?} wrote");
    }
    assert_eq!(fx.probe(FileReadOnly, &[open(SHARED_FD, "notes.md")]), [0]);
    assert!(!fx.host("alice/shared/planted.txt").exists());
    assert!(!fx.host("alice/tmp/planted.txt").exists());
    fx.assert_untouched();
}

/// Read-write calls (and the vault copy's write step) have no vault at all:
/// it is not preopened, so the guest cannot name it and a raw probe has no
/// descriptor for it.
#[test]
fn read_write_calls_have_no_vault() {
    let fx = Fixture::new();
    for profile in [FileReadWrite, VaultWriteStep] {
        for request in [
            read("/vault/key"),
            FileRequest::List {
                path: "/vault".into(),
            },
            FileRequest::VaultRead {
                path: "/vault/key".into(),
            },
            write("/vault/planted.txt"),
            FileRequest::Delete {
                path: "/vault/key".into(),
            },
        ] {
            let (kind, message) = fx.refused(profile, request.clone());
            assert_eq!(kind, FileErrorKind::PermissionDenied, "{request:?}");
            assert!(message.contains("not mounted"), "{request:?}: {message}");
        }
    }
    // /shared and /tmp are fds 3 and 4; there is no fifth descriptor.
    let errnos = fx.probe(
        FileReadWrite,
        &[
            open(5, "key"),
            open(TMP_FD, "../vault/key"),
            open(SHARED_FD, "../vault/key"),
        ],
    );
    assert_eq!(errnos[0], ERRNO_BADF);
    assert_ne!(errnos[1], ERRNO_SUCCESS);
    assert_ne!(errnos[2], ERRNO_SUCCESS);
    fx.assert_untouched();
}

/// The web profile has no filesystem: the runner refuses before building a
/// sandbox, and a raw module under it has no preopen at all.
#[test]
fn the_web_profile_has_no_filesystem() {
    let fx = Fixture::new();
    let (kind, message) = fx.refused(Web, read("/tmp/x"));
    assert_eq!(kind, FileErrorKind::PermissionDenied);
    assert!(message.contains("no filesystem"), "{message}");
    assert_eq!(fx.probe(Web, &[open(SHARED_FD, "notes.md")]), [ERRNO_BADF]);
}
