//! The `oxydra-fake-llm` binary, run as a person would run it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::client;

const BINARY: &str = env!("CARGO_BIN_EXE_oxydra-fake-llm");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/conversation.json");
const STARTUP: Duration = Duration::from_secs(20);

#[tokio::test]
async fn serves_the_example_script_and_stops_on_sigterm() {
    let mut child = Command::new(BINARY)
        .args(["--script", EXAMPLE, "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(STARTUP, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the binary announces itself")
        .unwrap()
        .expect("one line on stdout");
    let base_url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        base_url.starts_with("http://127.0.0.1:") && base_url.ends_with("/v1"),
        "{base_url}"
    );

    let answer: Value = client()
        .post(format!("{base_url}/chat/completions"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("Hello!"), "{text}");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(STARTUP, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_missing_script_exits_2_naming_the_file() {
    let missing = "/nonexistent/oxydra/conversation.json";

    let output = Command::new(BINARY)
        .args(["--script", missing])
        .output()
        .await
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(missing), "{stderr}");
}

#[tokio::test]
async fn an_invalid_script_exits_2_with_the_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, r#"{"format": "klingon", "replies": []}"#).unwrap();

    let output = Command::new(BINARY)
        .arg("--script")
        .arg(&path)
        .output()
        .await
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.json"), "{stderr}");
    assert!(stderr.contains("klingon"), "{stderr}");
}
