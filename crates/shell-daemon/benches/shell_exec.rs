//! Per-call latency of `shell_exec` (`echo hi`) through the whole registry
//! pipeline, in Session mode (client → Unix socket → the real
//! `shell-daemon` binary → `sh -c`) and in Host mode (`sh -c` directly), and
//! the bare daemon round trip without the pipeline.
//!
//! `cargo bench -p shell-daemon --bench shell_exec` measures; under
//! `cargo test` it makes one quick smoke pass. Prints a table and one JSON
//! line.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sandbox::scrub::Scrubber;
use sandbox::shell_policy::ShellPolicy;
use serde_json::json;
use test_support::bench::{Timings, full_run, time_calls};
use tools::shell::{
    LocalDaemonOptions, LocalProcessShellSession, MAX_COMMAND_TIMEOUT, ShellBackend,
    register_shell_tool,
};
use tools::{StaticApproval, ToolRegistry};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{ToolCall, ToolContext};

const CALLS: usize = 1_000;
const SMOKE_CALLS: usize = 3;
const DAEMON: &str = env!("CARGO_BIN_EXE_shell-daemon");

type Call<'a> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = String> + 'a>> + 'a>;

fn registry(backend: ShellBackend) -> ToolRegistry {
    let mut registry = ToolRegistry::new(
        Arc::new(Scrubber::new()),
        Arc::new(StaticApproval(ApprovalPolicy::Allow)),
    );
    // The default allowlist has no `echo`; the benchmark adds it.
    let mut programs: Vec<String> = ShellPolicy::default()
        .allowed_programs()
        .map(str::to_owned)
        .collect();
    programs.push("echo".into());
    register_shell_tool(
        &mut registry,
        backend,
        ShellPolicy::new(programs),
        MAX_COMMAND_TIMEOUT,
    )
    .expect("shell_exec registers");
    registry
}

fn through<'a>(registry: &'a ToolRegistry, tool_call: &'a ToolCall) -> Call<'a> {
    Box::new(move || {
        Box::pin(async move {
            registry
                .execute_with_policy(tool_call, &ToolContext::new("test"))
                .await
                .expect("shell_exec")
        })
    })
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6 * 10.0).round() / 10.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = full_run();
    let calls = if full { CALLS } else { SMOKE_CALLS };

    let dir = tempfile::tempdir().expect("a temporary directory");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("the work directory");
    let local = Arc::new(
        LocalProcessShellSession::start(LocalDaemonOptions::new(
            DAEMON,
            dir.path().join("shell.sock"),
            &work,
        ))
        .await
        .expect("the daemon starts"),
    );
    let rows = {
        let session_registry = registry(ShellBackend::Session(local.clone()));
        let host_registry = registry(ShellBackend::Host(work.clone()));
        let tool_call = ToolCall {
            id: "bench".into(),
            name: "shell_exec".into(),
            arguments: json!({ "command": "echo hi" }).to_string(),
            signature: None,
        };
        let bare: Call<'_> = {
            let local = &local;
            Box::new(move || {
                Box::pin(async move {
                    local
                        .client()
                        .run("echo hi", Duration::from_secs(10))
                        .await
                        .expect("daemon exec")
                        .stdout
                })
            })
        };
        let variants: [(&str, Call<'_>); 3] = [
            (
                "shell_exec, Session mode (daemon)",
                through(&session_registry, &tool_call),
            ),
            ("shell_exec, Host mode", through(&host_registry, &tool_call)),
            ("daemon round trip only", bare),
        ];
        let mut rows = Vec::new();
        for (name, call) in &variants {
            let Timings { p50, p99, mean } = time_calls(calls, call, |output: &String| {
                assert!(output.contains("hi"), "unexpected output: {output}");
            })
            .await;
            rows.push((*name, p50, p99, mean));
        }
        rows
    };

    println!(
        "shell_exec `echo hi` through ToolRegistry::execute_with_policy, {calls} calls each{}",
        if full { "" } else { " (smoke pass)" }
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10}",
        "variant", "p50 µs", "p99 µs", "mean µs"
    );
    for (name, p50, p99, mean) in &rows {
        println!(
            "{name:<34} {:>10} {:>10} {:>10}",
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
        json!({ "bench": "shell_exec", "smoke": !full, "calls": calls, "variants": variants })
    );
    if let Some(local) = Arc::into_inner(local) {
        local
            .shutdown(Duration::from_secs(5))
            .await
            .expect("the daemon stops");
    }
}
