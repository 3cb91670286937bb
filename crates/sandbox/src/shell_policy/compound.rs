//! The compound syntax: the scanned tokens put together into simple
//! commands, and the rules that only exist because a line can hold several
//! of them — `cd`, redirections, and the shell state one command leaves for
//! the next.
//!
//! The grammar is deliberately small:
//!
//! ```text
//! line     := pipeline ((`&&` | `||` | `;`) pipeline)* [`;`]
//! pipeline := command (`|` command)*
//! command  := (word | redirection word)+        at least one word
//! ```
//!
//! Every `command` is then checked exactly as the strict syntax checks a
//! whole line (`ShellPolicy::check_words`), except for `cd`, which is a
//! builtin and only has to stay inside the workspace.

use std::path::{Component, Path, PathBuf};

use super::syntax::{Token, Word};
use super::{
    CdProblem, CheckedCommand, Connector, RedirectKind, Redirection, RedirectionProblem,
    ShellPolicy, ShellPolicyViolation as Violation,
};

/// Devices a redirection may name outside the workspace.
const DEVICES: [&str; 3] = ["/dev/null", "/dev/stdout", "/dev/stderr"];

/// Shell builtins that change the state the *following* commands of the
/// line run in (variables, options, aliases, functions, traps, the command
/// lookup). The policy checks each command as written, so a line may not
/// change what a later word means. None is on the default allowlist; this
/// list keeps an operator's allowlist from opening them in compound lines.
const STATE_BUILTINS: &str = ". source eval exec export readonly set unset shift declare typeset \
    local let read readarray mapfile getopts alias unalias hash enable shopt trap pushd popd";

/// Variables an earlier command of the same line can set: bash's `$_` is
/// the previous command's last argument; `cd` changes `$PWD` and
/// `$OLDPWD`.
const LAST_ARGUMENT: &str = "_";
const DIRECTORY_VARIABLES: [&str; 2] = ["PWD", "OLDPWD"];

/// One simple command of a compound line.
#[derive(Debug)]
pub(super) struct Simple<'a> {
    /// The command as written (for messages).
    pub(super) text: &'a str,
    words: Vec<Word>,
    redirects: Vec<(Option<u8>, RedirectKind, Word)>,
}

/// Puts the tokens of `command` together into simple commands.
///
/// # Errors
///
/// A connector without a command on one side (a trailing `;` is fine), a
/// redirection without a target word, or a command of redirections only.
pub(super) fn split(command: &str, tokens: Vec<Token>) -> Result<Vec<Simple<'_>>, Violation> {
    let mut commands = Vec::new();
    let mut words = Vec::new();
    let mut redirects = Vec::new();
    // The redirection waiting for its target, with its text for messages.
    let mut pending: Option<(Option<u8>, RedirectKind, &str)> = None;
    let mut start = 0;
    let mut last: Option<Connector> = None;
    for token in tokens {
        match token {
            Token::Word(word) => match pending.take() {
                Some((fd, kind, _)) => redirects.push((fd, kind, word)),
                None => words.push(word),
            },
            Token::Redirect { fd, kind, span } => {
                if let Some((_, _, text)) = pending {
                    return Err(missing_target(text));
                }
                pending = Some((fd, kind, &command[span]));
            }
            Token::Connector { connector, span } => {
                if let Some((_, _, text)) = pending {
                    return Err(missing_target(text));
                }
                if words.is_empty() && redirects.is_empty() {
                    return Err(Violation::MissingCommand { connector });
                }
                commands.push(simple(
                    &command[start..span.start],
                    std::mem::take(&mut words),
                    std::mem::take(&mut redirects),
                )?);
                start = span.end;
                last = Some(connector);
            }
        }
    }
    if let Some((_, _, text)) = pending {
        return Err(missing_target(text));
    }
    if words.is_empty() && redirects.is_empty() {
        return match last {
            None => Err(Violation::Empty),
            Some(Connector::Semicolon) => Ok(commands),
            Some(connector) => Err(Violation::MissingCommand { connector }),
        };
    }
    commands.push(simple(&command[start..], words, redirects)?);
    Ok(commands)
}

fn missing_target(redirection: &str) -> Violation {
    Violation::MissingRedirectionTarget {
        redirection: redirection.to_owned(),
    }
}

fn simple(
    text: &str,
    words: Vec<Word>,
    redirects: Vec<(Option<u8>, RedirectKind, Word)>,
) -> Result<Simple<'_>, Violation> {
    if words.is_empty() {
        return Err(Violation::RedirectionOnly);
    }
    Ok(Simple {
        text: text.trim_matches([' ', '\t']),
        words,
        redirects,
    })
}

/// Whether any command of the line is `cd`.
pub(super) fn changes_directory(commands: &[Simple<'_>]) -> bool {
    commands.iter().any(|command| is_cd(&command.words))
}

fn is_cd(words: &[Word]) -> bool {
    words
        .first()
        .is_some_and(|word| word.literal && word.text == "cd")
}

/// Where a line may be while it runs, as far as lexical paths can tell.
///
/// Every `cd` the policy accepts stays inside the workspace, but any `cd`
/// may fail and leave the shell where it was, so after `cd a; cd /top`
/// the shell may be in the working directory, in `a` or in `/top`. Whether
/// a relative path climbs out with `..` only depends on how deep the
/// directory it starts from is, and the shallowest is the worst case: that
/// depth is all this tracks. (A `cd` inside a pipeline runs in a subshell
/// and changes nothing after it; counting it anyway only errs on the side
/// of refusing.)
#[derive(Debug)]
pub(super) struct Position<'a> {
    workspace: &'a ShellWorkspace,
    /// Components below the workspace root of the shallowest directory the
    /// shell may be in.
    min_depth: usize,
}

impl<'a> Position<'a> {
    pub(super) fn start(workspace: &'a ShellWorkspace) -> Self {
        Self {
            workspace,
            min_depth: workspace.start_depth,
        }
    }

    /// How deep below the workspace root `path` leads from the shallowest
    /// directory the shell may be in, or `None` when it leads out.
    fn resolve(&self, path: &str) -> Option<usize> {
        let path = Path::new(path);
        if path.is_absolute() {
            return self.workspace.depth_of(path);
        }
        let mut depth = self.min_depth;
        for component in path.components() {
            match component {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir => depth = depth.checked_sub(1)?,
                Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        Some(depth)
    }
}

/// Checks one simple command of a compound line, starting from `position`,
/// which a `cd` moves for the commands after it.
pub(super) fn check(
    policy: &ShellPolicy,
    position: &mut Position<'_>,
    command: &Simple<'_>,
    line_changes_directory: bool,
) -> Result<CheckedCommand, Violation> {
    let targets = command.redirects.iter().map(|(_, _, word)| word);
    for word in command.words.iter().chain(targets) {
        let set_earlier = |name: &&String| {
            name.as_str() == LAST_ARGUMENT
                || (line_changes_directory && DIRECTORY_VARIABLES.contains(&name.as_str()))
        };
        if let Some(name) = word.variables.iter().find(set_earlier) {
            return Err(Violation::ShellStateVariable { name: name.clone() });
        }
    }
    let (mut checked, cd_depth) = program(policy, position, &command.words)?;
    // The shell opens a builtin's redirections before it runs, so they
    // start where the shell was before this `cd`.
    for (fd, kind, target) in &command.redirects {
        redirection(position, *fd, *kind, target)?;
        checked.redirections.push(Redirection {
            fd: *fd,
            kind: *kind,
            target: target.text.clone(),
        });
    }
    if let Some(depth) = cd_depth {
        position.min_depth = position.min_depth.min(depth);
    }
    Ok(checked)
}

/// `cd` (with the depth it leads to), a state-changing builtin, or a
/// program checked as in strict mode.
fn program(
    policy: &ShellPolicy,
    position: &Position<'_>,
    words: &[Word],
) -> Result<(CheckedCommand, Option<usize>), Violation> {
    if is_cd(words) {
        return cd(position, &words[1..]);
    }
    // Only an allowlisted builtin gets this far: any other is refused as
    // not allowed, with the list of what is.
    if let Some(first) = words
        .first()
        .filter(|word| word.literal && policy.allows(&word.text))
    {
        let name = first.text.as_str();
        let sets_variable =
            name == "printf" && words.get(1).is_some_and(|word| word.text.starts_with("-v"));
        if sets_variable || STATE_BUILTINS.split_ascii_whitespace().any(|b| b == name) {
            return Err(Violation::ShellStateBuiltin {
                name: if sets_variable { "printf -v" } else { name }.to_owned(),
            });
        }
    }
    Ok((policy.check_words(words)?, None))
}

fn cd(
    position: &Position<'_>,
    args: &[Word],
) -> Result<(CheckedCommand, Option<usize>), Violation> {
    let problem = |problem| Err(Violation::Cd { problem });
    if args.iter().any(|arg| arg.text.starts_with('-')) {
        return problem(CdProblem::Option);
    }
    let [dir] = args else {
        return problem(CdProblem::Arguments);
    };
    if !dir.literal {
        return problem(CdProblem::NotLiteral);
    }
    if dir.text.is_empty() {
        return problem(CdProblem::Arguments);
    }
    let Some(depth) = position.resolve(&dir.text) else {
        return Err(Violation::CdOutsideWorkspace {
            path: dir.text.clone(),
            workspace: position.workspace.root.display().to_string(),
        });
    };
    let checked = CheckedCommand {
        program: "cd".to_owned(),
        args: vec![dir.text.clone()],
        redirections: Vec::new(),
    };
    Ok((checked, Some(depth)))
}

fn redirection(
    position: &Position<'_>,
    fd: Option<u8>,
    kind: RedirectKind,
    target: &Word,
) -> Result<(), Violation> {
    let written = || {
        let fd = fd.map(|fd| fd.to_string()).unwrap_or_default();
        format!("{fd}{}{}", kind.operator(), target.text)
    };
    let refuse = |problem| {
        Err(Violation::UnsupportedRedirection {
            redirection: written(),
            problem,
        })
    };
    match kind {
        RedirectKind::DuplicateInput | RedirectKind::DuplicateOutput => {
            let digit = target.literal
                && target.text.len() == 1
                && target.text.bytes().all(|b| b.is_ascii_digit());
            if digit {
                Ok(())
            } else {
                refuse(RedirectionProblem::DuplicateTarget)
            }
        }
        RedirectKind::Input | RedirectKind::Output | RedirectKind::Append => {
            if !target.literal {
                return refuse(RedirectionProblem::TargetNotLiteral);
            }
            if target.text.is_empty() {
                return Err(missing_target(&written()));
            }
            let device = Path::new(&target.text).is_absolute()
                && DEVICES
                    .iter()
                    .any(|device| normalise(Path::new(&target.text)) == Path::new(device));
            if device || position.resolve(&target.text).is_some() {
                Ok(())
            } else {
                Err(Violation::RedirectOutsideWorkspace {
                    redirection: written(),
                    workspace: position.workspace.root.display().to_string(),
                })
            }
        }
    }
}

/// Where the shell of a compound line starts, and where its `cd` and file
/// redirections may lead: the workspace root and everything beneath it,
/// read lexically (as `cd` reads `..` by default). Symbolic links are not
/// followed: the sandbox's mounts, not this check, are the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellWorkspace {
    root: PathBuf,
    working_dir: PathBuf,
    /// Components of `working_dir` below `root`.
    start_depth: usize,
}

impl ShellWorkspace {
    /// The shell starts in `working_dir` and may reach everything beneath
    /// `root` (both absolute). If `working_dir` is not beneath `root`, it
    /// is the root as well.
    pub fn new(root: impl AsRef<Path>, working_dir: impl AsRef<Path>) -> Self {
        let working_dir = normalise(working_dir.as_ref());
        let root = normalise(root.as_ref());
        let root = if working_dir.starts_with(&root) {
            root
        } else {
            working_dir.clone()
        };
        let mut workspace = Self {
            root,
            working_dir,
            start_depth: 0,
        };
        workspace.start_depth = workspace.depth_of(&workspace.working_dir).unwrap_or(0);
        workspace
    }

    /// The directory nothing may leave.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory the shell starts in.
    pub fn working_dir(&self) -> &Path {
        &self.working_dir
    }

    /// Components of the absolute `path` below the root, or `None` when it
    /// is not beneath it.
    fn depth_of(&self, path: &Path) -> Option<usize> {
        let path = normalise(path);
        let below = path.strip_prefix(&self.root).ok()?;
        Some(below.components().count())
    }
}

/// `path` with `.` and `..` resolved lexically (`/..` is `/`).
pub(super) fn normalise(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            Component::Normal(_) | Component::RootDir | Component::Prefix(_) => {
                normal.push(component);
            }
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_lexically_inside_the_workspace() {
        let workspace = ShellWorkspace::new("/workspace", "/workspace/shared");
        let position = Position::start(&workspace);
        for (path, depth) in [
            (".", 1),
            ("src", 2),
            ("a/../b", 2),
            ("./a/./b", 3),
            ("..", 0),
            ("../shared/x", 2),
            ("/workspace", 0),
            ("/workspace/shared/src/../x", 2),
            ("/workspace//shared/./x", 2),
        ] {
            assert_eq!(position.resolve(path), Some(depth), "{path}");
        }
        for path in [
            "../..",
            "../../x",
            "a/../../../x",
            "/workspace2",
            "/workspace/../x",
            "/etc/passwd",
            "/",
        ] {
            assert_eq!(position.resolve(path), None, "{path}");
        }
    }

    #[test]
    fn a_working_dir_outside_the_root_becomes_the_root() {
        let workspace = ShellWorkspace::new("/a", "/b/c");
        assert_eq!(workspace.root(), Path::new("/b/c"));
        assert_eq!(Position::start(&workspace).resolve(".."), None);
    }

    #[test]
    fn normalise_stops_at_the_root() {
        assert_eq!(
            normalise(Path::new("/../dev/./null")),
            Path::new("/dev/null")
        );
        assert_eq!(normalise(Path::new("/dev//null")), Path::new("/dev/null"));
    }
}
