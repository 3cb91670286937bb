//! The sandbox's shell policy (`ShellPolicy::check`, the default allowlist)
//! on arbitrary command lines.
//!
//! Invariants: nothing panics; a refusal has a message for the model; an
//! accepted command runs an allowlisted program (bare name or under a system
//! bin directory), its words are exactly what `shell_words` splits, the
//! check is deterministic, and an independent, deliberately simple POSIX
//! quoting scan finds no unquoted operator, redirection, subshell, comment
//! or command substitution in it: whatever the policy's own scanner
//! believes, `sh -c` would run one plain command.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::shell_policy::{DEFAULT_ALLOWLIST, ShellPolicy};

/// What `sh` would treat as more than one plain command, found by a scan
/// written independently of the policy's: `None` when there is nothing.
fn dangerous_construct(command: &str) -> Option<&'static str> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Plain,
        Single,
        Double,
    }
    if command.contains(['\0', '\r']) {
        return Some("NUL or carriage return");
    }
    let mut state = State::Plain;
    let mut word_start = true;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Plain => {
                let at_word_start = word_start;
                word_start = matches!(c, ' ' | '\t');
                match c {
                    '\\' => {
                        // An escaped character is literal; an escaped line
                        // break joins two lines.
                        if chars.next_if_eq(&'\n').is_some() {
                            return Some("line continuation");
                        }
                        chars.next();
                    }
                    '\'' => state = State::Single,
                    '"' => state = State::Double,
                    ';' | '&' | '|' | '<' | '>' | '(' | ')' | '`' | '\n' => {
                        return Some("unquoted operator");
                    }
                    '#' if at_word_start => return Some("comment"),
                    '$' => match chars.peek() {
                        Some('(' | '\'' | '"') => return Some("dollar substitution or quoting"),
                        // `$$` is the shell's pid: the second `$` starts nothing.
                        Some('$') => {
                            chars.next();
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
            State::Single => {
                if c == '\'' {
                    state = State::Plain;
                }
            }
            State::Double => match c {
                '\\' => {
                    chars.next();
                }
                '"' => state = State::Plain,
                '`' => return Some("backticks in double quotes"),
                '$' => match chars.peek() {
                    Some('(') => return Some("command substitution in double quotes"),
                    Some('$') => {
                        chars.next();
                    }
                    _ => {}
                },
                _ => {}
            },
        }
    }
    (state != State::Plain).then_some("unbalanced quote")
}

fuzz_target!(|data: &[u8]| {
    let Ok(command) = std::str::from_utf8(data) else {
        return;
    };
    let policy = ShellPolicy::default();
    let verdict = policy.check(command);
    assert_eq!(
        verdict,
        policy.check(command),
        "the check is not deterministic"
    );
    let checked = match verdict {
        Ok(checked) => checked,
        Err(violation) => {
            assert!(!violation.to_string().is_empty(), "{violation:?}");
            return;
        }
    };
    let name = match checked.program.rsplit_once('/') {
        None => checked.program.as_str(),
        Some((dir, name)) => {
            assert!(
                ["/bin", "/usr/bin", "/usr/local/bin"].contains(&dir),
                "program path outside the system bin directories: {command:?}"
            );
            name
        }
    };
    assert!(
        DEFAULT_ALLOWLIST.contains(&name),
        "program not allowlisted: {command:?}"
    );
    let split = shell_words::split(command).expect("an accepted command splits");
    let mut words = vec![checked.program.clone()];
    words.extend(checked.args.iter().cloned());
    assert_eq!(split, words, "accepted words differ from shell_words");
    if let Some(construct) = dangerous_construct(command) {
        panic!("accepted a command with a {construct}: {command:?}");
    }
});
