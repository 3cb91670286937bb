//! The shell policy against a table of command lines
//! (`tests/data/shell/cases.jsonl`): everyday commands that must pass, and
//! every refused construct and argument-level escape, each with the reason.

use std::fmt::Write as _;

use sandbox::shell_policy::{ShellPolicy, ShellPolicyViolation};
use serde::Deserialize;

const CASES: &str = include_str!("data/shell/cases.jsonl");

/// One line of `cases.jsonl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    command: String,
    allowed: bool,
    /// Why the decision is right; shown when the case fails.
    why: String,
    /// For refused commands: a substring the model-facing message must
    /// contain, so a command is refused for the right reason.
    #[serde(default)]
    message: Option<String>,
}

fn cases() -> Vec<Case> {
    CASES
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("cases.jsonl line {}: {error}", index + 1))
        })
        .collect()
}

#[test]
fn every_case_gets_the_expected_decision_and_message() {
    let policy = ShellPolicy::default();
    let cases = cases();
    let mut mismatches = String::new();
    for case in &cases {
        let outcome = policy.check(&case.command);
        let problem = match (&outcome, case.allowed) {
            (Ok(_), true) => None,
            (Err(violation), false) => match &case.message {
                Some(expected) if !violation.to_string().contains(expected.as_str()) => {
                    Some(format!("message lacks {expected:?}"))
                }
                _ => None,
            },
            (Ok(_), false) => Some("allowed, expected refused".to_owned()),
            (Err(_), true) => Some("refused, expected allowed".to_owned()),
        };
        if let Some(problem) = problem {
            let got = match &outcome {
                Ok(checked) => format!("allowed as {checked:?}"),
                Err(violation) => format!("refused: {violation}"),
            };
            let _ = writeln!(
                mismatches,
                "- {:?}: {problem}\n    why: {}\n    got: {got}",
                case.command, case.why
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "shell policy mismatches:\n{mismatches}"
    );
}

#[test]
fn the_case_table_covers_both_decisions() {
    let cases = cases();
    let allowed = cases.iter().filter(|case| case.allowed).count();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    assert!(
        allowed >= 40 && cases.len() - allowed >= 40,
        "{allowed} of {} allowed",
        cases.len()
    );
}

#[test]
fn custom_allowlist_replaces_the_default() {
    let policy = ShellPolicy::new(["ls"]);
    assert!(policy.check("ls -la /shared").is_ok());
    let refused = policy.check("cat /etc/hostname").unwrap_err();
    assert_eq!(
        refused,
        ShellPolicyViolation::ProgramNotAllowed {
            program: "cat".to_owned(),
            allowed: vec!["ls".to_owned()],
        }
    );
    assert_eq!(policy.allowed_programs().collect::<Vec<_>>(), ["ls"]);
}

#[test]
fn every_message_tells_the_model_what_to_do() {
    // Each refusal names what was found and an alternative; a bare "not
    // allowed" would leave the model guessing.
    let policy = ShellPolicy::default();
    for case in cases().iter().filter(|case| !case.allowed) {
        let message = policy.check(&case.command).unwrap_err().to_string();
        assert!(
            message.len() > 40 && message.contains(':'),
            "{:?}: {message}",
            case.command
        );
    }
}
