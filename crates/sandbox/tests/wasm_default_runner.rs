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
