//! The wire protocol against the real binary: sessions, commands,
//! streaming, timeouts, kills, bad input and concurrency.

use std::path::Path;

use types::protocol::shell::{ShellDaemonResponse, StreamType};

use crate::support::*;

#[tokio::test]
async fn sessions_run_commands_in_their_directory_with_a_clean_environment() {
    let daemon = Daemon::start(&["--env", "FOO=bar"]).await;
    std::fs::create_dir(daemon.work().join("sub")).unwrap();
    let mut client = daemon.connect().await;
    assert_eq!(
        client.call(spawn("s1", Some(Path::new("sub")))).await,
        ShellDaemonResponse::SessionSpawned {
            session_id: "s1".into()
        }
    );
    let out = client.exec("s1", "pwd", None).await;
    assert_eq!(
        out.stdout,
        format!("{}\n", daemon.work().join("sub").display())
    );
    assert_eq!(
        (out.exit_code, out.timed_out, out.truncated),
        (0, false, false)
    );

    let out = client.exec("s1", "env", None).await;
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    assert!(!out.stdout.contains("OXYDRA_TEST_SECRET"), "{}", out.stdout);
    for expected in [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "OXYDRA_SHELL_SESSION=s1",
        "FOO=bar",
        "LANG=C.UTF-8",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == expected),
            "{expected} missing: {}",
            out.stdout
        );
    }

    let out = client.exec("s1", "echo oops >&2; exit 7", None).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
        ("", "oops\n", 7)
    );

    // stdin is closed: `cat` sees end of input at once instead of hanging.
    let out = client.exec("s1", "cat", Some(5_000)).await;
    assert_eq!(
        (out.stdout.as_str(), out.exit_code, out.timed_out),
        ("", 0, false)
    );

    // A second spawn with the same directory confirms the session; another
    // directory is refused.
    assert!(matches!(
        client.call(spawn("s1", Some(Path::new("sub")))).await,
        ShellDaemonResponse::SessionSpawned { .. }
    ));
    let message = error_message(client.call(spawn("s1", None)).await);
    assert!(
        message.contains("already exists with working directory"),
        "{message}"
    );

    assert_eq!(
        client.call(kill("s1")).await,
        ShellDaemonResponse::SessionKilled {
            session_id: "s1".into()
        }
    );
    let message = error_message(client.call(exec("s1", "true", None)).await);
    assert!(message.starts_with("unknown session 's1'"), "{message}");
}

#[tokio::test]
async fn unknown_sessions_and_bad_requests_get_errors() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.connect().await;
    for request in [exec("ghost", "true", None), stream("ghost"), kill("ghost")] {
        let message = error_message(client.call(request).await);
        assert!(message.starts_with("unknown session 'ghost'"), "{message}");
    }
    let message = error_message(client.call(spawn("../etc", None)).await);
    assert!(
        message.starts_with("invalid session id '../etc'"),
        "{message}"
    );
    let message = error_message(client.call(spawn("s", Some(Path::new("missing")))).await);
    assert!(message.contains("cannot be used"), "{message}");
    let mut client = daemon.session("s").await;
    let message = error_message(client.call(exec("s", "true", Some(0))).await);
    assert!(
        message.starts_with("timeout_ms 0 is out of range"),
        "{message}"
    );
    let message = error_message(client.call(stream("s")).await);
    assert!(message.contains("has no running command"), "{message}");
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_survives() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.connect().await;
    for (payload, expected) in [
        (&b"{not json"[..], "malformed request: key must be a string"),
        (
            br#"{"type":"format_disk"}"#,
            "unknown variant `format_disk`",
        ),
        (br#"{"type":"exec_command"}"#, "missing field `session_id`"),
        (b"", "malformed request: EOF while parsing"),
    ] {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        client.send_raw(&frame).await;
        let message = error_message(client.recv().await);
        assert!(message.contains(expected), "{message}");
    }
    // Still usable.
    assert!(matches!(
        client.call(spawn("after", None)).await,
        ShellDaemonResponse::SessionSpawned { .. }
    ));
}

#[tokio::test]
async fn oversized_frames_are_refused_from_the_header_and_close_the_connection() {
    let daemon = Daemon::start(&["--max-frame-bytes", "4096"]).await;
    let mut client = daemon.connect().await;
    client.send_raw(&[0xff, 0xff, 0xff, 0xff]).await;
    let message = error_message(client.recv().await);
    assert_eq!(
        message,
        "bad frame: frame of 4294967295 bytes exceeds the limit of 4096 bytes"
    );
    assert!(client.recv_or_closed().await.is_none());
    // The daemon itself is fine.
    daemon.session("next").await;
}

#[tokio::test]
async fn truncated_frames_are_reported_before_closing() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.connect().await;
    let mut frame = 100u32.to_be_bytes().to_vec();
    frame.extend_from_slice(b"{\"type\":\"");
    client.send_raw(&frame).await;
    // End of input mid-frame: half-close our side, keep reading.
    tokio::io::AsyncWriteExt::shutdown(client.framed.get_mut())
        .await
        .unwrap();
    let message = error_message(client.recv().await);
    assert_eq!(
        message,
        "bad frame: truncated frame: expected 100 payload bytes, received 9"
    );
    assert!(client.recv_or_closed().await.is_none());

    let mut client = daemon.connect().await;
    client.send_raw(&[0, 0]).await;
    tokio::io::AsyncWriteExt::shutdown(client.framed.get_mut())
        .await
        .unwrap();
    let message = error_message(client.recv().await);
    assert!(
        message.contains("after 2 of the 4 length-prefix bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn output_streams_while_the_command_runs() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    let flag = daemon.work().join("release");
    // The command waits for a file that the test only creates after it
    // has seen the first chunk: proof that chunks arrive while it runs.
    client
        .send(exec(
            "s",
            "echo first; while [ ! -e release ]; do sleep 0.02; done; echo second >&2; echo third",
            Some(20_000),
        ))
        .await;
    client.send(stream("s")).await;
    match client.recv().await {
        ShellDaemonResponse::StreamOutputChunk { data, stream_type } => {
            assert_eq!(
                (data.as_str(), stream_type),
                ("first\n", StreamType::Stdout)
            );
        }
        other => panic!("expected the first chunk, got {other:?}"),
    }
    // A watcher on another connection replays from the first byte.
    let mut watcher = daemon.connect().await;
    watcher.send(stream("s")).await;
    let mut seen = match watcher.recv().await {
        ShellDaemonResponse::StreamOutputChunk { data, .. } => data,
        other => panic!("expected the replayed first chunk, got {other:?}"),
    };
    std::fs::write(&flag, "").unwrap();

    let streamed = client.collect_stream().await;
    assert!(
        streamed.output_after_stream,
        "command_output must follow stream_finished"
    );
    assert_eq!(streamed.finished_exit_code, Some(0));
    let output = streamed.output.unwrap();
    assert_eq!(
        (output.stdout.as_str(), output.stderr.as_str()),
        ("first\nthird\n", "second\n")
    );
    let mut text: Vec<_> = streamed.chunks.iter().map(|(_, d)| d.as_str()).collect();
    text.sort_unstable();
    assert_eq!(text, ["second\n", "third\n"]);

    loop {
        match watcher.recv().await {
            ShellDaemonResponse::StreamOutputChunk { data, .. } => seen.push_str(&data),
            ShellDaemonResponse::StreamFinished { exit_code } => {
                assert_eq!(exit_code, Some(0));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        seen.starts_with("first\n") && seen.contains("second\n") && seen.contains("third\n"),
        "{seen}"
    );
    // Both connections are free again.
    assert_eq!(
        watcher.exec("s", "echo again", None).await.stdout,
        "again\n"
    );
}

#[tokio::test]
async fn a_stream_request_after_a_fast_command_replays_its_output() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    for _ in 0..20 {
        client.send(exec("s", "echo fast", None)).await;
        client.send(stream("s")).await;
        let streamed = client.collect_stream().await;
        let text: String = streamed.chunks.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(text, "fast\n");
        assert_eq!(streamed.output.unwrap().stdout, "fast\n");
    }
}

#[tokio::test]
async fn requests_during_a_running_command_are_out_of_order() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    let wait_for = |flag: &str| format!("while [ ! -e {flag} ]; do sleep 0.02; done; echo done");
    client.send(exec("s", &wait_for("go1"), Some(20_000))).await;
    for request in [
        kill("s"),
        spawn("t", None),
        exec("s", "true", None),
        stream("other"),
    ] {
        let message = error_message(client.call(request).await);
        assert!(
            message.starts_with("out of order:") && message.contains("exec_command in session 's'"),
            "{message}"
        );
    }
    // The command was not disturbed.
    std::fs::write(daemon.work().join("go1"), "").unwrap();
    let out = Output::from(client.recv().await);
    assert_eq!(out.stdout, "done\n");
    // And another connection sees the session as busy while it runs.
    let started = format!("echo > started; {}", wait_for("go2"));
    client.send(exec("s", &started, Some(20_000))).await;
    wait_for_file(&daemon.work().join("started")).await;
    let mut other = daemon.connect().await;
    let message = error_message(other.call(exec("s", "true", None)).await);
    assert!(
        message.contains("is already running a command"),
        "{message}"
    );
    std::fs::write(daemon.work().join("go2"), "").unwrap();
    assert_eq!(Output::from(client.recv().await).exit_code, 0);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    let out = client
        .exec(
            "s",
            "sleep 300 & echo $!; sh -c 'sleep 300' & echo $!; wait",
            Some(500),
        )
        .await;
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, 128 + 9);
    let pids: Vec<i32> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{out:?}");
    for pid in pids {
        assert_gone(pid).await;
    }
}

#[tokio::test]
async fn background_jobs_do_not_outlive_their_command() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    let out = client.exec("s", "sleep 300 & echo $!", None).await;
    assert_eq!((out.exit_code, out.timed_out), (0, false));
    assert_gone(out.stdout.trim().parse().unwrap()).await;
}

#[tokio::test]
async fn a_descendant_that_escapes_the_group_cannot_hold_the_answer_back() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    // setsid leaves the process group but keeps the output pipe open; the
    // command returns only once the escapee has its own session.
    let out = client
        .exec(
            "s",
            "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' & while [ ! -s escaped.pid ]; do sleep 0.01; done; echo ok",
            Some(10_000),
        )
        .await;
    assert_eq!(
        (out.stdout.as_str(), out.exit_code, out.timed_out),
        ("ok\n", 0, false)
    );
    let pid: i32 = std::fs::read_to_string(daemon.work().join("escaped.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // It really escaped (in production the container's pid namespace ends
    // it); end it here, by its pid.
    assert!(!process_gone(pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_gone(pid).await;
}

#[tokio::test]
async fn kill_session_kills_its_running_command() {
    let daemon = Daemon::start(&[]).await;
    let mut runner = daemon.session("s").await;
    runner
        .send(exec("s", "echo $$ > leader.pid; exec sleep 300", None))
        .await;
    let pid: i32 = wait_for_file(&daemon.work().join("leader.pid"))
        .await
        .trim()
        .parse()
        .unwrap();
    let mut killer = daemon.connect().await;
    assert!(matches!(
        killer.call(kill("s")).await,
        ShellDaemonResponse::SessionKilled { .. }
    ));
    let out = Output::from(runner.recv().await);
    assert_eq!((out.exit_code, out.timed_out), (128 + 9, false));
    assert_gone(pid).await;
}

#[tokio::test]
async fn a_client_that_disconnects_has_its_command_killed() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    client
        .send(exec("s", "echo $$ > leader.pid; exec sleep 300", None))
        .await;
    let pid: i32 = wait_for_file(&daemon.work().join("leader.pid"))
        .await
        .trim()
        .parse()
        .unwrap();
    drop(client);
    assert_gone(pid).await;
}

#[tokio::test]
async fn output_is_capped_and_fits_in_a_frame() {
    let daemon = Daemon::start(&["--output-cap", "1000"]).await;
    let mut client = daemon.session("s").await;
    let out = client
        .exec("s", "head -c 5000 /dev/zero | tr '\\0' a", None)
        .await;
    assert_eq!(out.stdout, "a".repeat(1000));
    assert!(out.truncated);

    // Control characters grow six-fold as JSON; the answer is cut further
    // to fit the frame limit instead of failing.
    let daemon = Daemon::start(&["--output-cap", "100000", "--max-frame-bytes", "65536"]).await;
    let mut client = daemon.session("s").await;
    let out = client
        .exec("s", "head -c 90000 /dev/zero | tr '\\0' '\\1'", None)
        .await;
    assert!(out.truncated);
    assert!(
        !out.stdout.is_empty() && out.stdout.len() * 6 < 65536,
        "{}",
        out.stdout.len()
    );
}

#[tokio::test]
async fn clients_are_served_concurrently() {
    let daemon = Daemon::start(&[]).await;
    // The waiter only finishes once the other session's command ran: if
    // the daemon served one client at a time, it would time out.
    let mut waiter = daemon.session("waiter").await;
    waiter
        .send(exec(
            "waiter",
            "while [ ! -e flag ]; do sleep 0.02; done; echo seen",
            Some(20_000),
        ))
        .await;
    let mut toucher = daemon.session("toucher").await;
    assert_eq!(
        toucher.exec("toucher", "touch flag", None).await.exit_code,
        0
    );
    let out = Output::from(waiter.recv().await);
    assert_eq!((out.stdout.as_str(), out.timed_out), ("seen\n", false));

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let mut client = daemon.session(&format!("c{i}")).await;
        tasks.spawn(async move {
            let out = client
                .exec(
                    &format!("c{i}"),
                    "sleep 0.1; echo $OXYDRA_SHELL_SESSION",
                    None,
                )
                .await;
            (i, out.stdout)
        });
    }
    let mut seen = 0;
    while let Some(result) = tasks.join_next().await {
        let (i, stdout) = result.unwrap();
        assert_eq!(stdout, format!("c{i}\n"));
        seen += 1;
    }
    assert_eq!(seen, 12);
}

#[tokio::test]
async fn connections_over_the_cap_are_told_and_closed() {
    let daemon = Daemon::start(&["--max-connections", "1"]).await;
    let _first = daemon.session("s").await;
    let mut second = daemon.connect().await;
    let message = error_message(second.recv().await);
    assert!(message.contains("maximum of 1 connections"), "{message}");
    assert!(second.recv_or_closed().await.is_none());
}

#[tokio::test]
async fn sigterm_kills_sessions_and_removes_the_socket() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.session("s").await;
    client
        .send(exec("s", "sleep 300 & echo $! > child.pid; wait", None))
        .await;
    let pid: i32 = wait_for_file(&daemon.work().join("child.pid"))
        .await
        .trim()
        .parse()
        .unwrap();
    let (status, _dir, socket) = daemon.terminate().await;
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket file was left behind");
    assert_gone(pid).await;
    assert!(client.recv_or_closed().await.is_none());
}

#[tokio::test]
async fn a_second_daemon_refuses_a_live_socket_and_replaces_a_stale_one() {
    let daemon = Daemon::start(&[]).await;
    let output = tokio::process::Command::new(BINARY)
        .arg("--socket")
        .arg(&daemon.socket)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another shell daemon is already listening"),
        "{stderr}"
    );

    // A stale socket file (its daemon died without cleaning up) is replaced.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut child = tokio::process::Command::new(BINARY)
        .arg("--socket")
        .arg(&stale)
        .env("OXYDRA_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .await
    .unwrap();
    assert!(line.starts_with("shell-daemon listening on "), "{line}");
    child.kill().await.unwrap();
}
