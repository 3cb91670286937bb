//! Per-call latency of `file_read` on a small file: through the WASM runner
//! (host-side check + a fresh sandboxed instance), the WASM sandbox alone
//! (no host-side check), the host runner, and plain `std::fs`; plus the
//! one-time cost of getting the compiled guest (a cold compile, and a load
//! from the on-disk cache).
//!
//! `cargo bench -p sandbox --bench file_call` measures; under `cargo test`
//! (no `--bench` argument) it makes one quick smoke pass.
//! Prints a table and one JSON line.

use std::fs;
use std::hint::black_box;
use std::time::{Duration, Instant};

use sandbox::wasm::{ModuleCache, WasmWasiToolRunner};
use sandbox::{CapabilityProfile, FileRunner, HostFileRunner, Workspace};
use serde_json::json;
use types::protocol::file_ops::{FileRequest, FileResponse};

/// Calls per variant when measuring (after as many warm-up calls / 10).
const CALLS: usize = 5_000;
const SMOKE_CALLS: usize = 3;
const SMALL_FILE: &str = "Oxydra benchmark file.\nA second line.\n";

struct Stats {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn measure(name: &'static str, calls: usize, mut call: impl FnMut()) -> Stats {
    for _ in 0..calls / 10 {
        call();
    }
    let mut samples: Vec<Duration> = (0..calls)
        .map(|_| {
            let start = Instant::now();
            call();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        name,
        p50: at(0.50),
        p99: at(0.99),
        mean: samples.iter().sum::<Duration>() / samples.len() as u32,
    }
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6 * 10.0).round() / 10.0
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3 * 10.0).round() / 10.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let calls = if full { CALLS } else { SMOKE_CALLS };

    let dir = tempfile::tempdir().expect("a temporary directory");
    let workspace = Workspace::open(&dir.path().join("bench")).expect("the workspace");
    let file = workspace
        .mount_dir(types::protocol::file_ops::Mount::Shared)
        .join("small.txt");
    fs::write(&file, SMALL_FILE).expect("the small file");
    let request = FileRequest::Read {
        path: "/shared/small.txt".into(),
        start_line: None,
        max_lines: None,
    };
    let check = |response: FileResponse| match response {
        FileResponse::Text { text, .. } => assert_eq!(text, SMALL_FILE),
        other => panic!("file_read failed: {other:?}"),
    };

    // One-time costs, outside the process's shared engine: a cold compile
    // into an empty cache, then a load of what it stored. (The smoke pass
    // skips the cold compile: unoptimised Cranelift takes ~20 s for it.)
    let cache_dir = tempfile::tempdir().expect("a cache directory");
    let cache = if full {
        ModuleCache::Dir(cache_dir.path().to_owned())
    } else {
        ModuleCache::default()
    };
    let cold = full.then(|| WasmWasiToolRunner::measure_guest_load(&cache).expect("a compile"));
    let cached = WasmWasiToolRunner::measure_guest_load(&cache).expect("a cached load");

    let start = Instant::now();
    let wasm = WasmWasiToolRunner::new(workspace.clone()).expect("the WASM runner");
    let first_runner = start.elapsed();
    let host = HostFileRunner::new(workspace);
    let profile = CapabilityProfile::FileReadOnly;

    let results = [
        measure("wasm runner (check + sandbox)", calls, || {
            check(black_box(wasm.run(profile, &request)))
        }),
        measure("wasm sandbox only (no check)", calls, || {
            check(black_box(wasm.run_unchecked(profile, &request)))
        }),
        measure("host runner (check + std::fs)", calls, || {
            check(black_box(host.run(profile, &request)))
        }),
        measure("std::fs::read_to_string", calls, || {
            assert_eq!(
                black_box(fs::read_to_string(&file).expect("read")),
                SMALL_FILE
            )
        }),
    ];

    println!(
        "file_read of a {}-byte file, {calls} calls each{}",
        SMALL_FILE.len(),
        if full { "" } else { " (smoke pass)" }
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10}",
        "variant", "p50 µs", "p99 µs", "mean µs"
    );
    for s in &results {
        println!(
            "{:<32} {:>10} {:>10} {:>10}",
            s.name,
            micros(s.p50),
            micros(s.p99),
            micros(s.mean)
        );
    }
    let cold_ms = cold.as_ref().map(|load| millis(load.took));
    println!(
        "guest module: cold compile {} ms, load from cache {} ms ({:?}); \
         first runner in this process {} ms ({:?})",
        cold_ms.map_or("-".to_owned(), |ms| ms.to_string()),
        millis(cached.took),
        cached.source,
        millis(first_runner),
        wasm.guest_load().source,
    );
    let variants: Vec<_> = results
        .iter()
        .map(|s| {
            json!({
                "variant": s.name,
                "p50_us": micros(s.p50),
                "p99_us": micros(s.p99),
                "mean_us": micros(s.mean),
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "bench": "file_call",
            "smoke": !full,
            "calls": calls,
            "variants": variants,
            "compile_cold_ms": cold_ms,
            "cache_load_ms": millis(cached.took),
            "cache_load_source": format!("{:?}", cached.source),
            "first_runner_ms": millis(first_runner),
        })
    );
}
