//! Cold start of `oxydra-vm` (process spawn → endpoint file written, read
//! from the guest's "ready" line, which follows the file) and its idle
//! resident memory, with the lexical embedder. The first start (an empty
//! workspace: the memory database is created) is reported apart. The WASM
//! file sandbox is set up on the first file call, so it is in neither.
//!
//! `cargo bench -p runner --bench guest_start` measures; under `cargo test`
//! it makes one quick smoke pass. Prints a table and one JSON line.

#[path = "common/guest.rs"]
mod guest;

use std::path::Path;
use std::time::{Duration, Instant};

use guest::{Guest, envelope_frame, resident_kib};
use serde_json::json;
use test_support::bench::{full_run, percentile};
use test_support::openai_agent_config;

const STARTS: usize = 30;
const SMOKE_STARTS: usize = 2;
/// How long the guest sits idle before its memory is read.
const IDLE: Duration = Duration::from_millis(500);

/// One start: time to the ready line, then resident memory after `IDLE`.
fn start_once(home: &Path, frame: &[u8]) -> (Duration, u64) {
    let started = Instant::now();
    let guest = Guest::start(home, frame);
    let elapsed = started.elapsed();
    std::thread::sleep(IDLE);
    let rss = resident_kib(guest.pid());
    guest.stop();
    (elapsed, rss)
}

fn main() {
    let full = full_run();
    let starts = if full { STARTS } else { SMOKE_STARTS };
    let home = tempfile::tempdir().expect("temporary directory");
    // The provider is never contacted: the guest makes no call while idle.
    let config = openai_agent_config("http://127.0.0.1:9/v1".into());
    let frame = envelope_frame(&home.path().join("bench"), config);
    Guest::compile_ahead(home.path());
    let (first, _) = start_once(home.path(), &frame);
    let mut times = Vec::with_capacity(starts);
    let mut rss = Vec::with_capacity(starts);
    for _ in 0..starts {
        let (elapsed, kib) = start_once(home.path(), &frame);
        times.push(elapsed);
        rss.push(kib);
    }
    times.sort();
    rss.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "oxydra-vm cold start, {starts} starts{}",
        if full { "" } else { " (smoke pass)" }
    );
    println!(
        "  first start (creates the database): {:>8.1} ms",
        ms(first)
    );
    println!(
        "  start → endpoint written:   p50 {:>7.1} ms   p99 {:>7.1} ms",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    println!(
        "  idle RSS after {} ms:       p50 {:>7.1} MiB  max {:>7.1} MiB",
        IDLE.as_millis(),
        mib(percentile(&rss, 0.5)),
        mib(percentile(&rss, 1.0))
    );
    println!(
        "{}",
        json!({
            "bench": "guest_start",
            "smoke": !full,
            "starts": starts,
            "first_start_ms": ms(first),
            "cold_start_ms": {"p50": ms(percentile(&times, 0.5)), "p99": ms(percentile(&times, 0.99))},
            "idle_rss_mib": {"p50": mib(percentile(&rss, 0.5)), "max": mib(percentile(&rss, 1.0))},
        })
    );
}
