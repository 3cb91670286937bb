//! The registry pipeline: lookup → validation → policy → safety gate →
//! timeout → execute → truncate → scrub, each step observable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sandbox::scrub::Scrubber;
use serde_json::Value;
use tools::registry::truncate_output;
use tools::{
    ApprovalDecision, ApprovalGate, ApprovalRequest, ArgumentPolicy, RegistryError, StaticApproval,
    ToolRegistry, failure_message,
};
use types::protocol::bootstrap::ApprovalPolicy;
use types::{FunctionDecl, JsonSchema, SafetyTier, Tool, ToolCall, ToolContext, ToolError};

/// What happened, in order, across gate, policy and tool.
type Log = Arc<Mutex<Vec<String>>>;

#[derive(Debug)]
struct TestTool {
    name: &'static str,
    tier: SafetyTier,
    timeout: Duration,
    delay: Duration,
    output: String,
    calls: AtomicUsize,
    log: Log,
}

impl TestTool {
    fn new(name: &'static str, tier: SafetyTier, output: &str, log: &Log) -> Arc<Self> {
        Arc::new(Self {
            name,
            tier,
            timeout: Duration::from_secs(5),
            delay: Duration::ZERO,
            output: output.to_owned(),
            calls: AtomicUsize::new(0),
            log: log.clone(),
        })
    }
}

#[async_trait]
impl Tool for TestTool {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: self.name.into(),
            description: "test tool".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    ("path".to_owned(), JsonSchema::string()),
                    ("count".to_owned(), JsonSchema::integer().with_minimum(1)),
                ]),
                vec!["path".into()],
            ),
        }
    }

    async fn execute(&self, _args: &str, _context: &ToolContext) -> Result<String, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push("execute".into());
        tokio::time::sleep(self.delay).await;
        Ok(self.output.clone())
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn safety_tier(&self) -> SafetyTier {
        self.tier
    }
}

/// Refuses any path containing "forbidden".
#[derive(Debug)]
struct ForbiddenPaths(Log);

impl ArgumentPolicy for ForbiddenPaths {
    fn check(&self, arguments: &Value) -> Result<(), ToolError> {
        self.0.lock().unwrap().push("policy".into());
        match arguments["path"].as_str() {
            Some(path) if path.contains("forbidden") => Err(ToolError::PolicyViolation {
                reason: format!("{path} is forbidden"),
            }),
            _ => Ok(()),
        }
    }
}

/// Records requests and answers with a fixed decision.
#[derive(Debug)]
struct RecordingGate {
    approve: bool,
    log: Log,
    seen: Mutex<Vec<ApprovalRequest>>,
}

#[async_trait]
impl ApprovalGate for RecordingGate {
    async fn decide(&self, request: &ApprovalRequest) -> ApprovalDecision {
        self.log.lock().unwrap().push("approval".into());
        self.seen.lock().unwrap().push(request.clone());
        if self.approve {
            ApprovalDecision::Approved
        } else {
            ApprovalDecision::Denied {
                reason: "the user said no".into(),
            }
        }
    }
}

fn registry(gate: Arc<dyn ApprovalGate>) -> ToolRegistry {
    ToolRegistry::new(Arc::new(Scrubber::new()), gate)
}

fn call(name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: "call_1".into(),
        name: name.into(),
        arguments: arguments.into(),
        signature: None,
    }
}

fn allow() -> Arc<dyn ApprovalGate> {
    Arc::new(StaticApproval(ApprovalPolicy::Allow))
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments_are_clear_errors() {
    let log = Log::default();
    let tool = TestTool::new("probe", SafetyTier::ReadOnly, "ok", &log);
    let mut registry = registry(allow());
    registry.register(tool.clone()).unwrap();
    let cases = [
        ("fly", "{}", "Tool execution failed: unknown tool 'fly'"),
        (
            "probe",
            "{\"path\": ",
            "Tool execution failed: invalid arguments: the arguments are not valid JSON",
        ),
        (
            "probe",
            "{}",
            "Tool execution failed: invalid arguments: missing required field 'path'",
        ),
        ("probe", "{\"path\": 3}", "field 'path'"),
        ("probe", "{\"path\": \"a\", \"count\": 0}", "field 'count'"),
        (
            "probe",
            "{\"path\": \"a\", \"colour\": \"red\"}",
            "unknown field(s) 'colour'",
        ),
        ("probe", "[1, 2]", "invalid arguments"),
    ];
    for (name, arguments, expected) in cases {
        let err = registry
            .execute_with_policy(&call(name, arguments), &ToolContext::new("test"))
            .await
            .unwrap_err();
        let message = failure_message(&err);
        assert!(message.contains(expected), "{arguments}: {message}");
    }
    assert_eq!(
        tool.calls.load(Ordering::SeqCst),
        0,
        "no invalid call may execute"
    );
    assert_eq!(
        registry
            .execute_with_policy(
                &call("probe", "{\"path\": \"a\", \"count\": 2}"),
                &ToolContext::new("test")
            )
            .await
            .unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn a_policy_violation_never_reaches_execute() {
    let log = Log::default();
    let tool = TestTool::new("probe", SafetyTier::SideEffecting, "ok", &log);
    let mut registry = registry(allow());
    registry
        .register_with_policy(tool.clone(), Arc::new(ForbiddenPaths(log.clone())))
        .unwrap();
    let err = registry
        .execute_with_policy(
            &call("probe", r#"{"path": "/shared/forbidden"}"#),
            &ToolContext::new("test"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ToolError::PolicyViolation {
            reason: "/shared/forbidden is forbidden".into()
        }
    );
    assert_eq!(tool.calls.load(Ordering::SeqCst), 0);
    registry
        .execute_with_policy(
            &call("probe", r#"{"path": "/shared/fine"}"#),
            &ToolContext::new("test"),
        )
        .await
        .unwrap();
    assert_eq!(*log.lock().unwrap(), ["policy", "policy", "execute"]);
}

#[tokio::test]
async fn privileged_calls_pass_the_policy_before_anyone_is_asked() {
    let log = Log::default();
    let tool = TestTool::new("danger", SafetyTier::Privileged, "done", &log);
    let gate = Arc::new(RecordingGate {
        approve: false,
        log: log.clone(),
        seen: Mutex::default(),
    });
    let mut registry = registry(gate.clone());
    registry
        .register_with_policy(tool.clone(), Arc::new(ForbiddenPaths(log.clone())))
        .unwrap();
    let secret_args =
        r#"{"path": "/tmp/x", "count": 1, "note": "sk-proj-Zx8Qm3Lp9Rt2Vw5Yb7Nc4Kd6Hf1Gj0As"}"#;
    let err = registry
        .execute_with_policy(
            &call("danger", r#"{"path": "/tmp/x"}"#),
            &ToolContext::new("test"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        failure_message(&err),
        "Tool execution failed: tool 'danger' was not approved: the user said no"
    );
    assert_eq!(
        *log.lock().unwrap(),
        ["policy", "approval"],
        "a denied call never reaches the tool"
    );
    // Unknown field → validation fails before anyone is asked.
    registry
        .execute_with_policy(&call("danger", secret_args), &ToolContext::new("test"))
        .await
        .unwrap_err();
    assert_eq!(gate.seen.lock().unwrap().len(), 1);

    let approving = Arc::new(RecordingGate {
        approve: true,
        log: log.clone(),
        seen: Mutex::default(),
    });
    let mut registry = registry_with(approving.clone(), tool.clone(), &log);
    log.lock().unwrap().clear();
    assert_eq!(
        registry
            .execute_with_policy(
                &call(
                    "danger",
                    r#"{"path": "/tmp/sk-proj-Zx8Qm3Lp9Rt2Vw5Yb7Nc4Kd6Hf1Gj0As"}"#
                ),
                &ToolContext::new("test")
            )
            .await
            .unwrap(),
        "done"
    );
    assert_eq!(*log.lock().unwrap(), ["policy", "approval", "execute"]);
    let request = approving.seen.lock().unwrap()[0].clone();
    for shown in [&request.arguments_summary, &request.arguments] {
        assert!(
            !shown.contains("Zx8Qm3Lp9Rt2Vw5Yb7Nc4Kd6Hf1Gj0As"),
            "{shown}"
        );
    }
    assert_eq!(request.safety_tier, SafetyTier::Privileged);
    assert_eq!(request.session_id.as_str(), "test");
    registry = registry_with(
        Arc::new(StaticApproval(ApprovalPolicy::Deny)),
        tool.clone(),
        &log,
    );
    let err = registry
        .execute_with_policy(
            &call("danger", r#"{"path": "/tmp/x"}"#),
            &ToolContext::new("test"),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("disabled by the operator"),
        "{err}"
    );
}

/// Nobody is asked to approve a call the policy refuses anyway.
#[tokio::test]
async fn a_call_refused_by_policy_never_asks_for_approval() {
    let log = Log::default();
    let tool = TestTool::new("danger", SafetyTier::Privileged, "done", &log);
    let gate = Arc::new(RecordingGate {
        approve: true,
        log: log.clone(),
        seen: Mutex::default(),
    });
    let registry = registry_with(gate.clone(), tool.clone(), &log);
    let err = registry
        .execute_with_policy(
            &call("danger", r#"{"path": "/shared/forbidden"}"#),
            &ToolContext::new("test"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::PolicyViolation { .. }), "{err}");
    assert!(gate.seen.lock().unwrap().is_empty(), "no approval request");
    assert_eq!(*log.lock().unwrap(), ["policy"]);
    assert_eq!(tool.calls.load(Ordering::SeqCst), 0);
}

/// Answers after a pause (a person reading the request).
#[derive(Debug)]
struct SlowYes(Duration);

#[async_trait]
impl ApprovalGate for SlowYes {
    async fn decide(&self, _request: &ApprovalRequest) -> ApprovalDecision {
        tokio::time::sleep(self.0).await;
        ApprovalDecision::Approved
    }
}

/// The time a person takes to approve is the approval's, not the tool's:
/// a yes after longer than the tool's timeout still runs the tool.
#[tokio::test(start_paused = true)]
async fn an_approval_answered_after_the_tool_timeout_still_runs_the_tool() {
    let log = Log::default();
    let tool = Arc::new(TestTool {
        timeout: Duration::from_secs(1),
        delay: Duration::from_millis(500),
        ..Arc::into_inner(TestTool::new("danger", SafetyTier::Privileged, "ran", &log)).unwrap()
    });
    let mut registry = registry(Arc::new(SlowYes(Duration::from_secs(120))));
    registry.register(tool.clone()).unwrap();
    let started = tokio::time::Instant::now();
    let output = registry
        .execute_with_policy(
            &call("danger", r#"{"path": "x"}"#),
            &ToolContext::new("test"),
        )
        .await
        .unwrap();
    assert_eq!(output, "ran");
    assert!(started.elapsed() >= Duration::from_secs(120));
}

fn registry_with(gate: Arc<dyn ApprovalGate>, tool: Arc<TestTool>, log: &Log) -> ToolRegistry {
    let mut registry = registry(gate);
    registry
        .register_with_policy(tool, Arc::new(ForbiddenPaths(log.clone())))
        .unwrap();
    registry
}

#[tokio::test(start_paused = true)]
async fn slow_tools_time_out() {
    let log = Log::default();
    let tool = Arc::new(TestTool {
        timeout: Duration::from_millis(50),
        delay: Duration::from_secs(3600),
        ..Arc::into_inner(TestTool::new("slow", SafetyTier::ReadOnly, "never", &log)).unwrap()
    });
    let mut registry = registry(allow());
    registry.register(tool).unwrap();
    let err = registry
        .execute_with_policy(&call("slow", r#"{"path": "x"}"#), &ToolContext::new("test"))
        .await
        .unwrap_err();
    assert_eq!(
        failure_message(&err),
        "Tool execution failed: tool 'slow' timed out after 0.05s"
    );
}

#[tokio::test]
async fn output_is_truncated_then_scrubbed() {
    let log = Log::default();
    let secret = "ghp_Abc123Def456Ghi789Jkl012Mno345Pqr678";
    let tool = TestTool::new(
        "leaky",
        SafetyTier::ReadOnly,
        &format!("token: {secret}\n{}", "x".repeat(100)),
        &log,
    );
    let mut registry = registry(allow()).with_max_output_bytes(64);
    registry.register(tool).unwrap();
    let output = registry
        .execute_with_policy(
            &call("leaky", r#"{"path": "x"}"#),
            &ToolContext::new("test"),
        )
        .await
        .unwrap();
    assert!(!output.contains(secret), "{output}");
    assert!(
        output.ends_with("[output truncated — original size: 148 bytes]"),
        "{output}"
    );
}

#[test]
fn truncation_is_exact_at_the_boundary_and_utf8_safe() {
    let text = "abcdef";
    assert_eq!(truncate_output(text, 6), "abcdef");
    assert_eq!(
        truncate_output(text, 5),
        "abcde\n[output truncated — original size: 6 bytes]"
    );
    // 'é' is 2 bytes at offsets 1..3: a cut at 2 must back off to 1.
    assert_eq!(
        truncate_output("aéb", 2),
        "a\n[output truncated — original size: 4 bytes]"
    );
    assert_eq!(
        truncate_output("aéb", 3),
        "aé\n[output truncated — original size: 4 bytes]"
    );
    assert_eq!(
        truncate_output("👋", 0),
        "\n[output truncated — original size: 4 bytes]"
    );
    let big = "y".repeat(142_857);
    assert!(truncate_output(&big, 16).ends_with("original size: 142,857 bytes]"));
    assert!(truncate_output(&"z".repeat(1_000_000), 1).contains("1,000,000 bytes"));
}

#[test]
fn registration_rejects_duplicates_and_lists_declarations() {
    let log = Log::default();
    let mut registry = registry(allow());
    registry
        .register(TestTool::new("b_tool", SafetyTier::ReadOnly, "", &log))
        .unwrap();
    registry
        .register(TestTool::new("a_tool", SafetyTier::Privileged, "", &log))
        .unwrap();
    assert_eq!(
        registry.register(TestTool::new("a_tool", SafetyTier::ReadOnly, "", &log)),
        Err(RegistryError::Duplicate("a_tool".into()))
    );
    let names: Vec<_> = registry
        .declarations()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["a_tool", "b_tool"]);
    assert_eq!(registry.safety_tier("a_tool"), Some(SafetyTier::Privileged));
    assert_eq!(registry.safety_tier("zzz"), None);
}
