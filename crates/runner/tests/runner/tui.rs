//! `--tui` on a running guest, in a real terminal: a private tmux server
//! runs `oxydra-runner --tui`; the test reads the screen, types a message,
//! sees the agent's answer, and quits with Ctrl-D.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Fixture, PATIENCE, RUNNER, echo_llm};

/// A private tmux server, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "tui"])
    }

    /// Waits until the screen shows `text`.
    async fn wait_for(&self, text: &str, exit_file: &Path) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the TUI never showed {text:?}; screen:\n{screen}\nexit: {:?}",
                std::fs::read_to_string(exit_file).ok()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn tui_connects_to_the_running_guest_and_chats() {
    if !tmux_available() {
        eprintln!("tmux is not installed: the interactive --tui test needs a terminal");
        return;
    }
    let _turn = crate::GUESTS.lock().await;
    let llm = echo_llm().await;
    let fixture = Fixture::new(&llm.base_url());
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;

    let exit_file = fixture.path().join("tui.exit");
    let script = format!(
        "cd '{dir}' && env -i PATH=\"$PATH\" HOME='{dir}' TERM=xterm-256color '{RUNNER}' --config runner.toml --tui 2>tui.err; echo \"exit=$?\" > '{exit}'; sleep 30",
        dir = fixture.path().display(),
        exit = exit_file.display(),
    );
    let tmux = Tmux {
        socket: format!("oxydra-runner-test-{}", std::process::id()),
    };
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
        "-c",
        &script,
    ]);
    tmux.wait_for("connected", &exit_file).await;
    tmux.run(&["send-keys", "-t", "tui", "-l", "hello from the terminal"]);
    tmux.run(&["send-keys", "-t", "tui", "Enter"]);
    tmux.wait_for("You said: hello from the terminal", &exit_file)
        .await;
    tmux.run(&["send-keys", "-t", "tui", "C-d"]);
    let deadline = Instant::now() + PATIENCE;
    while !exit_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the TUI did not quit; screen:\n{}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = std::fs::read_to_string(&exit_file).unwrap();
    assert_eq!(
        exit.trim(),
        "exit=0",
        "{}",
        std::fs::read_to_string(fixture.path().join("tui.err")).unwrap_or_default()
    );
    runner.assert_alive();
    assert_eq!(runner.terminate().await, Some(0));
}
