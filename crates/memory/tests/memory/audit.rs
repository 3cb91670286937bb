//! The guest side of the audit log: records survive reopening and
//! forgetting the session they concern, and read back in time order.

use types::{AuditDecision, AuditKind, AuditLog, AuditRecord, Memory};

use crate::open;

fn record(at_ms: i64, kind: AuditKind, decision: Option<AuditDecision>) -> AuditRecord {
    AuditRecord {
        at_ms,
        user: "alice".into(),
        kind,
        actor: "gateway:alice".into(),
        subject: "shell_exec".into(),
        decision,
        reason: None,
        session_id: Some("s1".into()),
        request_id: Some("approval-1".into()),
        arguments_sha256: Some("0".repeat(64)),
        arguments_bytes: Some(17),
        sender: None,
    }
}

#[tokio::test]
async fn audit_records_are_kept_in_time_order_and_outlive_their_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let memory = open(&path).await;
    memory
        .store(
            "s1",
            1,
            serde_json::json!({"role": "user", "content": "hi"}),
        )
        .await
        .unwrap();
    let later = record(
        2_000,
        AuditKind::ApprovalDecided,
        Some(AuditDecision::Approved),
    );
    let earlier = record(1_000, AuditKind::ApprovalRequested, None);
    memory.append_audit(&later).await.unwrap();
    memory.append_audit(&earlier).await.unwrap();
    memory.forget("s1").await.unwrap();
    drop(memory);

    let memory = open(&path).await;
    assert_eq!(
        memory.audit_records(None).await.unwrap(),
        [earlier.clone(), later.clone()]
    );
    assert_eq!(memory.audit_records(Some(1_500)).await.unwrap(), [later]);
    assert!(memory.audit_records(Some(5_000)).await.unwrap().is_empty());
}
