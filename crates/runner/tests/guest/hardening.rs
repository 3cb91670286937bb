//! Landlock in the real guest: `oxydra-vm` reports the hardening that took
//! effect, and cannot open a file in another user's workspace even when its
//! own configuration asks it to.

use crate::{agent_config, envelope, finish, frame, spawn_vm};

#[tokio::test]
async fn the_guest_cannot_reach_another_users_workspace() {
    let llm = test_support::FakeLlm::start(test_support::WireFormat::Openai)
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let alice = home.path().join("alice");
    let bob = home.path().join("bob");
    std::fs::create_dir_all(&bob).unwrap();
    let bobs_db = bob.join("oxydra_memory.db");

    // Alice's guest is told to keep its memory in Bob's workspace.
    let mut config = agent_config(&llm);
    config.memory.db_path = bobs_db.clone();
    let (code, stderr) =
        finish(spawn_vm(home.path(), &frame(&envelope(&alice, config))).await).await;

    assert!(stderr.contains("hardening: landlock"), "{stderr}");
    assert!(stderr.contains("enforced"), "{stderr}");
    assert!(stderr.contains("no_new_privs set"), "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot open memory"), "{stderr}");
    assert!(!bobs_db.exists(), "nothing was created in bob's workspace");
    assert!(std::fs::read_dir(&bob).unwrap().next().is_none());
}
