//! The WASM guest: one file operation per run, inside wasmtime.
//!
//! Reads one `FileRequest` as JSON from stdin, runs it with
//! `wasm_guest::execute` and writes the `FileResponse` as JSON to stdout.
//! The host preopens exactly the mounts the invocation's capability profile
//! allows, at their workspace names (`/shared`, `/tmp`, `/vault`), so a
//! workspace path is already the path to open: WASI resolves it against the
//! preopens and refuses anything outside them (including symlinks that
//! lead out), whatever this program asks for.
//!
//! Built for `wasm32-wasip1` by `sandbox`'s build script. On any other
//! target it compiles (so `cargo build --workspace` works) but refuses to
//! run: there, `/tmp/x` would be the host's real `/tmp/x`.

use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use types::protocol::file_ops::{Access, FileErrorKind, FileRequest, FileResponse, Mount};
use wasm_guest::{OpError, PathMap, VirtualPath};

/// The environment variable through which the host announces the request's
/// size, so the input buffer is allocated once at its final size (a large
/// write must fit the sandbox's memory cap, and a doubling buffer would
/// waste up to half of it).
const REQUEST_BYTES_ENV: &str = "OXYDRA_REQUEST_BYTES";

/// Inside the sandbox the mounts are preopened at their workspace names:
/// the workspace path is the path to open.
struct Preopened;

impl PathMap for Preopened {
    fn open_path(&self, path: &VirtualPath, _access: Access) -> Result<PathBuf, OpError> {
        Ok(PathBuf::from(path.to_string()))
    }
}

fn main() -> ExitCode {
    if cfg!(not(target_os = "wasi")) {
        eprintln!(
            "wasm-guest runs only inside Oxydra's WASM sandbox (built for wasm32-wasip1 by \
             the sandbox crate); on the host its paths would be real host paths"
        );
        return ExitCode::from(2);
    }
    let response = match read_request() {
        Ok(request) => run(&request),
        Err(response) => response,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let written = serde_json::to_writer(&mut out, &response)
        .map_err(io::Error::from)
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // Nobody can read a message now; the host reports the missing
        // response.
        Err(_) => ExitCode::FAILURE,
    }
}

/// The request on stdin, or the error response that explains why there is
/// none.
fn read_request() -> Result<FileRequest, FileResponse> {
    let expected = std::env::var(REQUEST_BYTES_ENV)
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let mut input = Vec::new();
    input.try_reserve_exact(expected).map_err(|_| too_large())?;
    io::stdin().lock().read_to_end(&mut input).map_err(|e| {
        FileResponse::error(
            FileErrorKind::Io,
            format!("could not read the request: {e}"),
        )
    })?;
    serde_json::from_slice(&input).map_err(|e| {
        FileResponse::error(
            FileErrorKind::InvalidInput,
            format!("invalid file request: {e}"),
        )
    })
}

fn too_large() -> FileResponse {
    FileResponse::error(
        FileErrorKind::TooLarge,
        "the request is too large for the sandbox's memory",
    )
}

fn run(request: &FileRequest) -> FileResponse {
    let response = wasm_guest::execute(request, &Preopened);
    match &response {
        FileResponse::Error { kind, .. } if might_be_unmounted(*kind) => {
            explain_unmounted(request).unwrap_or(response)
        }
        _ => response,
    }
}

/// The failures an operation on a mount that is not preopened produces.
fn might_be_unmounted(kind: FileErrorKind) -> bool {
    match kind {
        FileErrorKind::Io | FileErrorKind::NotFound | FileErrorKind::PermissionDenied => true,
        FileErrorKind::NotAFile
        | FileErrorKind::NotADirectory
        | FileErrorKind::Binary
        | FileErrorKind::InvalidInput
        | FileErrorKind::NoMatch
        | FileErrorKind::AmbiguousMatch
        | FileErrorKind::TooLarge => false,
    }
}

/// A clear refusal when the request's mount is not preopened in this
/// sandbox (the profile does not include it): WASI reports that only as
/// "capabilities insufficient". Checked after the fact so that successful
/// operations pay nothing for it.
fn explain_unmounted(request: &FileRequest) -> Option<FileResponse> {
    let path = VirtualPath::parse(request.path()).ok()?;
    if mount_is_preopened(path.mount) {
        return None;
    }
    Some(FileResponse::error(
        FileErrorKind::PermissionDenied,
        format!(
            "{path}: {} is not available to this tool (it is not mounted in its sandbox)",
            path.mount
        ),
    ))
}

fn mount_is_preopened(mount: Mount) -> bool {
    std::fs::metadata(Path::new(&mount.to_string())).is_ok()
}
