//! `default_file_runner` is the WASM runner when the `wasm-isolation`
//! feature is on and the host runner without it; either runs file
//! operations.

use std::fs;

use sandbox::{CapabilityProfile, Workspace, default_file_runner};
use types::protocol::file_ops::{FileRequest, FileResponse};

#[test]
fn the_default_file_runner_follows_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::open(dir.path()).unwrap();
    fs::write(dir.path().join("shared/notes.md"), "notes").unwrap();
    let runner = default_file_runner(workspace).unwrap();
    let expected = if cfg!(feature = "wasm-isolation") {
        "WasmWasiToolRunner"
    } else {
        "HostFileRunner"
    };
    assert!(format!("{runner:?}").starts_with(expected), "{runner:?}");
    let response = runner.run(
        CapabilityProfile::FileReadOnly,
        &FileRequest::Read {
            path: "/shared/notes.md".into(),
            start_line: None,
            max_lines: None,
        },
    );
    assert!(
        matches!(&response, FileResponse::Text { text, .. } if text == "notes"),
        "{response:?}"
    );
}

/// The lazy runner builds the WASM sandbox on its first call and keeps it.
#[cfg(feature = "wasm-isolation")]
#[test]
fn the_lazy_runner_sets_up_on_first_use_and_runs_operations() {
    use sandbox::{FileRunner, LazyWasmRunner, WasmRunnerConfig};

    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::open(dir.path()).unwrap();
    fs::write(dir.path().join("shared/notes.md"), "lazy notes").unwrap();
    let runner = LazyWasmRunner::new(workspace, WasmRunnerConfig::default());
    assert!(
        format!("{runner:?}").contains("runner: OnceLock(<uninit>)"),
        "{runner:?}"
    );
    let read = FileRequest::Read {
        path: "/shared/notes.md".into(),
        start_line: None,
        max_lines: None,
    };
    for _ in 0..2 {
        let response = runner.run(CapabilityProfile::FileReadOnly, &read);
        assert!(
            matches!(&response, FileResponse::Text { text, .. } if text == "lazy notes"),
            "{response:?}"
        );
    }
    assert!(
        format!("{runner:?}").contains("WasmWasiToolRunner"),
        "{runner:?}"
    );
    // The sandbox still refuses what the profile does not allow.
    let outside = FileRequest::Read {
        path: "/vault/secret".into(),
        start_line: None,
        max_lines: None,
    };
    let refused = runner.run(CapabilityProfile::FileReadOnly, &outside);
    assert!(matches!(refused, FileResponse::Error { .. }), "{refused:?}");
}
