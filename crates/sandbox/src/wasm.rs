//! The WASM runner: file operations inside wasmtime, with only the mounts
//! of the invocation's capability profile preopened.
//!
//! The guest (`crates/wasm-guest`, built for `wasm32-wasip1` by this
//! crate's build script and embedded here) runs the same
//! `wasm_guest::execute` as the host runner, but over WASI: it can open
//! only what lies inside a preopened directory, read-only where the profile
//! says so. Symlinks that lead out of a preopen, `..` above it and absolute
//! host paths are refused by wasmtime-wasi (cap-std) at the moment of each
//! open, so a concurrent change to the workspace cannot redirect an
//! operation the way it can for the host runner's check-then-use.
//!
//! Per process there is one `Engine` (epoch interruption, pooling
//! allocator), one compiled guest `Module` and one `InstancePre` linked
//! with WASI preview 1. Per call there is a fresh `Store` and instance: a
//! WASI context whose preopens are exactly the profile's mounts, the
//! request as stdin, the response captured from stdout, a 64 MiB memory
//! cap and a wall-clock deadline checked at every epoch tick.
//!
//! The host-side path policy (`Workspace::resolve`) still runs first, for
//! fast and clear refusals; the sandbox is what makes them hold.

mod cache;
mod engine;
mod exec;
mod ticker;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use thiserror::Error;
use types::protocol::file_ops::{FileErrorKind, FileRequest, FileResponse};
use wasm_guest::VirtualPath;

use crate::profile::CapabilityProfile;
use crate::runner::FileRunner;
use crate::workspace::Workspace;

use self::engine::Shared;
use self::ticker::EpochTicker;

pub use self::cache::{GuestLoad, GuestSource, ModuleCache};
pub use self::engine::MAX_CONCURRENT_CALLS;

/// How long one file operation may run inside the sandbox by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most linear memory one invocation may use.
pub const MEMORY_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Why a sandboxed file operation, or the sandbox itself, failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WasmError {
    /// `WasmWasiToolRunner::new`: the engine, the guest module or the epoch
    /// thread could not be set up. Not retriable: the build or the host is
    /// broken; fall back to the host runner only deliberately.
    #[error("the WASM sandbox could not be set up: {0}")]
    Setup(String),
    /// A call: the WASI context for the profile's mounts could not be built
    /// (a mount directory vanished) or the guest could not be instantiated.
    #[error("the WASM sandbox could not start the file operation: {0}")]
    Instantiate(String),
    /// A call ran past the runner's time limit and was interrupted. Retrying
    /// the same request will time out again.
    #[error(
        "the file operation exceeded its time limit of {} s and was stopped",
        limit.as_secs_f64()
    )]
    TimedOut { limit: Duration },
    /// A call needed more memory than `MEMORY_LIMIT_BYTES`; the request or
    /// the file is too large for the sandbox.
    #[error(
        "the file operation needed more than {} MiB of memory and was stopped; use a smaller \
         file, a line range or a narrower search",
        limit_bytes / (1024 * 1024)
    )]
    OutOfMemory { limit_bytes: usize },
    /// The guest trapped (a bug in the guest, or a hostile module in a
    /// test); the text is wasmtime's, with anything the guest printed.
    #[error("the file operation failed inside the WASM sandbox: {0}")]
    Trap(String),
    /// The guest exited with a non-zero code, or wrote something that is
    /// not a `FileResponse`.
    #[error("the WASM guest returned no valid response: {0}")]
    BadResponse(String),
}

impl WasmError {
    /// The failure as the response the tool reports to the model.
    pub fn to_response(&self) -> FileResponse {
        let kind = match self {
            Self::OutOfMemory { .. } => FileErrorKind::TooLarge,
            Self::Setup(_)
            | Self::Instantiate(_)
            | Self::TimedOut { .. }
            | Self::Trap(_)
            | Self::BadResponse(_) => FileErrorKind::Io,
        };
        FileResponse::error(kind, self.to_string())
    }
}

/// How a `WasmWasiToolRunner` limits its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmRunnerConfig {
    /// The wall-clock limit of one call inside the sandbox.
    pub timeout: Duration,
    /// Where the compiled guest is cached between processes. Only the
    /// first runner of a process uses it: the compiled guest is shared.
    pub module_cache: ModuleCache,
}

impl Default for WasmRunnerConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            module_cache: ModuleCache::default(),
        }
    }
}

/// Runs file operations inside wasmtime. See the module documentation.
pub struct WasmWasiToolRunner {
    workspace: Workspace,
    timeout: Duration,
    shared: Arc<Shared>,
    /// Advances the engine's epoch so deadlines are checked; stopped when
    /// the runner is dropped.
    _ticker: EpochTicker,
}

impl fmt::Debug for WasmWasiToolRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmWasiToolRunner")
            .field("workspace", &self.workspace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WasmWasiToolRunner {
    /// A runner over `workspace` with the default limits. The first runner
    /// in a process compiles (or loads from the cache) the guest module.
    pub fn new(workspace: Workspace) -> Result<Self, WasmError> {
        Self::with_config(workspace, &WasmRunnerConfig::default())
    }

    pub fn with_config(workspace: Workspace, config: &WasmRunnerConfig) -> Result<Self, WasmError> {
        let shared = engine::shared(&config.module_cache)?;
        let ticker = EpochTicker::start(shared.engine(), ticker::interval_for(config.timeout))
            .map_err(|e| WasmError::Setup(format!("could not start the epoch thread: {e}")))?;
        Ok(Self {
            workspace,
            timeout: config.timeout,
            shared,
            _ticker: ticker,
        })
    }

    /// How this process got its compiled guest (compiled, or loaded from
    /// the on-disk cache) and how long that took: the one-time cost paid by
    /// the first runner.
    pub fn guest_load(&self) -> &GuestLoad {
        self.shared.load()
    }

    /// Compiles the guest into `cache` ahead of any file call (or finds it
    /// already there), so the first call of a later process only loads
    /// it: what `oxydra-vm --compile-wasm` does before a guest starts.
    /// Fails, without compiling, when `cache` names no usable directory.
    pub fn compile_ahead(cache: &ModuleCache) -> Result<GuestLoad, WasmError> {
        engine::compile_ahead(cache)
    }

    /// Creates an engine and compiles (or loads from `cache`) the guest
    /// afresh, outside the process's shared state, and says how long that
    /// took. For benchmarks of the one-time cost.
    #[doc(hidden)]
    pub fn measure_guest_load(cache: &ModuleCache) -> Result<GuestLoad, WasmError> {
        engine::measure_load(cache)
    }

    /// Runs `request` in the sandbox WITHOUT the host-side path check in
    /// front. Only for tests that prove the sandbox holds on its own;
    /// production code calls `FileRunner::run`.
    #[doc(hidden)]
    pub fn run_unchecked(&self, profile: CapabilityProfile, request: &FileRequest) -> FileResponse {
        if let Some(refusal) = refuse_without_mounts(profile) {
            return refusal;
        }
        let input = match serde_json::to_vec(request) {
            Ok(input) => input,
            Err(e) => {
                return FileResponse::error(
                    FileErrorKind::InvalidInput,
                    format!("the request could not be encoded: {e}"),
                );
            }
        };
        let output = exec::run(&self.call(profile), self.shared.guest(), input);
        match output.and_then(|stdout| {
            serde_json::from_slice::<FileResponse>(&stdout)
                .map_err(|e| WasmError::BadResponse(e.to_string()))
        }) {
            Ok(response) => response,
            Err(error) => error.to_response(),
        }
    }

    /// Runs the real guest with `stdin` as its raw input (not necessarily a
    /// valid request) and returns its raw output, WITHOUT the host-side
    /// check. Only for tests of the guest's own input handling.
    #[doc(hidden)]
    pub fn run_guest_unchecked(
        &self,
        profile: CapabilityProfile,
        stdin: &[u8],
    ) -> Result<Vec<u8>, WasmError> {
        exec::run(&self.call(profile), self.shared.guest(), stdin.to_vec())
    }

    /// Runs an arbitrary module (WASM bytes, or WAT text when wasmtime's
    /// `wat` feature is on, as in this crate's tests) through the same
    /// sandbox as the guest: the profile's preopens, `stdin` as its input,
    /// the time and memory limits. Returns what it wrote to stdout. Only for
    /// tests that attack the sandbox with raw WASI calls.
    #[doc(hidden)]
    pub fn run_module_unchecked(
        &self,
        module: &[u8],
        profile: CapabilityProfile,
        stdin: &[u8],
    ) -> Result<Vec<u8>, WasmError> {
        let pre = self.shared.instantiate_pre(module)?;
        exec::run(&self.call(profile), &pre, stdin.to_vec())
    }

    fn call(&self, profile: CapabilityProfile) -> exec::Call<'_> {
        exec::Call {
            shared: &self.shared,
            workspace: &self.workspace,
            profile,
            timeout: self.timeout,
        }
    }
}

/// A [`WasmWasiToolRunner`] set up on its first call, so an agent that has
/// not touched a file yet holds no engine, compiled guest or epoch thread
/// (about 10 MiB resident and 10 ms at start-up). A set-up failure is kept
/// and answers every call as an `Io` error naming the cause.
#[derive(Debug)]
pub struct LazyWasmRunner {
    workspace: Workspace,
    config: WasmRunnerConfig,
    runner: OnceLock<Result<WasmWasiToolRunner, String>>,
}

impl LazyWasmRunner {
    pub fn new(workspace: Workspace, config: WasmRunnerConfig) -> Self {
        Self {
            workspace,
            config,
            runner: OnceLock::new(),
        }
    }

    fn runner(&self) -> Result<&WasmWasiToolRunner, &str> {
        self.runner
            .get_or_init(|| {
                let runner = WasmWasiToolRunner::with_config(self.workspace.clone(), &self.config)
                    .map_err(|e| format!("the file sandbox cannot be set up: {e}"))?;
                let load = runner.guest_load();
                let took_ms = load.took.as_millis();
                match load.source {
                    GuestSource::Cache => tracing::info!(
                        took_ms,
                        "file sandbox ready: WASM guest loaded from the compiled-module cache"
                    ),
                    GuestSource::Compiled => tracing::info!(
                        took_ms,
                        cache_unavailable = load.cache_unavailable.as_deref(),
                        "file sandbox ready: WASM guest compiled on its first call \
                         (oxydra-vm --compile-wasm does it ahead)"
                    ),
                }
                Ok(runner)
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

impl FileRunner for LazyWasmRunner {
    fn run(&self, profile: CapabilityProfile, request: &FileRequest) -> FileResponse {
        match self.runner() {
            Ok(runner) => runner.run(profile, request),
            Err(message) => FileResponse::error(FileErrorKind::Io, message.to_owned()),
        }
    }
}

impl FileRunner for WasmWasiToolRunner {
    fn run(&self, profile: CapabilityProfile, request: &FileRequest) -> FileResponse {
        // The host-side policy first: a fast, clear refusal (it names the
        // mounts the tool may use) before any sandbox is built. The sandbox
        // below holds even when this check is raced.
        let path = match VirtualPath::parse(request.path()) {
            Ok(path) => path,
            Err(error) => return error.into(),
        };
        if let Err(violation) = self.workspace.resolve(profile, &path, request.access()) {
            return FileResponse::error(FileErrorKind::PermissionDenied, violation.to_string());
        }
        self.run_unchecked(profile, request)
    }
}

/// Profiles without mounts (`Web`) have no filesystem: no sandbox is built.
fn refuse_without_mounts(profile: CapabilityProfile) -> Option<FileResponse> {
    profile.mounts().is_empty().then(|| {
        FileResponse::error(
            FileErrorKind::PermissionDenied,
            format!("the {profile} profile has no filesystem; file operations are refused"),
        )
    })
}
