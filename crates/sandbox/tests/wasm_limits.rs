//! The WASM runner's limits, through its real execution path: a runaway
//! guest is stopped at its deadline, memory beyond the cap fails cleanly,
//! traps and malformed input become errors, and more concurrent calls than
//! the pool has slots wait instead of failing.
#![cfg(feature = "wasm-isolation")]

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbox::wasm::{
    MAX_CONCURRENT_CALLS, MEMORY_LIMIT_BYTES, WasmError, WasmRunnerConfig, WasmWasiToolRunner,
};
use sandbox::{CapabilityProfile, FileRunner, Workspace};
use types::protocol::file_ops::{FileErrorKind, FileRequest, FileResponse};

use CapabilityProfile::{FileReadOnly, FileReadWrite};

fn workspace(dir: &tempfile::TempDir) -> Workspace {
    let workspace = Workspace::open(&dir.path().join("alice")).unwrap();
    fs::write(dir.path().join("alice/shared/notes.md"), "notes\n").unwrap();
    workspace
}

fn runner_with_timeout(dir: &tempfile::TempDir, timeout: Duration) -> WasmWasiToolRunner {
    let config = WasmRunnerConfig {
        timeout,
        ..WasmRunnerConfig::default()
    };
    WasmWasiToolRunner::with_config(workspace(dir), &config).unwrap()
}

fn read_notes(runner: &WasmWasiToolRunner) -> FileResponse {
    runner.run(
        FileReadOnly,
        &FileRequest::Read {
            path: "/shared/notes.md".into(),
            start_line: None,
            max_lines: None,
        },
    )
}

fn module(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

#[test]
fn a_runaway_guest_is_stopped_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let limit = Duration::from_millis(300);
    let runner = runner_with_timeout(&dir, limit);
    let spin = module(r#"(module (func (export "_start") (loop $forever (br $forever))))"#);
    let start = Instant::now();
    let error = runner
        .run_module_unchecked(&spin, FileReadOnly, b"")
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(error, WasmError::TimedOut { limit });
    assert!(took >= limit, "stopped early, after {took:?}");
    assert!(
        took < limit + Duration::from_secs(3),
        "stopped late, after {took:?}"
    );
    let response = error.to_response();
    assert!(
        matches!(&response, FileResponse::Error { kind: FileErrorKind::Io, message }
            if message.contains("exceeded its time limit of 0.3 s")),
        "{response:?}"
    );
    // The runner is fine afterwards.
    assert!(matches!(read_notes(&runner), FileResponse::Text { .. }));
}

#[test]
fn the_default_deadline_is_ten_seconds() {
    assert_eq!(WasmRunnerConfig::default().timeout, Duration::from_secs(10));
}

#[test]
fn memory_beyond_the_cap_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner_with_timeout(&dir, Duration::from_secs(30));
    let mib = 1024 * 1024;
    // Larger than the cap: the guest cannot even buffer the request and
    // answers "too large" itself. Half the cap: the request fits, but not
    // twice (the buffer and the parsed content), so the guest's allocator
    // fails, it aborts, and the runner reports the refused growth.
    for size in [MEMORY_LIMIT_BYTES + mib, MEMORY_LIMIT_BYTES / 2 + mib] {
        let request = FileRequest::Write {
            path: "/shared/huge.txt".into(),
            content: "x".repeat(size),
        };
        match runner.run(FileReadWrite, &request) {
            FileResponse::Error {
                kind: FileErrorKind::TooLarge,
                message,
            } => assert!(message.contains("memory"), "{size}: {message}"),
            other => panic!("{size} bytes: {other:?}"),
        }
        assert!(!dir.path().join("alice/shared/huge.txt").exists());
    }
    // A module that grows its memory page by page until refused, then
    // traps.
    let hog = module(
        r#"(module (memory 1)
             (func (export "_start")
               (loop $grow
                 (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
               unreachable))"#,
    );
    let error = runner
        .run_module_unchecked(&hog, FileReadOnly, b"")
        .unwrap_err();
    assert_eq!(
        error,
        WasmError::OutOfMemory {
            limit_bytes: MEMORY_LIMIT_BYTES
        }
    );
    assert!(matches!(
        error.to_response(),
        FileResponse::Error {
            kind: FileErrorKind::TooLarge,
            ..
        }
    ));
    // Large but within the cap works.
    let request = FileRequest::Write {
        path: "/shared/big.txt".into(),
        content: "y".repeat(8 * mib),
    };
    assert!(matches!(
        runner.run(FileReadWrite, &request),
        FileResponse::Written { bytes, .. } if bytes == 8 * mib as u64
    ));
}

#[test]
fn a_trap_is_an_error_with_the_trap_text() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner_with_timeout(&dir, Duration::from_secs(10));
    let crash = module(r#"(module (func (export "_start") unreachable))"#);
    match runner.run_module_unchecked(&crash, FileReadOnly, b"") {
        Err(WasmError::Trap(text)) => assert!(text.contains("unreachable"), "{text}"),
        other => panic!("{other:?}"),
    }
    let exits = module(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $exit (i32.const 3))))"#,
    );
    match runner.run_module_unchecked(&exits, FileReadOnly, b"") {
        Err(WasmError::BadResponse(text)) => assert!(text.contains("code 3"), "{text}"),
        other => panic!("{other:?}"),
    }
    let silent = module(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    assert_eq!(
        runner.run_module_unchecked(&silent, FileReadOnly, b""),
        Ok(Vec::new())
    );
}

#[test]
fn the_guest_answers_malformed_input_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner_with_timeout(&dir, Duration::from_secs(10));
    for input in [
        &b""[..],
        b"not json",
        br#"{"op":"chmod","path":"/shared/x"}"#,
        br#"{"op":"read"}"#,
        b"\xff\xfe\x00garbage",
    ] {
        let output = runner.run_guest_unchecked(FileReadOnly, input).unwrap();
        match serde_json::from_slice::<FileResponse>(&output).unwrap() {
            FileResponse::Error {
                kind: FileErrorKind::InvalidInput,
                message,
            } => assert!(message.starts_with("invalid file request"), "{message}"),
            other => panic!("{input:?}: {other:?}"),
        }
    }
}

#[test]
fn more_concurrent_calls_than_pool_slots_wait_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(runner_with_timeout(&dir, Duration::from_secs(30)));
    let threads: Vec<_> = (0..MAX_CONCURRENT_CALLS * 2 + 3)
        .map(|_| {
            let runner = runner.clone();
            std::thread::spawn(move || (0..3).map(|_| read_notes(&runner)).collect::<Vec<_>>())
        })
        .collect();
    for thread in threads {
        for response in thread.join().unwrap() {
            assert!(
                matches!(&response, FileResponse::Text { text, .. } if text == "notes\n"),
                "{response:?}"
            );
        }
    }
}
