//! One sandboxed call: a fresh store and instance whose WASI context
//! preopens exactly the profile's mounts, with the request as stdin, the
//! memory cap and the deadline; the result is what the guest wrote to
//! stdout, or why it stopped.

use std::time::{Duration, Instant};

use wasmtime::{
    InstancePre, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::engine::Shared;
use super::{MEMORY_LIMIT_BYTES, WasmError};
use crate::profile::{CapabilityProfile, MountAccess};
use crate::workspace::Workspace;

/// Tells the guest how large its request is, so it allocates its input
/// buffer once (see `wasm-guest`'s `main.rs`).
const REQUEST_BYTES_ENV: &str = "OXYDRA_REQUEST_BYTES";
/// The largest response accepted on stdout: more than the guest can hold
/// in its memory at once.
const MAX_STDOUT_BYTES: usize = MEMORY_LIMIT_BYTES;
/// What the guest may print on stderr (a panic message, for the error).
const MAX_STDERR_BYTES: usize = 16 * 1024;

/// The store's data: the WASI context and the limits.
pub(crate) struct State {
    pub(super) wasi: WasiP1Ctx,
    limits: Limits,
}

/// `StoreLimits` that remember a refused memory growth, so a trap that
/// follows it (the guest's allocator aborting) is reported as "too large".
struct Limits {
    inner: StoreLimits,
    memory_refused: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        self.memory_refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// What one call may use.
pub(super) struct Call<'a> {
    pub(super) shared: &'a Shared,
    pub(super) workspace: &'a Workspace,
    pub(super) profile: CapabilityProfile,
    pub(super) timeout: Duration,
}

/// Runs `pre`'s `_start` in a fresh instance with `stdin` as its input and
/// returns its stdout.
pub(super) fn run(
    call: &Call<'_>,
    pre: &InstancePre<State>,
    stdin: Vec<u8>,
) -> Result<Vec<u8>, WasmError> {
    let _slot = call.shared.slots().acquire();
    let stdout = MemoryOutputPipe::new(MAX_STDOUT_BYTES);
    let stderr = MemoryOutputPipe::new(MAX_STDERR_BYTES);
    let wasi = wasi_context(call, stdin, &stdout, &stderr)?;
    let limits = Limits {
        inner: StoreLimitsBuilder::new()
            .memory_size(MEMORY_LIMIT_BYTES)
            .instances(1)
            .memories(1)
            .tables(1)
            .build(),
        memory_refused: false,
    };
    let mut store = Store::new(call.shared.engine(), State { wasi, limits });
    store.limiter(|state| &mut state.limits);
    // The epoch only says "look at the clock now"; the deadline is real
    // time, so it holds however many tickers advance the epoch.
    let deadline = Instant::now() + call.timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        })
    });
    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| WasmError::Instantiate(format!("{e:#}")))?;
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(|e| WasmError::Instantiate(format!("the module has no `_start`: {e:#}")))?;
    match start.call(&mut store, ()) {
        Ok(()) => Ok(stdout.contents().to_vec()),
        Err(error) => match error.downcast_ref::<I32Exit>() {
            Some(I32Exit(0)) => Ok(stdout.contents().to_vec()),
            Some(I32Exit(code)) => Err(WasmError::BadResponse(format!(
                "the guest exited with code {code}{}",
                printed(&stderr)
            ))),
            None if store.data().limits.memory_refused => Err(WasmError::OutOfMemory {
                limit_bytes: MEMORY_LIMIT_BYTES,
            }),
            None if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                Err(WasmError::TimedOut {
                    limit: call.timeout,
                })
            }
            None => Err(WasmError::Trap(format!("{error:#}{}", printed(&stderr)))),
        },
    }
}

/// The WASI context of one call: the profile's mounts preopened at their
/// workspace names with the profile's access, nothing else (no host
/// environment, no arguments but the program name, no network).
fn wasi_context(
    call: &Call<'_>,
    stdin: Vec<u8>,
    stdout: &MemoryOutputPipe,
    stderr: &MemoryOutputPipe,
) -> Result<WasiP1Ctx, WasmError> {
    let mut builder = WasiCtxBuilder::new();
    // File operations run on this (blocking) thread instead of hopping to
    // tokio's blocking pool and back for every WASI call. Must be set
    // before the preopens, which capture it.
    builder
        .allow_blocking_current_thread(true)
        .arg("wasm-guest")
        .env(REQUEST_BYTES_ENV, stdin.len().to_string())
        .stdin(MemoryInputPipe::new(stdin))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    for (mount, access) in call.profile.mounts() {
        let perms = match access {
            MountAccess::ReadOnly => FsPerms::ReadOnly,
            MountAccess::ReadWrite => FsPerms::ReadWrite,
        };
        let dir = call.workspace.mount_dir(*mount);
        builder
            .preopened_dir(dir, mount.to_string(), perms)
            .map_err(|e| {
                WasmError::Instantiate(format!("could not open {mount} ({}): {e:#}", dir.display()))
            })?;
    }
    Ok(builder.build_p1())
}

/// What the guest printed on stderr, as a suffix for an error message.
fn printed(stderr: &MemoryOutputPipe) -> String {
    let text = stderr.contents();
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; the guest printed: {text}")
    }
}
