//! The file tools and `vault_copyto` through the full registry pipeline
//! with the default file runner, which is the WASM runner when the
//! `wasm-isolation` feature is on (the default): the same behaviour as with
//! the host runner (`core_tools.rs`), and the vault copy's two audited
//! steps each run in their own sandbox.
#![cfg(feature = "wasm-isolation")]

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sandbox::scrub::Scrubber;
use sandbox::{CapabilityProfile, Workspace, default_file_runner};
use serde_json::json;
use tools::file::register_file_tools;
use tools::vault::{AuditEntry, AuditSink, VaultStep, register_vault_tool};
use tools::{StaticApproval, ToolRegistry, failure_message};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{ToolCall, ToolError};

#[derive(Debug, Default)]
struct RecordingAudit(Mutex<Vec<AuditEntry>>);

impl AuditSink for RecordingAudit {
    fn record(&self, entry: &AuditEntry) {
        self.0.lock().unwrap().push(entry.clone());
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    registry: ToolRegistry,
    audit: Arc<RecordingAudit>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(&dir.path().join("alice")).unwrap();
        let runner = default_file_runner(workspace.clone()).unwrap();
        assert!(
            format!("{runner:?}").starts_with("WasmWasiToolRunner"),
            "the default runner is the WASM runner: {runner:?}"
        );
        let audit = Arc::new(RecordingAudit::default());
        let mut registry = ToolRegistry::new(
            Arc::new(Scrubber::new()),
            Arc::new(StaticApproval(ApprovalPolicy::Allow)),
        );
        register_file_tools(&mut registry, &workspace, runner.clone()).unwrap();
        register_vault_tool(&mut registry, &workspace, runner, audit.clone()).unwrap();
        Self {
            dir,
            registry,
            audit,
        }
    }

    fn host(&self, path: &str) -> PathBuf {
        self.dir
            .path()
            .join("alice")
            .join(path.trim_start_matches('/'))
    }

    fn put(&self, path: &str, content: &str) {
        let host = self.host(path);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(host, content).unwrap();
    }

    async fn call(&self, name: &str, arguments: serde_json::Value) -> Result<String, ToolError> {
        self.registry
            .execute_with_policy(&ToolCall {
                id: "c1".into(),
                name: name.into(),
                arguments: arguments.to_string(),
            })
            .await
    }

    async fn ok(&self, name: &str, arguments: serde_json::Value) -> String {
        self.call(name, arguments.clone())
            .await
            .unwrap_or_else(|e| panic!("{name} {arguments}: {e}"))
    }

    async fn fails(&self, name: &str, arguments: serde_json::Value) -> String {
        match self.call(name, arguments.clone()).await {
            Err(error) => failure_message(&error),
            Ok(output) => panic!("{name} {arguments} succeeded: {output}"),
        }
    }
}

#[tokio::test]
async fn file_tools_work_end_to_end_in_the_sandbox() {
    let fx = Fixture::new();
    let cases = [
        (
            "file_write",
            json!({"path": "/shared/notes/todo.md", "content": "buy milk\ncall bob\n"}),
            "Wrote 18 bytes to /shared/notes/todo.md",
        ),
        (
            "file_read",
            json!({"path": "/shared/notes/todo.md"}),
            "buy milk\ncall bob\n",
        ),
        (
            "file_read",
            json!({"path": "notes/todo.md", "start_line": 2}),
            "call bob\n",
        ),
        (
            "file_edit",
            json!({"path": "/shared/notes/todo.md", "old_text": "bob", "new_text": "alice"}),
            "Edited /shared/notes/todo.md",
        ),
        (
            "file_search",
            json!({"path": "/shared", "pattern": "alice"}),
            "/shared/notes/todo.md:2: call alice",
        ),
        (
            "file_list",
            json!({"path": "/shared/notes"}),
            "todo.md (20 bytes)",
        ),
        ("file_list", json!({"path": "/tmp"}), "(empty directory)"),
        (
            "file_delete",
            json!({"path": "/shared/notes"}),
            "Deleted directory /shared/notes and its contents",
        ),
    ];
    for (tool, arguments, expected) in cases {
        assert_eq!(fx.ok(tool, arguments).await, expected, "{tool}");
    }
    assert!(!fx.host("shared/notes").exists());
}

#[tokio::test]
async fn file_tools_fail_clearly_in_the_sandbox() {
    let fx = Fixture::new();
    fx.put("shared/a.txt", "same same");
    fx.put("vault/key", "secret");
    let cases = [
        (
            "file_read",
            json!({"path": "/shared/missing.txt"}),
            "/shared/missing.txt does not exist",
        ),
        (
            "file_edit",
            json!({"path": "/shared/a.txt", "old_text": "same", "new_text": "x"}),
            "occurs 2 times",
        ),
        (
            "file_write",
            json!({"path": "/vault/planted", "content": "x"}),
            "it may only use /shared, /tmp",
        ),
        (
            "file_read",
            json!({"path": "/shared/../../../etc/passwd"}),
            "climbs above /shared",
        ),
        ("file_delete", json!({"path": "/shared"}), "workspace mount"),
    ];
    for (tool, arguments, expected) in cases {
        let message = fx.fails(tool, arguments.clone()).await;
        assert!(message.starts_with("Tool execution failed: "), "{message}");
        assert!(message.contains(expected), "{tool} {arguments}: {message}");
    }
    assert_eq!(fs::read_to_string(fx.host("vault/key")).unwrap(), "secret");
    assert!(!fx.host("vault/planted").exists());
}

#[tokio::test]
async fn vault_copy_runs_two_audited_sandboxed_steps() {
    let fx = Fixture::new();
    fx.put("vault/creds.json", "{\"user\": \"alice\"}");
    let output = fx
        .ok(
            "vault_copyto",
            json!({"source": "/vault/creds.json", "destination": "/tmp/creds.json"}),
        )
        .await;
    assert!(
        output.starts_with("Copied 17 bytes from /vault/creds.json to /tmp/creds.json (operation "),
        "{output}"
    );
    assert_eq!(
        fs::read_to_string(fx.host("tmp/creds.json")).unwrap(),
        "{\"user\": \"alice\"}"
    );
    let audit = fx.audit.0.lock().unwrap().clone();
    let lines: Vec<_> = audit
        .iter()
        .map(|e| (e.step, e.profile, e.path.as_str(), e.outcome.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (
                VaultStep::Read,
                CapabilityProfile::VaultReadStep,
                "/vault/creds.json",
                Ok(17)
            ),
            (
                VaultStep::Write,
                CapabilityProfile::VaultWriteStep,
                "/tmp/creds.json",
                Ok(17)
            ),
        ]
    );
    assert_eq!(audit[0].operation_id, audit[1].operation_id);
    assert!(output.contains(&audit[0].operation_id));
}

#[tokio::test]
async fn a_failed_vault_step_is_audited_with_its_reason() {
    let fx = Fixture::new();
    let message = fx
        .fails(
            "vault_copyto",
            json!({"source": "/vault/missing", "destination": "/tmp/copy"}),
        )
        .await;
    assert!(
        message.contains("/vault/missing does not exist"),
        "{message}"
    );
    let audit = fx.audit.0.lock().unwrap().clone();
    assert_eq!(audit.len(), 1, "step 2 never ran: {audit:?}");
    assert_eq!(audit[0].step, VaultStep::Read);
    assert!(
        matches!(&audit[0].outcome, Err(reason) if reason.contains("does not exist")),
        "{:?}",
        audit[0].outcome
    );
    assert!(!fx.host("tmp/copy").exists());
}
