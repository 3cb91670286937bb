//! Bad envelopes and bad configuration: each ends the guest with exit
//! code 2 and a message that says what is wrong, before anything is
//! started or written.

use types::protocol::bootstrap::MAX_ENVELOPE_BYTES;
use types::protocol::framing::encode_frame;

use crate::{agent_config, envelope, finish, frame, spawn_vm};

async fn rejected(stdin: &[u8], expected: &str) {
    let home = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(spawn_vm(home.path(), stdin).await).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("oxydra-vm: "), "{stderr}");
    assert!(
        stderr.contains(expected),
        "expected '{expected}' in: {stderr}"
    );
}

#[tokio::test]
async fn envelope_framing_errors_exit_2_with_a_clear_message() {
    rejected(b"", "after 0 of the 4 length-prefix bytes").await;
    let mut truncated = 500u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(b"{\"user_id\":");
    rejected(&truncated, "expected 500 payload bytes, received 11").await;
    let oversized = ((MAX_ENVELOPE_BYTES + 1) as u32).to_be_bytes();
    rejected(
        &oversized,
        "frame of 1048577 bytes exceeds the limit of 1048576 bytes",
    )
    .await;
    rejected(
        &encode_frame(b"{not json", 64).unwrap(),
        "the bootstrap envelope on stdin is invalid",
    )
    .await;
    rejected(
        &encode_frame(br#"{"user_id":"alice"}"#, 64).unwrap(),
        "missing field",
    )
    .await;
}

#[tokio::test]
async fn no_envelope_at_all_says_how_the_guest_is_started() {
    let home = tempfile::tempdir().unwrap();
    let child = crate::vm_command(home.path()).spawn().unwrap();
    let (code, stderr) = finish(child).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--bootstrap-stdin"), "{stderr}");
    assert!(stderr.contains("OXYDRA_BOOTSTRAP_FILE"), "{stderr}");
}

#[tokio::test]
async fn compiling_ahead_without_a_usable_cache_says_why_and_compiles_nothing() {
    let home = tempfile::tempdir().unwrap();
    let compile_ahead = |env: &[(&str, &std::ffi::OsStr)]| {
        let mut command = crate::vm_command(home.path());
        command.envs(env.iter().copied()).arg("--compile-wasm");
        finish(command.spawn().unwrap())
    };
    // Neither variable names an absolute directory: no cache to keep the
    // compiled module in.
    let (code, stderr) = compile_ahead(&[
        ("XDG_CACHE_HOME", "relative/cache".as_ref()),
        ("HOME", "relative-home".as_ref()),
    ])
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("no compiled-module cache: set XDG_CACHE_HOME or HOME"),
        "{stderr}"
    );
    // A cache path that is a file, not a directory.
    let file = home.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let (code, stderr) = compile_ahead(&[("XDG_CACHE_HOME", file.as_os_str())]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the compiled-module cache cannot be used") && stderr.contains("not-a-dir"),
        "{stderr}"
    );
    // It is a step of its own, never mixed with serving.
    let child = crate::vm_command(home.path())
        .args(["--compile-wasm", "--bootstrap-stdin"])
        .spawn()
        .unwrap();
    let (code, stderr) = finish(child).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[tokio::test]
async fn invalid_configuration_exits_2_naming_the_key() {
    let llm = test_support::FakeLlm::start(test_support::WireFormat::Openai)
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let workspace = home.path().join("alice");

    let mut config = agent_config(&llm);
    config.runtime.max_turns = 0;
    let (code, stderr) =
        finish(spawn_vm(home.path(), &frame(&envelope(&workspace, config))).await).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("max_turns"), "{stderr}");

    let mut config = agent_config(&llm);
    config.selection.model = Some("gpt-0-imaginary".into());
    let (code, stderr) =
        finish(spawn_vm(home.path(), &frame(&envelope(&workspace, config))).await).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("gpt-0-imaginary"), "{stderr}");
    assert!(
        !channels::endpoint_file_in(&workspace).exists(),
        "no endpoint file for a guest that never started"
    );
    assert!(llm.requests().is_empty());
}
