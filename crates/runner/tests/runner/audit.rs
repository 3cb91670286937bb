//! `oxydra-runner audit`: the runner's own records and the approval
//! decisions in the user's memory database, merged by time, as text or
//! JSON lines, from a point in time.

use std::sync::Arc;

use memory::{LexicalEmbedder, LibsqlMemory, MemoryOptions};
use types::{AuditDecision, AuditKind, AuditLog, AuditRecord};

use crate::Fixture;

fn record(
    at_ms: i64,
    kind: AuditKind,
    subject: &str,
    decision: Option<AuditDecision>,
) -> AuditRecord {
    AuditRecord {
        at_ms,
        user: "alice".into(),
        kind,
        actor: "gateway:alice".into(),
        subject: subject.into(),
        decision,
        reason: None,
        session_id: Some("s-1".into()),
        request_id: Some("approval-1".into()),
        arguments_sha256: Some("ab".repeat(32)),
        arguments_bytes: Some(23),
        sender: None,
    }
}

#[tokio::test]
async fn audit_merges_the_runner_file_and_the_guest_database_by_time() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    let workspace = fixture.workspace();
    std::fs::create_dir_all(&workspace).unwrap();
    // What a guest records: its memory database beside shared/ and tmp/.
    let memory = LibsqlMemory::open(
        MemoryOptions::local(workspace.join("oxydra_memory.db")),
        Arc::new(LexicalEmbedder::new()),
    )
    .await
    .unwrap();
    for record in [
        record(1_000, AuditKind::ApprovalRequested, "shell_exec", None),
        record(
            3_000,
            AuditKind::ApprovalDecided,
            "shell_exec",
            Some(AuditDecision::Approved),
        ),
    ] {
        memory.append_audit(&record).await.unwrap();
    }
    drop(memory);
    let runner_event = record(
        2_000,
        AuditKind::ApprovalDecided,
        "egress",
        Some(AuditDecision::Denied),
    );
    fixture.write(
        "workspaces/.runner/audit/alice.jsonl",
        &format!("{}\n", serde_json::to_string(&runner_event).unwrap()),
    );

    let done = fixture.run(&["audit", "--json"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let lines: Vec<serde_json::Value> = done
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let order: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap(),
                l["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("guest", "shell_exec"),
            ("runner", "egress"),
            ("guest", "shell_exec")
        ]
    );
    assert_eq!(lines[2]["decision"], "approved");

    let done = fixture.run(&["audit", "--since", "1970-01-01T00:00:02Z"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let text: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[1].contains("shell_exec") && text[1].contains("→ approved"),
        "{text:?}"
    );
    assert!(text[1].contains("by gateway:alice"), "{text:?}");

    let done = fixture.run(&["audit", "--since", "last tuesday"]);
    assert_ne!(done.code, Some(0));
    assert!(
        done.stderr.contains("--since 'last tuesday'"),
        "{}",
        done.stderr
    );
}
