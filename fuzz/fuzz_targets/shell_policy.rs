//! The sandbox's shell policy (`ShellPolicy::check`, the default allowlist)
//! on arbitrary command lines, in both syntaxes.
//!
//! Invariants for both: nothing panics; the check is deterministic; a
//! refusal has a message for the model.
//!
//! Strict: an accepted line is one command running an allowlisted program
//! (bare name or under a system bin directory), its words are exactly what
//! `shell_words` splits, and an independent, deliberately simple POSIX
//! quoting scan finds no unquoted operator, redirection, subshell, comment,
//! command substitution or bash variable holding the command line in it:
//! whatever the policy's own scanner believes, `sh -c` would run one plain
//! command.
//!
//! Compound: the same independent scan, now splitting the line at unquoted
//! `|`, `||`, `&&` and `;` and taking out the redirections, finds no
//! subshell, substitution, background job, comment, here-document or
//! bash-only operator; every piece it finds is either `cd` to a directory
//! inside the workspace or a command the *strict* policy accepts on its
//! own, with the same words the compound policy reported; every
//! redirection names `/dev/null`, `/dev/stdout`, `/dev/stderr`, a path
//! inside the workspace, or (for `>&`/`<&`) one descriptor digit. And a
//! line the strict policy accepts, the compound policy accepts the same
//! way (unless it reads `$_`, which compound lines may not).

#![no_main]

use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use sandbox::shell_policy::{
    CheckedCommand, DEFAULT_ALLOWLIST, RedirectKind, ShellPolicy, ShellWorkspace,
};

const ROOT: &str = "/workspace";
const WORKING_DIR: &str = "/workspace/shared";

/// What `sh` would treat as more than one plain command, found by a scan
/// written independently of the policy's: `None` when there is nothing.
fn dangerous_construct(command: &str) -> Option<&'static str> {
    match split_line(command) {
        Err(construct) => Some(construct),
        Ok(pieces) if pieces.len() != 1 || !pieces[0].redirections.is_empty() => {
            Some("unquoted operator")
        }
        Ok(_) => None,
    }
}

/// One piece of a line between unquoted `|`, `||`, `&&`, `;`, as the
/// oracle sees it.
#[derive(Debug, Default)]
struct Piece {
    /// The raw text with the redirections (descriptor, operator, target)
    /// replaced by spaces.
    text: String,
    /// Each redirection's operator (`>`, `>>`, `<`, `>&`, `<&`) and raw
    /// target word.
    redirections: Vec<(String, String)>,
}

/// Splits `command` into pieces with a small POSIX quoting scan, or names
/// the first construct a compound line may never contain.
fn split_line(command: &str) -> Result<Vec<Piece>, &'static str> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Plain,
        Single,
        Double,
    }
    if command.contains(['\0', '\r']) {
        return Err("NUL or carriage return");
    }
    let mut pieces = vec![Piece::default()];
    let mut state = State::Plain;
    // Where the current word started in the piece's text, and whether any
    // of it was quoted (then it cannot be a descriptor number).
    let mut word_start: Option<usize> = None;
    let mut word_quoted = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        let piece = pieces.last_mut().expect("there is always a piece");
        match state {
            State::Single => {
                piece.text.push(c);
                if c == '\'' {
                    state = State::Plain;
                }
            }
            State::Double => {
                piece.text.push(c);
                match c {
                    '\\' => {
                        if let Some(next) = chars.next() {
                            piece.text.push(next);
                        }
                    }
                    '"' => state = State::Plain,
                    '`' => return Err("backticks in double quotes"),
                    '$' if command_text_variable(chars.clone()) => {
                        return Err("a variable holding the command line");
                    }
                    '$' => match chars.peek() {
                        Some('(') => return Err("command substitution in double quotes"),
                        // `$$` is the shell's pid: the second `$` starts nothing.
                        Some('$') => piece.text.push(chars.next().unwrap_or('$')),
                        _ => {}
                    },
                    _ => {}
                }
            }
            State::Plain => match c {
                ' ' | '\t' => {
                    piece.text.push(c);
                    word_start = None;
                    word_quoted = false;
                }
                '\\' => {
                    if chars.next_if_eq(&'\n').is_some() {
                        return Err("line continuation");
                    }
                    word_start.get_or_insert(piece.text.len());
                    word_quoted = true;
                    piece.text.push(c);
                    if let Some(next) = chars.next() {
                        piece.text.push(next);
                    }
                }
                '\'' | '"' => {
                    word_start.get_or_insert(piece.text.len());
                    word_quoted = true;
                    piece.text.push(c);
                    state = if c == '\'' {
                        State::Single
                    } else {
                        State::Double
                    };
                }
                '|' | ';' | '&' => {
                    let next = chars.peek().copied();
                    match (c, next) {
                        ('|', Some('&')) => return Err("|&"),
                        ('&', Some('&')) | ('|', Some('|')) => {
                            chars.next();
                        }
                        ('&', _) => return Err("background job or &>"),
                        _ => {}
                    }
                    pieces.push(Piece::default());
                    word_start = None;
                    word_quoted = false;
                }
                '<' | '>' => {
                    let mut operator = c.to_string();
                    match (c, chars.peek().copied()) {
                        ('>', Some('>' | '&')) | ('<', Some('&')) => {
                            operator.extend(chars.next());
                        }
                        (_, Some('<' | '>' | '|' | '(')) => {
                            return Err("here-document, <>, >| or process substitution");
                        }
                        _ => {}
                    }
                    // A lone unquoted digit right before is the descriptor.
                    if let Some(start) = word_start {
                        let word = &piece.text[start..];
                        if !word_quoted && word.len() == 1 && word.as_bytes()[0].is_ascii_digit() {
                            piece.text.truncate(start);
                        }
                    }
                    piece.text.push(' ');
                    while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
                    // The target: a word up to the next unquoted blank or
                    // operator (quotes inside it are copied as written).
                    let mut target = String::new();
                    let mut quote = None;
                    while let Some(&next) = chars.peek() {
                        match quote {
                            Some(open) => {
                                if next == open {
                                    quote = None;
                                } else if open == '"' && next == '\\' {
                                    target.push(next);
                                    chars.next();
                                    let Some(&escaped) = chars.peek() else { break };
                                    target.push(escaped);
                                    chars.next();
                                    continue;
                                }
                            }
                            None if " \t|;&<>()`\n".contains(next) => break,
                            None if next == '\'' || next == '"' => quote = Some(next),
                            None if next == '#' && target.is_empty() => {
                                return Err("comment instead of a redirection target");
                            }
                            None if next == '$' => {
                                target.push(next);
                                chars.next();
                                if matches!(chars.peek(), Some('(' | '\'' | '"')) {
                                    return Err("dollar substitution or quoting in a target");
                                }
                                continue;
                            }
                            None if next == '\\' => {
                                target.push(next);
                                chars.next();
                                let Some(&escaped) = chars.peek() else { break };
                                target.push(escaped);
                                chars.next();
                                continue;
                            }
                            None => {}
                        }
                        target.push(next);
                        chars.next();
                    }
                    piece.redirections.push((operator, target));
                    word_start = None;
                    word_quoted = false;
                }
                '(' | ')' | '`' | '\n' => return Err("subshell, backticks or line break"),
                '#' if word_start.is_none() => return Err("comment"),
                '$' if command_text_variable(chars.clone()) => {
                    return Err("a variable holding the command line");
                }
                '$' => {
                    word_start.get_or_insert(piece.text.len());
                    piece.text.push(c);
                    match chars.peek() {
                        Some('(' | '\'' | '"') => {
                            return Err("dollar substitution or quoting");
                        }
                        Some('$') => piece.text.push(chars.next().unwrap_or('$')),
                        _ => {}
                    }
                }
                _ => {
                    word_start.get_or_insert(piece.text.len());
                    piece.text.push(c);
                }
            },
        }
    }
    if state != State::Plain {
        return Err("unbalanced quote");
    }
    // A trailing `;` leaves an empty last piece.
    if pieces.len() > 1
        && pieces
            .last()
            .is_some_and(|p| p.text.trim().is_empty() && p.redirections.is_empty())
    {
        pieces.pop();
    }
    Ok(pieces)
}

/// Whether the text after a `$` names bash's `BASH_EXECUTION_STRING` or
/// `BASH_COMMAND`, whose value is the command line itself.
fn command_text_variable(rest: impl Iterator<Item = char>) -> bool {
    let mut rest = rest.peekable();
    rest.next_if_eq(&'{');
    let name: String = rest
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    name == "BASH_EXECUTION_STRING" || name == "BASH_COMMAND"
}

/// `path` without `.` and with `..` applied, never above `/`.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Inside the workspace from the shell's start: absolute under the root,
/// or relative from the working directory without climbing above the
/// root. (The policy is stricter after a `cd`; this is what any accepted
/// path must at least satisfy.)
fn inside_workspace(path: &str) -> bool {
    let path = Path::new(path);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        Path::new(WORKING_DIR).join(path)
    };
    normal(&absolute).starts_with(ROOT)
        && (path.is_absolute()
            || path
                .components()
                .try_fold(1_usize, |depth, c| match c {
                    Component::ParentDir => depth.checked_sub(1),
                    Component::Normal(_) => Some(depth + 1),
                    _ => Some(depth),
                })
                .is_some())
}

fn words(checked: &CheckedCommand) -> Vec<String> {
    let mut words = vec![checked.program.clone()];
    words.extend(checked.args.iter().cloned());
    words
}

fn check_strict(command: &str) {
    let policy = ShellPolicy::default();
    let verdict = policy.check(command);
    assert_eq!(
        verdict,
        policy.check(command),
        "the check is not deterministic"
    );
    let line = match verdict {
        Ok(line) => line,
        Err(violation) => {
            assert!(!violation.to_string().is_empty(), "{violation:?}");
            return;
        }
    };
    assert_eq!(line.commands.len(), 1, "a strict line is one command");
    let checked = &line.commands[0];
    assert!(checked.redirections.is_empty());
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
    assert_eq!(
        split,
        words(checked),
        "accepted words differ from shell_words"
    );
    if let Some(construct) = dangerous_construct(command) {
        panic!("accepted a command with a {construct}: {command:?}");
    }
    // Compound only adds to strict; `$_` is the one thing it takes away.
    if !command.contains("$_") && !command.contains("${_}") {
        let compound = compound_policy().check(command);
        assert_eq!(
            compound,
            Ok(line),
            "compound differs from strict: {command:?}"
        );
    }
}

fn compound_policy() -> ShellPolicy {
    ShellPolicy::default().compound(ShellWorkspace::new(ROOT, WORKING_DIR))
}

fn check_compound(command: &str) {
    let policy = compound_policy();
    let verdict = policy.check(command);
    assert_eq!(
        verdict,
        policy.check(command),
        "the check is not deterministic"
    );
    let line = match verdict {
        Ok(line) => line,
        Err(violation) => {
            assert!(!violation.to_string().is_empty(), "{violation:?}");
            return;
        }
    };
    let pieces = match split_line(command) {
        Ok(pieces) => pieces,
        Err(construct) => panic!("accepted a compound line with a {construct}: {command:?}"),
    };
    assert_eq!(
        pieces.len(),
        line.commands.len(),
        "the oracle and the policy count different commands: {command:?} {pieces:?}"
    );
    let strict = ShellPolicy::default();
    for (piece, checked) in pieces.iter().zip(&line.commands) {
        let split = shell_words::split(&piece.text).expect("an accepted piece splits");
        assert_eq!(split, words(checked), "words differ: {command:?} {piece:?}");
        if checked.program == "cd" {
            assert_eq!(checked.args.len(), 1, "{command:?}");
            assert!(
                inside_workspace(&checked.args[0]),
                "cd out of the workspace: {command:?}"
            );
        } else {
            let alone = strict.check(&piece.text).unwrap_or_else(|violation| {
                panic!("a piece strict refuses ({violation}): {command:?} {piece:?}")
            });
            assert_eq!(alone.commands[0].program, checked.program, "{command:?}");
            assert_eq!(alone.commands[0].args, checked.args, "{command:?}");
        }
        assert_eq!(
            piece.redirections.len(),
            checked.redirections.len(),
            "redirections differ: {command:?} {piece:?}"
        );
        for ((operator, raw), redirection) in piece.redirections.iter().zip(&checked.redirections) {
            assert_eq!(operator, redirection.kind.operator(), "{command:?}");
            let target = shell_words::split(raw).expect("an accepted target splits");
            assert_eq!(
                target,
                std::slice::from_ref(&redirection.target),
                "{command:?}"
            );
            let target = target[0].as_str();
            match redirection.kind {
                RedirectKind::DuplicateInput | RedirectKind::DuplicateOutput => assert!(
                    target.len() == 1 && target.as_bytes()[0].is_ascii_digit(),
                    "duplication onto {target:?}: {command:?}"
                ),
                RedirectKind::Input | RedirectKind::Output | RedirectKind::Append => assert!(
                    ["/dev/null", "/dev/stdout", "/dev/stderr"]
                        .iter()
                        .any(|device| normal(Path::new(target)) == Path::new(device))
                        || inside_workspace(target),
                    "redirection outside the workspace: {command:?}"
                ),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(command) = std::str::from_utf8(data) else {
        return;
    };
    check_strict(command);
    check_compound(command);
});
