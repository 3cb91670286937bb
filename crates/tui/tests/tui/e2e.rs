//! The real `oxydra-tui` binary: inside tmux (80×24) against the scripted
//! gateway, and without an endpoint file.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::server::{REPLY, ScriptedGateway};
use types::protocol::gateway::GatewayClientFrame;

const BIN: &str = env!("CARGO_BIN_EXE_oxydra-tui");

/// A tmux server on its own socket, killed (only it) when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|out| out.status.success())
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn capture(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "oxy"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `done` holds, failing with the last screen
    /// after the deadline.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.capture();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_a_real_terminal() {
    if !Tmux::available() {
        println!("skipped: tmux is not installed (apt-get install tmux)");
        return;
    }
    let gateway = ScriptedGateway::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let endpoint_file = workspace.path().join("alice/tmp/gateway-endpoint");
    std::fs::create_dir_all(endpoint_file.parent().unwrap()).unwrap();
    std::fs::write(&endpoint_file, gateway.endpoint.to_line()).unwrap();

    let tmux = Tmux {
        socket: format!("oxydra-tui-e2e-{}", std::process::id()),
    };
    // After the TUI exits, the shell prints its exit status on the normal
    // screen: seeing it proves the alternate screen was left.
    let command = format!(
        "{} --endpoint-file {}; echo TUI-EXITED=$?; sleep 60",
        shell_quote(BIN),
        shell_quote(endpoint_file.to_str().unwrap())
    );
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "oxy",
        "-x",
        "80",
        "-y",
        "24",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let tmux = tokio::task::spawn_blocking(move || {
        let screen = tmux.wait_for("the connection", |s| {
            s.contains("● connected") && s.contains("gateway healthy")
        });
        assert!(screen.contains("session s-1"), "{screen}");
        assert!(screen.contains("gpt-4.1"), "{screen}");

        tmux.run(&["send-keys", "-t", "oxy", "-l", "what is the answer?"]);
        tmux.run(&["send-keys", "-t", "oxy", "Enter"]);
        let answer = REPLY.concat();
        let screen = tmux.wait_for("the streamed answer", |s| {
            s.contains(&format!("agent: {answer}")) && s.contains("49 tok")
        });
        assert!(screen.contains("you: what is the answer?"), "{screen}");
        assert!(!screen.contains('▌'), "the answer is complete: {screen}");

        // A new session and the session list.
        tmux.run(&["send-keys", "-t", "oxy", "-l", "/new"]);
        tmux.run(&["send-keys", "-t", "oxy", "Enter"]);
        tmux.wait_for("the new session", |s| {
            s.contains("new session s-2") && s.contains("session s-2 │")
        });
        tmux.run(&["send-keys", "-t", "oxy", "-l", "/sessions"]);
        tmux.run(&["send-keys", "-t", "oxy", "Enter"]);
        tmux.wait_for("the session list", |s| {
            s.contains("2 sessions:") && s.contains("* s-2")
        });

        // A smaller window: the status bar stays on the last row.
        tmux.run(&["resize-window", "-t", "oxy", "-x", "60", "-y", "16"]);
        tmux.wait_for("the resized layout", |s| {
            let rows: Vec<&str> = s.lines().collect();
            rows.len() == 16
                && rows[15].starts_with("● connected")
                && rows.iter().all(|r| r.chars().count() <= 60)
        });

        // Idle: Ctrl+C quits, and the terminal is back to normal.
        tmux.run(&["send-keys", "-t", "oxy", "C-c"]);
        tmux.wait_for("the exit", |s| s.contains("TUI-EXITED=0"));
        tmux
    })
    .await
    .unwrap();
    drop(tmux);

    let frames = gateway.seen.lock().unwrap().frames.clone();
    assert!(
        matches!(&frames[0], GatewayClientFrame::Hello { user_id, token, .. }
        if user_id.as_str() == "alice" && token.expose() == crate::server::TOKEN)
    );
    assert!(frames.contains(&GatewayClientFrame::SendTurn {
        content: "what is the answer?".into(),
        client_turn_id: None
    }));
    assert!(frames.contains(&GatewayClientFrame::NewSession));
    assert!(frames.contains(&GatewayClientFrame::ListSessions));
}

#[test]
fn a_missing_endpoint_file_says_the_guest_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob/tmp/gateway-endpoint");
    let out = Command::new(BIN)
        .arg("--endpoint-file")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the Oxydra guest for user 'bob' is not running"),
        "{stderr}"
    );
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("oxydra-runner --config runner.toml --user bob start"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "the terminal was never touched");
}
