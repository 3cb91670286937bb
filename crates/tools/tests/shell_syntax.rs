//! `shell_exec` with each shell syntax, through the registry and a real
//! `sh` on the host: compound lines run as one call, a refused command
//! refuses the whole line before anything runs, and the description tells
//! the model which syntax is in force.

use std::path::Path;
use std::sync::Arc;

use sandbox::scrub::Scrubber;
use sandbox::shell_policy::{ShellPolicy, ShellWorkspace};
use serde_json::json;
use tools::shell::{MAX_COMMAND_TIMEOUT, ShellBackend, register_shell_tool};
use tools::{StaticApproval, ToolRegistry, failure_message};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{ToolCall, ToolContext};

struct Shell {
    dir: tempfile::TempDir,
    registry: ToolRegistry,
}

impl Shell {
    /// A host shell in `<tmp>/alice/shared`, the workspace being `alice`.
    fn new(compound: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("alice/shared");
        std::fs::create_dir_all(shared.join("sub")).unwrap();
        let mut policy = ShellPolicy::default();
        if compound {
            policy = policy.compound(ShellWorkspace::new(dir.path().join("alice"), &shared));
        }
        let mut registry = ToolRegistry::new(
            Arc::new(Scrubber::new()),
            Arc::new(StaticApproval(ApprovalPolicy::Allow)),
        );
        register_shell_tool(
            &mut registry,
            ShellBackend::Host(shared),
            policy,
            MAX_COMMAND_TIMEOUT,
        )
        .unwrap();
        Self { dir, registry }
    }

    fn shared(&self) -> std::path::PathBuf {
        self.dir.path().join("alice/shared")
    }

    async fn run(&self, command: &str) -> Result<String, String> {
        self.registry
            .execute_with_policy(
                &ToolCall::new(
                    "c1",
                    "shell_exec",
                    json!({ "command": command }).to_string(),
                ),
                &ToolContext::new("test"),
            )
            .await
            .map_err(|error| failure_message(&error))
    }

    fn description(&self) -> String {
        let declaration = self.registry.declarations().into_iter().next().unwrap();
        declaration.description
    }
}

#[tokio::test]
async fn compound_lines_run_as_one_call() {
    let shell = Shell::new(true);
    assert_eq!(
        shell.run("echo hi | tr a-z A-Z").await.unwrap(),
        "exit code: 0\nstdout:\nHI"
    );
    let output = shell
        .run("cd sub && echo made > ../made.txt && cat ../made.txt")
        .await
        .unwrap();
    assert_eq!(output, "exit code: 0\nstdout:\nmade");
    assert!(shell.shared().join("made.txt").is_file());
    // `2>&1` moves the error onto stdout; `|| true` makes the line succeed.
    let output = shell.run("ls no-such-file 2>&1 || true").await.unwrap();
    assert!(
        output.starts_with("exit code: 0\nstdout:\nls:") && !output.contains("stderr"),
        "{output}"
    );
}

#[tokio::test]
async fn a_refused_command_refuses_the_whole_line_before_anything_runs() {
    let shell = Shell::new(true);
    for command in [
        "touch first.txt && sh -c 'touch second.txt'",
        "touch first.txt; echo x > ../../escaped.txt",
        "touch first.txt | python3 -c 'open(\"second.txt\", \"w\")'",
    ] {
        let message = shell.run(command).await.unwrap_err();
        assert!(
            message.contains("policy violation") && message.contains("nothing in the line was run"),
            "{command}: {message}"
        );
    }
    for leftover in ["first.txt", "second.txt"] {
        assert!(!shell.shared().join(leftover).exists(), "{leftover}");
    }
    assert!(!shell.dir.path().join("escaped.txt").exists());
}

#[tokio::test]
async fn the_description_tells_the_syntax_in_force() {
    let strict = Shell::new(false);
    let description = strict.description();
    assert!(
        description.contains("No pipes, chaining, redirection or substitution"),
        "{description}"
    );
    assert!(strict.run("echo hi | tr a-z A-Z").await.is_err());

    let compound = Shell::new(true);
    let description = compound.description();
    let shared = compound.shared();
    let workspace = compound.dir.path().join("alice");
    for needle in [
        format!("working directory {}", shared.display()),
        format!("redirections to files under {}", workspace.display()),
        "Pipes (`|`), lists (`&&`, `||`, `;`)".to_owned(),
        "one refused command refuses the whole line".to_owned(),
        "No command substitution, subshells, background jobs".to_owned(),
        "Allowed programs: awk, cargo, cat".to_owned(),
    ] {
        assert!(description.contains(&needle), "{needle}: {description}");
    }
    assert!(!description.contains("No pipes"));
    assert!(Path::new(&shared).is_dir());
}
