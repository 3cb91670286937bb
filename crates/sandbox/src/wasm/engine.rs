//! What one process shares between all WASM runners: the `Engine`, the
//! compiled guest and its `InstancePre` (linked with WASI preview 1 once),
//! and the slots of the pooling allocator.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};

use super::cache::{self, GuestLoad, ModuleCache};
use super::exec::State;
use super::{MEMORY_LIMIT_BYTES, WasmError};

/// The guest program, built for `wasm32-wasip1` by `build.rs`.
pub(super) static GUEST_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wasm-guest.wasm"));

/// How many sandboxed calls may run at once in this process: the pooling
/// allocator reserves this many instance, memory and table slots up front.
/// Further calls wait for a free slot.
pub const MAX_CONCURRENT_CALLS: u32 = 16;

/// Linear memory kept mapped (and zeroed with `memset` rather than
/// unmapped) between instances in one slot: the guest's stack and heap of a
/// small request, so a warm call does not fault its pages in again.
const KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;

/// The per-process state. Built once, by the first runner.
pub(super) struct Shared {
    engine: Engine,
    linker: Linker<State>,
    guest: InstancePre<State>,
    load: GuestLoad,
    slots: Slots,
}

static SHARED: OnceLock<Result<Arc<Shared>, WasmError>> = OnceLock::new();

/// The process's shared state, built on first use. The cache setting only
/// matters to that first call.
pub(super) fn shared(cache: &ModuleCache) -> Result<Arc<Shared>, WasmError> {
    SHARED
        .get_or_init(|| Shared::new(cache).map(Arc::new))
        .clone()
}

/// Builds an engine and gets the guest as a first runner would, apart from
/// the process's shared state: for measuring the one-time cost.
pub(super) fn measure_load(setting: &ModuleCache) -> Result<GuestLoad, WasmError> {
    let (load, _module, _engine) = engine_and_guest(setting)?;
    Ok(load)
}

/// Compiles the guest into `setting`'s cache (or finds it there) so that
/// later processes load it instead of compiling. Without a usable cache
/// there is nowhere to keep the result: an error says why, before any
/// compile.
pub(super) fn compile_ahead(setting: &ModuleCache) -> Result<GuestLoad, WasmError> {
    match cache::open(setting) {
        (Some(_), _) => measure_load(setting),
        (None, Some(reason)) => Err(WasmError::Setup(format!(
            "the compiled-module cache cannot be used: {reason}"
        ))),
        (None, None) => Err(WasmError::Setup(
            "no compiled-module cache: set XDG_CACHE_HOME or HOME to an absolute path".into(),
        )),
    }
}

fn engine_and_guest(setting: &ModuleCache) -> Result<(GuestLoad, Module, Engine), WasmError> {
    let (cache, cache_unavailable) = cache::open(setting);
    let cache_dir = cache.as_ref().map(|c| c.directory().clone());
    let engine = new_engine(cache.clone())?;
    let (module, source, took) = cache::load_guest(&engine, GUEST_WASM, cache.as_ref())?;
    let load = GuestLoad {
        source,
        took,
        cache_dir,
        cache_unavailable,
    };
    Ok((load, module, engine))
}

impl Shared {
    fn new(cache: &ModuleCache) -> Result<Self, WasmError> {
        let (load, module, engine) = engine_and_guest(cache)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut State| &mut state.wasi)
            .map_err(|e| WasmError::Setup(format!("could not link WASI: {e:#}")))?;
        let guest = linker
            .instantiate_pre(&module)
            .map_err(|e| WasmError::Setup(format!("could not link the guest: {e:#}")))?;
        Ok(Self {
            engine,
            linker,
            guest,
            load,
            slots: Slots::new(MAX_CONCURRENT_CALLS),
        })
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(super) fn guest(&self) -> &InstancePre<State> {
        &self.guest
    }

    pub(super) fn load(&self) -> &GuestLoad {
        &self.load
    }

    pub(super) fn slots(&self) -> &Slots {
        &self.slots
    }

    /// Compiles and links another module (tests' hostile guests) with the
    /// same engine and WASI imports as the real guest.
    pub(super) fn instantiate_pre(&self, module: &[u8]) -> Result<InstancePre<State>, WasmError> {
        let module = Module::new(&self.engine, module)
            .map_err(|e| WasmError::Setup(format!("could not compile the module: {e:#}")))?;
        self.linker
            .instantiate_pre(&module)
            .map_err(|e| WasmError::Setup(format!("could not link the module: {e:#}")))
    }
}

/// The engine every runner in the process uses: epoch interruption for the
/// deadlines, and the pooling allocator so a fresh instance per call is
/// cheap (its memory slot is reused, not mapped anew).
fn new_engine(cache: Option<wasmtime::Cache>) -> Result<Engine, WasmError> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(MAX_CONCURRENT_CALLS)
        .total_memories(MAX_CONCURRENT_CALLS)
        .total_tables(MAX_CONCURRENT_CALLS)
        .max_memory_size(MEMORY_LIMIT_BYTES)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 * 1024);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .cache(cache);
    Engine::new(&config)
        .map_err(|e| WasmError::Setup(format!("could not create the engine: {e:#}")))
}

/// A counting semaphore over the pool's slots: the pool refuses an
/// instance beyond its size, so callers wait here instead.
pub(super) struct Slots {
    free: Mutex<u32>,
    released: Condvar,
}

/// One taken slot, given back on drop.
pub(super) struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(count: u32) -> Self {
        Self {
            free: Mutex::new(count),
            released: Condvar::new(),
        }
    }

    /// The counter is a plain integer changed in one statement, so a
    /// poisoned lock still holds a consistent value.
    fn lock(&self) -> MutexGuard<'_, u32> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn acquire(&self) -> Slot<'_> {
        let mut free = self.lock();
        while *free == 0 {
            free = self
                .released
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.released.notify_one();
    }
}

/// Times `f`.
pub(super) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}
