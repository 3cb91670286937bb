//! The daemon on vsock (`--vsock-port`, `vsock` feature) and the client's
//! vsock transport (`vsock://CID:PORT`).
//!
//! The round trip connects to CID 1 (`VMADDR_CID_LOCAL`), which needs the
//! kernel's loopback transport (`vsock_loopback`). Where it is missing
//! (e.g. inside a Firecracker guest, whose only transport leads to the
//! host), the test prints why and skips; everything that does not need a
//! connection (binding, flag checks, the client's error) still runs.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio_vsock::{VMADDR_CID_ANY, VMADDR_CID_LOCAL, VsockAddr, VsockListener, VsockStream};
use tools::shell::{ShellDaemonEndpoint, VsockShellSession};
use types::protocol::shell::{SHELL_DAEMON_READY_PREFIX, StreamType};

use crate::support::{BINARY, spawn_ready};

/// `VMADDR_PORT_ANY`: let the kernel pick a free port.
const PORT_ANY: u32 = u32::MAX;
/// How long the loopback probe waits for its own listener to answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const DEADLINE: Duration = Duration::from_secs(20);

/// Prints straight to the test's stderr (not captured by the harness), so
/// a skip is visible in a plain `cargo test` run.
fn report(message: &str) {
    let mut stderr = std::io::stderr();
    writeln!(stderr, "{message}").unwrap();
}

/// A vsock port that was free a moment ago, or why vsock is unusable.
fn free_port() -> Result<u32, String> {
    let listener = VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, PORT_ANY))
        .map_err(|e| format!("cannot bind a vsock listener (no /dev/vsock?): {e}"))?;
    Ok(listener.local_addr().unwrap().port())
}

/// Whether this kernel can connect to itself over vsock: binds a listener
/// and connects to it at CID 1 with a short timeout.
async fn loopback() -> Result<(), String> {
    let listener = VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, PORT_ANY))
        .map_err(|e| format!("cannot bind a vsock listener (no /dev/vsock?): {e}"))?;
    let port = listener.local_addr().unwrap().port();
    let address = VsockAddr::new(VMADDR_CID_LOCAL, port);
    match tokio::time::timeout(PROBE_TIMEOUT, VsockStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "connecting to our own vsock listener at CID {VMADDR_CID_LOCAL} failed: {e}"
        )),
        Err(_) => Err(format!(
            "connecting to our own vsock listener at CID {VMADDR_CID_LOCAL} timed out after {PROBE_TIMEOUT:?}"
        )),
    }
}

/// Starts the daemon on vsock `port` and waits for its ready line.
async fn start_daemon(port: u32, work: &std::path::Path) -> Child {
    let mut command = Command::new(BINARY);
    command
        .arg("--vsock-port")
        .arg(port.to_string())
        .arg("--working-dir")
        .arg(work);
    spawn_ready(
        command,
        &format!("{SHELL_DAEMON_READY_PREFIX}vsock port {port}"),
    )
    .await
}

/// Runs the binary to completion and returns (exit code, stderr).
async fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::time::timeout(
        DEADLINE,
        Command::new(BINARY)
            .args(args)
            .env("OXYDRA_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the daemon did not exit")
    .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn vsock_sessions_round_trip_through_the_client() {
    if let Err(reason) = loopback().await {
        report(&format!(
            "SKIPPED vsock_sessions_round_trip_through_the_client: {reason}; the kernel has no vsock loopback transport (vsock_loopback)"
        ));
        return;
    }
    let port = free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let mut daemon = start_daemon(port, &work).await;

    let endpoint =
        ShellDaemonEndpoint::parse(&format!("vsock://{VMADDR_CID_LOCAL}:{port}")).unwrap();
    let session = VsockShellSession::new(endpoint, "vm");
    session.spawn().await.unwrap();
    let out = session
        .run("echo hi; pwd; echo oops >&2; exit 3", DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, format!("hi\n{}\n", work.display()));
    assert_eq!((out.stderr.as_str(), out.exit_code), ("oops\n", 3));

    let mut chunks = Vec::new();
    let out = session
        .exec_streaming("echo one; echo two >&2", DEADLINE, &mut |stream, data| {
            chunks.push((stream, data.to_owned()));
        })
        .await
        .unwrap();
    assert_eq!((out.stdout.as_str(), out.exit_code), ("one\n", 0));
    assert!(
        chunks.contains(&(StreamType::Stdout, "one\n".into())),
        "{chunks:?}"
    );
    assert!(
        chunks.contains(&(StreamType::Stderr, "two\n".into())),
        "{chunks:?}"
    );

    // The session keeps state between connections; killing it ends that.
    session.run("touch marker", DEADLINE).await.unwrap();
    assert!(work.join("marker").exists());
    session.kill().await.unwrap();

    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
}

#[tokio::test]
async fn a_taken_vsock_port_is_a_clear_startup_error() {
    // Needs binding only, not a loopback connection.
    let listener = match VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, PORT_ANY)) {
        Ok(listener) => listener,
        Err(e) => {
            report(&format!(
                "SKIPPED a_taken_vsock_port_is_a_clear_startup_error: cannot bind vsock (no /dev/vsock?): {e}"
            ));
            return;
        }
    };
    let port = listener.local_addr().unwrap().port().to_string();
    let (code, stderr) = run_to_exit(&["--vsock-port", &port]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on vsock port {port}")),
        "{stderr}"
    );
    drop(listener);
}

#[tokio::test]
async fn the_listen_flags_are_exclusive_and_the_wildcard_port_is_refused() {
    let (code, stderr) =
        run_to_exit(&["--socket", "/tmp/unused.sock", "--vsock-port", "5000"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");

    let (code, stderr) = run_to_exit(&[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--socket <PATH>|--vsock-port <PORT>"),
        "{stderr}"
    );

    let (code, stderr) = run_to_exit(&["--vsock-port", "4294967295"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("'any port' wildcard"), "{stderr}");

    for bad in ["-1", "4294967296", "five"] {
        let (code, stderr) = run_to_exit(&[&format!("--vsock-port={bad}")]).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{bad}' for '--vsock-port <PORT>'")),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_vsock_daemon_is_a_clear_client_error() {
    // Nobody listens on the port: a reset where loopback exists, a
    // timeout (the kernel's, about 2 s) or no device elsewhere.
    let port = free_port().unwrap_or(5000);
    let endpoint =
        ShellDaemonEndpoint::parse(&format!("vsock://{VMADDR_CID_LOCAL}:{port}")).unwrap();
    let session = VsockShellSession::new(endpoint, "vm");
    let err = tokio::time::timeout(DEADLINE, session.run("true", DEADLINE))
        .await
        .expect("the connect was not bounded")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("shell daemon at vsock://1:{port} is unreachable")),
        "{err}"
    );
}
