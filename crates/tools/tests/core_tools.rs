//! The core file, vault and shell tools through the full registry
//! pipeline, in a real temporary workspace. The file and vault tests run
//! with both file runners: the host runner and the default one (the WASM
//! sandbox when the `wasm-isolation` feature is on, as by default).

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sandbox::scrub::Scrubber;
use sandbox::shell_policy::ShellPolicy;
use sandbox::{CapabilityProfile, FileRunner, HostFileRunner, Workspace, default_file_runner};
use tools::file::register_file_tools;
use tools::shell::{MAX_COMMAND_TIMEOUT, ShellBackend, register_shell_tool};
use tools::vault::{AuditEntry, AuditSink, VaultStep, register_vault_tool};
use tools::web::{SchemeOnlyGuard, SearchBackend, WebConfig, register_web_tools};
use tools::{StaticApproval, ToolRegistry, failure_message};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{SafetyTier, ToolCall, ToolContext, ToolError};

#[derive(Debug, Default)]
struct RecordingAudit(Mutex<Vec<AuditEntry>>);

impl AuditSink for RecordingAudit {
    fn record(&self, entry: &AuditEntry) {
        self.0.lock().unwrap().push(entry.clone());
    }
}

/// Which file runner a fixture's file and vault tools use.
#[derive(Debug, Clone, Copy)]
enum Runner {
    Host,
    /// `sandbox::default_file_runner`: the WASM runner by default.
    Default,
}

const RUNNERS: [Runner; 2] = [Runner::Host, Runner::Default];

struct Fixture {
    runner: Runner,
    dir: tempfile::TempDir,
    registry: ToolRegistry,
    audit: Arc<RecordingAudit>,
}

impl Fixture {
    fn new(shell: bool) -> Self {
        Self::with_runner(shell, Runner::Host)
    }

    fn with_runner(shell: bool, runner: Runner) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(&dir.path().join("alice")).unwrap();
        let kind = runner;
        let runner: Arc<dyn FileRunner> = match runner {
            Runner::Host => Arc::new(HostFileRunner::new(workspace.clone())),
            Runner::Default => default_file_runner(workspace.clone()).unwrap(),
        };
        let audit = Arc::new(RecordingAudit::default());
        let mut registry = ToolRegistry::new(
            Arc::new(Scrubber::new()),
            Arc::new(StaticApproval(ApprovalPolicy::Allow)),
        );
        register_file_tools(&mut registry, &workspace, runner.clone()).unwrap();
        register_vault_tool(&mut registry, &workspace, runner, audit.clone()).unwrap();
        let backend = if shell {
            ShellBackend::Host(
                workspace
                    .mount_dir(types::protocol::file_ops::Mount::Shared)
                    .to_path_buf(),
            )
        } else {
            ShellBackend::Disabled
        };
        register_shell_tool(
            &mut registry,
            backend,
            ShellPolicy::default(),
            MAX_COMMAND_TIMEOUT,
        )
        .unwrap();
        let search = SearchBackend::Searxng {
            base_url: "http://127.0.0.1:9/".into(),
        };
        register_web_tools(
            &mut registry,
            WebConfig::default(),
            Some(search),
            Arc::new(SchemeOnlyGuard),
        )
        .unwrap();
        Self {
            runner: kind,
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
            .execute_with_policy(
                &ToolCall {
                    id: "c1".into(),
                    name: name.into(),
                    arguments: arguments.to_string(),
                    signature: None,
                },
                &ToolContext::new("test"),
            )
            .await
    }

    async fn ok(&self, name: &str, arguments: serde_json::Value) -> String {
        self.call(name, arguments.clone())
            .await
            .unwrap_or_else(|e| panic!("{:?}: {name} {arguments}: {e}", self.runner))
    }

    async fn fails(&self, name: &str, arguments: serde_json::Value) -> String {
        match self.call(name, arguments.clone()).await {
            Err(error) => failure_message(&error),
            Ok(output) => panic!("{:?}: {name} {arguments} succeeded: {output}", self.runner),
        }
    }
}

use serde_json::json;

#[tokio::test]
async fn every_core_tool_is_registered_with_its_tier() {
    let fx = Fixture::new(true);
    let tiers: Vec<_> = fx
        .registry
        .names()
        .map(|n| (n.to_owned(), fx.registry.safety_tier(n).unwrap()))
        .collect();
    use SafetyTier::*;
    assert_eq!(
        tiers,
        [
            ("file_delete".to_owned(), SideEffecting),
            ("file_edit".to_owned(), SideEffecting),
            ("file_list".to_owned(), ReadOnly),
            ("file_read".to_owned(), ReadOnly),
            ("file_search".to_owned(), ReadOnly),
            ("file_write".to_owned(), SideEffecting),
            ("shell_exec".to_owned(), Privileged),
            ("vault_copyto".to_owned(), SideEffecting),
            ("web_fetch".to_owned(), SideEffecting),
            ("web_search".to_owned(), SideEffecting),
        ]
    );
    let shell = fx
        .registry
        .declarations()
        .into_iter()
        .find(|d| d.name == "shell_exec")
        .unwrap();
    assert!(
        shell
            .description
            .contains("Allowed programs: awk, cargo, cat"),
        "{}",
        shell.description
    );
    // Without a shell backend the tool does not exist at all.
    assert!(
        !Fixture::new(false)
            .registry
            .names()
            .any(|n| n == "shell_exec")
    );
}

#[tokio::test]
async fn file_tools_work_end_to_end() {
    for runner in RUNNERS {
        let fx = Fixture::with_runner(false, runner);
        assert_eq!(
            fx.ok(
                "file_write",
                json!({"path": "/shared/notes/todo.md", "content": "buy milk\ncall bob\n"})
            )
            .await,
            "Wrote 18 bytes to /shared/notes/todo.md"
        );
        assert_eq!(
            fx.ok("file_read", json!({"path": "/shared/notes/todo.md"}))
                .await,
            "buy milk\ncall bob\n"
        );
        assert_eq!(
            fx.ok(
                "file_read",
                json!({"path": "notes/todo.md", "start_line": 2})
            )
            .await,
            "call bob\n"
        );
        assert_eq!(
            fx.ok(
                "file_edit",
                json!({"path": "/shared/notes/todo.md", "old_text": "bob", "new_text": "alice"})
            )
            .await,
            "Edited /shared/notes/todo.md"
        );
        assert_eq!(
            fx.ok(
                "file_search",
                json!({"path": "/shared", "pattern": "alice"})
            )
            .await,
            "/shared/notes/todo.md:2: call alice"
        );
        assert_eq!(
            fx.ok("file_list", json!({"path": "/shared/notes"})).await,
            "todo.md (20 bytes)"
        );
        assert_eq!(
            fx.ok("file_list", json!({"path": "/tmp"})).await,
            "(empty directory)"
        );
        assert_eq!(
            fx.ok("file_delete", json!({"path": "/shared/notes"})).await,
            "Deleted directory /shared/notes and its contents"
        );
        assert!(!fx.host("shared/notes").exists());
    }
}

#[tokio::test]
async fn file_tools_fail_clearly() {
    for runner in RUNNERS {
        let fx = Fixture::with_runner(false, runner);
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
                "file_edit",
                json!({"path": "/shared/a.txt", "old_text": "nope", "new_text": "x"}),
                "not found",
            ),
            (
                "file_write",
                json!({"path": "/vault/planted", "content": "x"}),
                "it may only use /shared, /tmp",
            ),
            (
                "file_delete",
                json!({"path": "/vault/key"}),
                "policy violation",
            ),
            (
                "file_read",
                json!({"path": "/shared/../../../etc/passwd"}),
                "climbs above /shared",
            ),
            (
                "file_read",
                json!({"path": "/etc/passwd"}),
                "start with /shared, /tmp or /vault",
            ),
            (
                "file_search",
                json!({"path": "/shared", "pattern": "("}),
                "invalid search pattern",
            ),
            ("file_read", json!({"path": 7}), "field 'path'"),
            ("file_delete", json!({"path": "/shared"}), "workspace mount"),
        ];
        for (tool, arguments, expected) in cases {
            let message = fx.fails(tool, arguments.clone()).await;
            assert!(message.starts_with("Tool execution failed: "), "{message}");
            assert!(
                message.contains(expected),
                "{:?}: {tool} {arguments}: {message}",
                fx.runner
            );
        }
        assert_eq!(fs::read_to_string(fx.host("vault/key")).unwrap(), "secret");
        assert!(!fx.host("vault/planted").exists());
    }
}

#[tokio::test]
async fn vault_copy_runs_two_audited_steps() {
    for runner in RUNNERS {
        let fx = Fixture::with_runner(false, runner);
        fx.put("vault/creds.json", "{\"user\": \"alice\"}");
        let output = fx
            .ok(
                "vault_copyto",
                json!({"source": "/vault/creds.json", "destination": "/tmp/creds.json"}),
            )
            .await;
        assert!(
            output.starts_with(
                "Copied 17 bytes from /vault/creds.json to /tmp/creds.json (operation "
            ),
            "{output}"
        );
        assert_eq!(
            fs::read_to_string(fx.host("tmp/creds.json")).unwrap(),
            "{\"user\": \"alice\"}"
        );
        let audit = fx.audit.0.lock().unwrap().clone();
        assert_eq!(audit.len(), 2);
        assert_eq!(audit[0].operation_id, audit[1].operation_id);
        assert!(output.contains(&audit[0].operation_id));
        assert_eq!(
            (
                audit[0].step,
                audit[0].profile,
                audit[0].path.as_str(),
                audit[0].outcome.clone()
            ),
            (
                VaultStep::Read,
                CapabilityProfile::VaultReadStep,
                "/vault/creds.json",
                Ok(17)
            )
        );
        assert_eq!(
            (
                audit[1].step,
                audit[1].profile,
                audit[1].path.as_str(),
                audit[1].outcome.clone()
            ),
            (
                VaultStep::Write,
                CapabilityProfile::VaultWriteStep,
                "/tmp/creds.json",
                Ok(17)
            )
        );
    }
}

#[tokio::test]
async fn vault_copy_refuses_wrong_directions() {
    for runner in RUNNERS {
        let fx = Fixture::with_runner(false, runner);
        fx.put("shared/x", "x");
        fx.put("vault/key", "k");
        let message = fx
            .fails(
                "vault_copyto",
                json!({"source": "/shared/x", "destination": "/tmp/y"}),
            )
            .await;
        assert!(message.contains("may only use /vault"), "{message}");
        let message = fx
            .fails(
                "vault_copyto",
                json!({"source": "/vault/key", "destination": "/vault/copy"}),
            )
            .await;
        assert!(message.contains("may only use /shared, /tmp"), "{message}");
        assert!(
            fx.audit.0.lock().unwrap().is_empty(),
            "refused calls never ran a step"
        );
    }
}

#[tokio::test]
async fn shell_runs_allowed_commands_and_refuses_the_rest() {
    let fx = Fixture::new(true);
    fx.put("shared/hello.txt", "hello from the workspace\n");
    let output = fx
        .ok("shell_exec", json!({"command": "cat hello.txt"}))
        .await;
    assert_eq!(output, "exit code: 0\nstdout:\nhello from the workspace");
    let output = fx
        .ok("shell_exec", json!({"command": "ls no-such-file"}))
        .await;
    assert!(output.starts_with("exit code: 2\nstderr:\n"), "{output}");
    for command in [
        "touch a; touch b",
        "cat hello.txt > copy.txt",
        "cat $(ls)",
        "bash -c 'touch x'",
    ] {
        let message = fx.fails("shell_exec", json!({"command": command})).await;
        assert!(message.contains("policy violation"), "{command}: {message}");
    }
    for leftover in ["a", "b", "copy.txt", "x"] {
        assert!(
            !fx.host(&format!("shared/{leftover}")).exists(),
            "{leftover} was created"
        );
    }
}

#[tokio::test]
async fn shell_commands_see_no_host_environment() {
    let fx = Fixture::new(true);
    fx.put("shared/env.py", "import os\nprint(sorted(os.environ))\n");
    let output = fx
        .ok("shell_exec", json!({"command": "python3 env.py"}))
        .await;
    // Cargo gives every test process CARGO_* variables; none may leak.
    assert!(std::env::var("CARGO_PKG_NAME").is_ok());
    assert!(!output.contains("CARGO"), "{output}");
    assert!(
        output.contains("'HOME'") && output.contains("'PATH'"),
        "{output}"
    );
}

#[tokio::test]
async fn shell_timeout_kills_the_whole_process_group() {
    let fx = Fixture::new(true);
    // The script starts a grandchild that would outlive a plain kill.
    fx.put(
        "shared/spin.py",
        "import subprocess, time\n\
         child = subprocess.Popen(['python3', '-c', 'import time; time.sleep(600)'])\n\
         open('grandchild.pid', 'w').write(str(child.pid))\n\
         print('started', flush=True)\n\
         time.sleep(600)\n",
    );
    let output = fx
        .ok(
            "shell_exec",
            json!({"command": "python3 spin.py", "timeout_secs": 1}),
        )
        .await;
    assert!(output.contains("stdout:\nstarted"), "{output}");
    assert!(
        output.contains("[timed out after 1s; the command and its children were killed]"),
        "{output}"
    );
    let pid = fs::read_to_string(fx.host("shared/grandchild.pid")).unwrap();
    // Killed processes may linger briefly as zombies of init; wait for them.
    for _ in 0..50 {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.is_empty() || status.contains("State:\tZ") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("grandchild {pid} survived the timeout");
}

#[tokio::test]
async fn refused_urls_never_reach_web_fetch() {
    let fx = Fixture::new(false);
    for (url, expected) in [
        ("file:///etc/passwd", "policy violation"),
        ("http://user:secret@127.0.0.1:9/", "policy violation"),
        ("not a url", "not a valid URL"),
    ] {
        let message = fx.fails("web_fetch", json!({"url": url})).await;
        assert!(message.contains(expected), "{url}: {message}");
        assert!(!message.contains("secret"), "{message}");
    }
}

#[tokio::test]
async fn a_failed_vault_step_is_audited_with_its_reason() {
    for runner in RUNNERS {
        let fx = Fixture::with_runner(false, runner);
        let message = fx
            .fails(
                "vault_copyto",
                json!({"source": "/vault/missing", "destination": "/tmp/copy"}),
            )
            .await;
        assert!(
            message.contains("/vault/missing does not exist"),
            "{runner:?}: {message}"
        );
        let audit = fx.audit.0.lock().unwrap().clone();
        assert_eq!(audit.len(), 1, "{runner:?}: step 2 never ran: {audit:?}");
        assert_eq!(audit[0].step, VaultStep::Read);
        assert!(
            matches!(&audit[0].outcome, Err(reason) if reason.contains("does not exist")),
            "{runner:?}: {:?}",
            audit[0].outcome
        );
        assert!(!fx.host("tmp/copy").exists());
    }
}
