//! Per-call latency of `file_read` through the whole registry pipeline
//! (lookup → validation → policy → timeout → the tool on a blocking thread →
//! truncation → scrubbing) with the WASM runner and with the host runner.
//! The runner-level figures (without the pipeline) are in `sandbox`'s
//! `file_call` bench.
//!
//! `cargo bench -p tools --bench file_tool` measures; under `cargo test` it
//! makes one quick smoke pass. Prints a table and one JSON line.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use sandbox::scrub::Scrubber;
use sandbox::{FileRunner, HostFileRunner, WasmWasiToolRunner, Workspace};
use serde_json::json;
use test_support::bench::{Timings, full_run, time_calls};
use tools::file::register_file_tools;
use tools::{StaticApproval, ToolRegistry};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{ToolCall, ToolContext};

const CALLS: usize = 5_000;
const SMOKE_CALLS: usize = 3;
const SMALL_FILE: &str = "Oxydra benchmark file.\nA second line.\n";

fn registry(workspace: &Workspace, runner: Arc<dyn FileRunner>) -> ToolRegistry {
    let mut registry = ToolRegistry::new(
        Arc::new(Scrubber::new()),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    );
    register_file_tools(&mut registry, workspace, runner).expect("the file tools register");
    registry
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6 * 10.0).round() / 10.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = full_run();
    let calls = if full { CALLS } else { SMOKE_CALLS };

    let dir = tempfile::tempdir().expect("a temporary directory");
    let workspace = Workspace::open(&dir.path().join("bench")).expect("the workspace");
    fs::write(
        workspace
            .mount_dir(types::protocol::file_ops::Mount::Shared)
            .join("small.txt"),
        SMALL_FILE,
    )
    .expect("the small file");
    let call = ToolCall {
        id: "bench".into(),
        name: "file_read".into(),
        arguments: json!({ "path": "/shared/small.txt" }).to_string(),
        signature: None,
    };

    let wasm = WasmWasiToolRunner::new(workspace.clone()).expect("the WASM runner");
    let variants: [(&str, Arc<dyn FileRunner>); 2] = [
        ("pipeline + WASM runner", Arc::new(wasm)),
        (
            "pipeline + host runner",
            Arc::new(HostFileRunner::new(workspace.clone())),
        ),
    ];
    let mut rows = Vec::new();
    for (name, runner) in variants {
        let registry = registry(&workspace, runner);
        let context = ToolContext::new("bench");
        let Timings { p50, p99, mean } = time_calls(
            calls,
            || registry.execute_with_policy(&call, &context),
            |output: &Result<String, _>| {
                let output = output.as_ref().expect("file_read");
                assert!(
                    output.contains("A second line."),
                    "unexpected output: {output}"
                );
            },
        )
        .await;
        rows.push((name, p50, p99, mean));
    }

    println!(
        "file_read of a {}-byte file through ToolRegistry::execute_with_policy, {calls} calls each{}",
        SMALL_FILE.len(),
        if full { "" } else { " (smoke pass)" }
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10}",
        "variant", "p50 µs", "p99 µs", "mean µs"
    );
    for (name, p50, p99, mean) in &rows {
        println!(
            "{name:<26} {:>10} {:>10} {:>10}",
            micros(*p50),
            micros(*p99),
            micros(*mean)
        );
    }
    let variants: Vec<_> = rows
        .iter()
        .map(|(name, p50, p99, mean)| {
            json!({
                "variant": name,
                "p50_us": micros(*p50),
                "p99_us": micros(*p99),
                "mean_us": micros(*mean),
            })
        })
        .collect();
    println!(
        "{}",
        json!({ "bench": "file_tool", "smoke": !full, "calls": calls, "variants": variants })
    );
}
