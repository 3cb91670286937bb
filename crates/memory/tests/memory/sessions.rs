//! Sessions created before their first event (the gateway's session
//! directory), looked up and touched, across reopening.

use types::{Memory, MemoryError};

use crate::open;

#[tokio::test]
async fn sessions_are_created_looked_up_and_touched_forward_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    memory.create_session("s-1", 1_000).await.unwrap();
    let err = memory.create_session("s-1", 2_000).await.unwrap_err();
    assert!(err.to_string().contains("'s-1' already exists"), "{err}");
    let info = memory.session("s-1").await.unwrap().unwrap();
    assert_eq!(
        (info.created_at, info.updated_at, info.last_sequence),
        (1_000, 1_000, 0)
    );
    assert_eq!(memory.session("nope").await.unwrap(), None);

    memory.touch_session_at("s-1", 5_000).await.unwrap();
    memory.touch_session_at("s-1", 3_000).await.unwrap();
    assert_eq!(
        memory.session("s-1").await.unwrap().unwrap().updated_at,
        5_000
    );
    let err = memory.touch_session_at("ghost", 1).await.unwrap_err();
    assert!(
        matches!(err, MemoryError::SessionNotFound(ref id) if id == "ghost"),
        "{err}"
    );
    assert!(memory.create_session(" ", 1).await.is_err());

    // The first event of a created session keeps its creation time.
    memory
        .store(
            "s-1",
            1,
            serde_json::json!({"role": "user", "content": "hi"}),
        )
        .await
        .unwrap();
    drop(memory);
    let reopened = open(&path).await;
    let info = reopened.session("s-1").await.unwrap().unwrap();
    assert_eq!((info.created_at, info.last_sequence), (1_000, 1));
    assert!(info.updated_at >= 5_000);
}
