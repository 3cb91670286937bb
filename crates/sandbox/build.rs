//! Builds the WASM guest (`crates/wasm-guest`, its `wasm-guest` binary) for
//! `wasm32-wasip1` when the `wasm-isolation` feature is on, and leaves it at
//! `$OUT_DIR/wasm-guest.wasm` for `src/wasm.rs` to embed with
//! `include_bytes!`.
//!
//! The guest is built by a nested `cargo build` with its own target
//! directory under `OUT_DIR`: it never waits for the outer build's lock on
//! the main target directory, and flags meant for the host build (rustflags,
//! the clippy wrapper) are removed from its environment.

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const GUEST_TARGET: &str = "wasm32-wasip1";
const GUEST_PACKAGE: &str = "wasm-guest";
const INSTALL_HINT: &str = "rustup target add wasm32-wasip1";

/// Environment variables the outer cargo (or `cargo clippy`, coverage
/// tools, CI) sets for the host build that must not leak into the guest's:
/// host rustflags such as `-C target-cpu=native` break a wasm build, and a
/// workspace wrapper would run clippy on the guest.
const HOST_ONLY_ENV: [&str; 7] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
];

/// The guest's release profile: small code compiles and instantiates
/// faster; it does little computing. Panics abort (the only choice on
/// wasm32-wasip1), which the host sees as a trap.
const GUEST_PROFILE_ENV: [(&str, &str); 5] = [
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s"),
    ("CARGO_PROFILE_RELEASE_LTO", "fat"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
    ("CARGO_PROFILE_RELEASE_STRIP", "debuginfo"),
];

fn main() -> ExitCode {
    println!("cargo::rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_WASM_ISOLATION").is_none() {
        return ExitCode::SUCCESS;
    }
    match build_guest() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build_guest() -> Result<(), String> {
    let manifest_dir = PathBuf::from(required_env("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(required_env("OUT_DIR")?);
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or("the sandbox crate is not inside the workspace's crates/ directory")?;
    watch(workspace);
    check_target_installed()?;

    let target_dir = out_dir.join("guest-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["--package", GUEST_PACKAGE, "--bin", GUEST_PACKAGE])
        .args(["--target", GUEST_TARGET, "--release"])
        // Cargo's progress goes to stderr; keep stdout free for the
        // `cargo::` directives of this script.
        .stdout(Stdio::from(io::stderr()));
    for name in HOST_ONLY_ENV {
        command.env_remove(name);
    }
    command.env("CARGO_TARGET_DIR", &target_dir);
    for (name, value) in GUEST_PROFILE_ENV {
        command.env(name, value);
    }
    let status = command
        .status()
        .map_err(|e| format!("could not run cargo to build the WASM guest: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the WASM guest ({GUEST_PACKAGE} for {GUEST_TARGET}) failed ({status}); \
             see the cargo output above"
        ));
    }
    let built = target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join(format!("{GUEST_PACKAGE}.wasm"));
    let embedded = out_dir.join(format!("{GUEST_PACKAGE}.wasm"));
    fs::copy(&built, &embedded).map_err(|e| {
        format!(
            "could not copy the WASM guest from {} to {}: {e}",
            built.display(),
            embedded.display()
        )
    })?;
    Ok(())
}

/// Rebuild when the guest's code, the protocol types it speaks (the whole
/// `types` crate: it is compiled into the guest) or the locked dependency
/// versions change. The nested cargo is incremental, so an over-eager
/// rerun costs a second, not a rebuild.
fn watch(workspace: &Path) {
    for path in [
        "crates/wasm-guest/Cargo.toml",
        "crates/wasm-guest/src",
        "crates/types/Cargo.toml",
        "crates/types/src",
        "crates/types/src/protocol/file_ops.rs",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo::rerun-if-changed={}", workspace.join(path).display());
    }
}

/// Fails with the command that installs the target when its standard
/// library is missing, instead of a wall of "can't find crate for `std`".
fn check_target_installed() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .output()
        .map_err(|e| format!("could not run rustc to find the {GUEST_TARGET} target: {e}"))?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let has_std = output.status.success()
        && fs::read_dir(&libdir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        });
    if has_std {
        Ok(())
    } else {
        Err(format!(
            "the Rust target {GUEST_TARGET} is not installed, but the sandbox's WASM isolation \
             (the default `wasm-isolation` feature) compiles its file-tool guest for it. \
             Install it with:\n\n    {INSTALL_HINT}\n\n\
             or build without WASM isolation (`--no-default-features`, weaker host runner)."
        ))
    }
}

fn required_env(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}
