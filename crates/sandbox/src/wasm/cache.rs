//! Getting the compiled guest without paying for a compile in every
//! process: wasmtime's own on-disk cache of compiled modules.
//!
//! Compiling the guest costs ~0.1 s in a release build and ~15 s in a
//! debug build (Cranelift itself unoptimised), once per process. With the
//! cache, only the first process on a machine compiles; later ones load
//! the compiled code (a hash of the WASM bytes, the engine settings and
//! the wasmtime version names the entry, so a stale entry is never used).
//!
//! Trust: loading compiled code runs it, so the cache directory must be
//! writable by this user only. It is created with mode 0700, and a
//! directory this process cannot `chmod` (someone else's) or that is a
//! symlink is not used. wasmtime's safe `Module::new` does the loading; this
//! crate needs no `unsafe`.

use std::env;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::{Cache, CacheConfig, Engine, Module};

use super::WasmError;
use super::engine::timed;

/// Where compiled modules are cached between processes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ModuleCache {
    /// `$XDG_CACHE_HOME/oxydra/wasm`, else `$HOME/.cache/oxydra/wasm`; no
    /// cache when neither variable is set.
    #[default]
    UserDefault,
    /// This directory (absolute; created if missing).
    Dir(PathBuf),
    /// Compile in every process.
    Disabled,
}

impl ModuleCache {
    /// The directory to use, if any.
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            Self::UserDefault => user_cache_home().map(|home| home.join("oxydra").join("wasm")),
            Self::Dir(dir) => Some(dir.clone()),
            Self::Disabled => None,
        }
    }
}

fn user_cache_home() -> Option<PathBuf> {
    let absolute = |name: &str| {
        env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|home| home.join(".cache")))
}

/// Where the process's compiled guest came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestSource {
    /// Compiled from the embedded WASM bytes in this process (and stored in
    /// the cache, when there is one).
    Compiled,
    /// Loaded from the on-disk cache.
    Cache,
}

/// How the process got its compiled guest, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLoad {
    pub source: GuestSource,
    pub took: Duration,
    /// The cache directory in use, if any.
    pub cache_dir: Option<PathBuf>,
    /// Why the configured cache is not used, if it is not.
    pub cache_unavailable: Option<String>,
}

/// wasmtime's cache in `setting`'s directory, or why there is none. A cache
/// that cannot be used never fails the runner: the guest is compiled
/// instead.
pub(super) fn open(setting: &ModuleCache) -> (Option<Cache>, Option<String>) {
    let Some(dir) = setting.dir() else {
        return (None, None);
    };
    let opened = prepare_private_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|()| {
            let mut config = CacheConfig::new();
            config.with_directory(&dir);
            Cache::new(config).map_err(|e| format!("{}: {e:#}", dir.display()))
        });
    match opened {
        Ok(cache) => (Some(cache), None),
        Err(reason) => (None, Some(reason)),
    }
}

/// Creates `dir` and makes it private. `chmod` succeeds only for the
/// directory's owner, which proves nobody else controls its contents.
fn prepare_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the module cache directory must be an absolute path",
        ));
    }
    fs::create_dir_all(dir)?;
    if !fs::symlink_metadata(dir)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the module cache path is not a plain directory",
        ));
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Compiles `wasm` with `engine`, or loads it from the engine's cache.
pub(super) fn load_guest(
    engine: &Engine,
    wasm: &[u8],
    cache: Option<&Cache>,
) -> Result<(Module, GuestSource, Duration), WasmError> {
    let hits_before = cache.map_or(0, Cache::cache_hits);
    let (module, took) = timed(|| Module::new(engine, wasm));
    let module =
        module.map_err(|e| WasmError::Setup(format!("could not compile the guest: {e:#}")))?;
    let source = if cache.map_or(0, Cache::cache_hits) > hits_before {
        GuestSource::Cache
    } else {
        GuestSource::Compiled
    };
    Ok((module, source, took))
}
