//! `--daemon start`: status over the control socket, a killed guest
//! restarted with a new pid, the log file, shutdown through `stop`, and the
//! commands' answers when no supervisor runs.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use runner::host::control::{SocketProbe, probe};
use types::protocol::control::{ControlRequest, ControlResponse, GuestState, SupervisorStatus};
use types::runner::SandboxTier;

use crate::{Fixture, PATIENCE, connect, echo_llm, turn};

/// `oxydra-runner status --json`.
pub fn status(fixture: &Fixture) -> SupervisorStatus {
    let done = fixture.run(&["status", "--json"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    serde_json::from_str(&done.stdout).unwrap()
}

/// Polls the status until `check` accepts it.
pub async fn wait_for_status(
    fixture: &Fixture,
    what: &str,
    check: impl Fn(&SupervisorStatus) -> bool,
) -> SupervisorStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = status(fixture);
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "never {what}: last {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn running(status: &SupervisorStatus) -> Option<u32> {
    match status.guest {
        GuestState::Running { pid, .. } => Some(pid),
        GuestState::Starting { .. } | GuestState::Restarting { .. } | GuestState::Stopping => None,
    }
}

#[tokio::test]
async fn the_supervisor_reports_restarts_a_killed_guest_and_shuts_down() {
    let _turn = crate::GUESTS.lock().await;
    let llm = echo_llm().await;
    let fixture = Fixture::new(&llm.base_url());
    let mut supervisor = fixture.spawn(&["--daemon", "start"]);
    supervisor.wait_for_file(&fixture.control_socket()).await;

    let first = wait_for_status(&fixture, "running", |s| running(s).is_some()).await;
    assert_eq!(first.user_id.as_str(), "alice");
    assert_eq!(first.tier, SandboxTier::Process);
    assert_eq!(first.restarts, 0);
    assert_eq!(first.supervisor_pid, supervisor.pid().as_raw() as u32);
    assert!(
        first
            .log_file
            .ends_with("workspaces/.runner/logs/alice.log")
    );
    let GuestState::Running { endpoint_url, .. } = &first.guest else {
        unreachable!("checked above");
    };
    assert!(endpoint_url.starts_with("ws://127.0.0.1:"));
    // The status never carries the gateway token.
    let endpoint = std::fs::read_to_string(fixture.endpoint_file()).unwrap();
    let token = serde_json::from_str::<serde_json::Value>(&endpoint).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!serde_json::to_string(&first).unwrap().contains(&token));

    // The human form of status.
    let human = fixture.run(&["status"]);
    assert!(human.stdout.contains("restarts:   0"), "{}", human.stdout);
    assert!(
        human.stdout.contains("tier:       process"),
        "{}",
        human.stdout
    );

    // The guest serves turns; its output goes to the log file.
    let (client, mut events, _) = connect(fixture.endpoint_file(), None).await;
    let (reply, _) = turn(&client, &mut events, "ping").await;
    assert_eq!(reply, "You said: ping");
    client.shutdown().await;
    let log = std::fs::read_to_string(&first.log_file).unwrap();
    assert!(log.contains("oxydra-vm ready"), "{log}");
    assert!(log.contains("oxydra-runner["), "{log}");

    // The control socket speaks typed frames to any client.
    let SocketProbe::Live(mut client) = probe(&fixture.control_socket()).await.unwrap() else {
        panic!("the supervisor answers");
    };
    let ControlResponse::Health(health) = client.request(ControlRequest::Health).await.unwrap()
    else {
        panic!("health answers health");
    };
    assert!(health.guest_ready);
    drop(client);

    // A second supervisor for the same user is refused.
    let second = fixture.run(&["--daemon", "start"]);
    assert_eq!(second.code, Some(1), "{second:?}");
    assert!(
        second.stderr.contains("already runs user 'alice'"),
        "{}",
        second.stderr
    );

    // Crash: the guest is killed; the supervisor starts a new one.
    let old_pid = running(&first).unwrap();
    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).unwrap();
    let restarted = wait_for_status(&fixture, "restarted", |s| {
        running(s).is_some_and(|pid| pid != old_pid)
    })
    .await;
    assert_eq!(restarted.restarts, 1);
    assert_eq!(restarted.last_exit.as_deref(), Some("killed by SIGKILL"));
    // The new guest serves.
    let (client, mut events, _) = connect(fixture.endpoint_file(), None).await;
    let (reply, _) = turn(&client, &mut events, "still there?").await;
    assert_eq!(reply, "You said: still there?");
    client.shutdown().await;

    let logs = fixture.run(&["logs", "--lines", "200"]);
    assert_eq!(logs.code, Some(0), "{logs:?}");
    assert!(
        logs.stdout
            .contains("ended unexpectedly (killed by SIGKILL)"),
        "{}",
        logs.stdout
    );

    // Shutdown: `stop` returns once the socket is gone; the supervisor
    // exits 0 and leaves no socket and no endpoint file behind.
    let stop = fixture.run(&["stop"]);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    assert!(
        stop.stdout.contains("user 'alice' stopped"),
        "{}",
        stop.stdout
    );
    assert_eq!(
        supervisor.wait_exit().await,
        Some(0),
        "{}",
        supervisor.stderr()
    );
    assert!(!fixture.control_socket().exists());
    assert!(!fixture.endpoint_file().exists());
    let new_pid = running(&restarted).unwrap();
    assert!(
        kill(Pid::from_raw(new_pid as i32), None).is_err(),
        "the guest {new_pid} is gone"
    );

    // Without a supervisor, stop and status say so and fail.
    for command in [&["stop"][..], &["status"]] {
        let done = fixture.run(command);
        assert_eq!(done.code, Some(1), "{done:?}");
        assert!(
            done.stderr
                .contains("no supervisor is running for user 'alice'")
                && done
                    .stderr
                    .contains("oxydra-runner --config runner.toml --user alice --daemon start"),
            "{}",
            done.stderr
        );
    }
}

#[tokio::test]
async fn a_supervisor_whose_first_guest_fails_exits_non_zero_with_its_stderr() {
    let llm = echo_llm().await;
    let fixture = Fixture::new(&llm.base_url());
    // Valid for the host loader, rejected by the guest's validation.
    fixture.write(
        ".oxydra/agent.toml",
        &format!(
            "[selection]\nprovider = \"fake\"\nmodel = \"gpt-4.1\"\n[runtime]\nmax_turns = 0\n\
             [providers.fake]\nprovider_type = \"openai\"\nbase_url = \"{}\"\n",
            llm.base_url()
        ),
    );
    let done = fixture.run(&["--daemon", "start"]);
    assert_eq!(done.code, Some(1), "{done:?}");
    assert!(
        done.stderr.contains("oxydra-vm exited with exit status 2"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("runtime.max_turns"), "{}", done.stderr);
    assert!(!fixture.control_socket().exists());
    let logs = fixture.run(&["logs"]);
    assert!(logs.stdout.contains("runtime.max_turns"), "{}", logs.stdout);
}

#[tokio::test]
async fn logs_without_a_log_file_say_how_logs_are_made() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    let done = fixture.run(&["logs"]);
    assert_eq!(done.code, Some(1), "{done:?}");
    assert!(
        done.stderr.contains("no log file for user 'alice'"),
        "{}",
        done.stderr
    );
}
