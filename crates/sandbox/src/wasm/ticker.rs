//! The thread that advances the engine's epoch, so running guests reach
//! their deadline checks. Each runner owns one; it stops when the runner is
//! dropped.
//!
//! Several runners in a process share one engine and so one epoch: with two
//! tickers the epoch advances twice as often. That is harmless because a
//! tick only makes a running store look at the wall clock; the deadline
//! itself is an `Instant` (see `exec`).

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use wasmtime::Engine;

/// The coarsest tick: how late past its deadline a call may be stopped.
const MAX_INTERVAL: Duration = Duration::from_millis(100);
/// The finest tick, for very short test timeouts.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A tick interval for `timeout`: a tenth of it, within the bounds above.
pub(super) fn interval_for(timeout: Duration) -> Duration {
    (timeout / 10).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

pub(super) struct EpochTicker {
    /// Dropping the sender wakes the thread and ends it.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: &Engine, interval: Duration) -> io::Result<Self> {
        let engine = engine.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("oxydra-wasm-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The loop cannot panic; an error here would only repeat a
            // panic message already printed by that thread.
            let _ = thread.join();
        }
    }
}
