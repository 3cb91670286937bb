//! The shell policy: the deterministic first line of defence in front of
//! `shell_exec`. A model-written command line is checked before it is handed
//! to `sh -c` inside the shell sandbox; nothing here asks the model to behave.
//!
//! [`ShellPolicy::check`] applies, in order:
//!
//! 1. **Syntax**: a quote-aware scan of the raw string refuses everything
//!    that would make `sh` run more than one plain command — chaining,
//!    pipes, background jobs, redirections, subshells, command substitution
//!    (also inside double quotes), expansions other than plain
//!    `$NAME`/`${NAME}`, brace expansion, comments, line breaks — and
//!    wildcards that could expand into option-like file names.
//! 2. **Words**: the line is split with `shell_words` as well, and both
//!    tokenisers must agree word for word.
//! 3. **Program**: no leading `VAR=value`; the program is a bare allowlisted
//!    name (looked up in PATH) or an absolute path under `/bin`, `/usr/bin`
//!    or `/usr/local/bin` whose basename is allowlisted.
//! 4. **Arguments**: options that make an allowed program run other
//!    programs or inline code (`find -exec`, `git -c`, `awk system()`,
//!    `sed e`, `python -c`, `tar --to-command`, …) are refused, and `xargs`
//!    may only run what the whole policy allows.
//!
//! The policy narrows what a command line can do; it is not the isolation
//! boundary. Allowed interpreters and build tools still run code from files
//! in the workspace, which the container or microVM must contain.
//! `docs/shell-policy.md` lists every decision and the residual risks.
//!
//! ```
//! use sandbox::shell_policy::ShellPolicy;
//!
//! let policy = ShellPolicy::default();
//! let checked = policy.check("grep -rn 'fn main' /shared/src").unwrap();
//! assert_eq!(checked.program, "grep");
//! assert!(policy.check("ls /shared && rm -rf /shared").is_err());
//! ```

mod git;
mod options;
mod programs;
mod scripts;
mod syntax;

use std::collections::BTreeSet;
use std::fmt;

use syntax::Word;

/// Executables allowed when the operator configures nothing else.
pub const DEFAULT_ALLOWLIST: &[&str] = &[
    "awk", "cat", "cargo", "cp", "curl", "diff", "du", "find", "git", "grep", "head", "jq", "ls",
    "make", "mkdir", "mv", "node", "npm", "pnpm", "python", "python3", "rm", "rg", "sed", "sort",
    "tail", "tar", "tee", "touch", "tree", "uniq", "wc", "wget", "xargs", "yarn",
];

/// Directories from which a program may be named by absolute path. The
/// sandbox image keeps them root-owned and read-only, so a file there is part
/// of the image, never something the agent wrote.
const SYSTEM_BIN_DIRS: [&str; 3] = ["/bin", "/usr/bin", "/usr/local/bin"];

/// Longest argument quoted back in a message; awk programs can be long.
const MAX_QUOTED_ARGUMENT_CHARS: usize = 60;

/// Checks model-written command lines against the syntax rules and an
/// allowlist of executables (compared by basename).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellPolicy {
    allowlist: BTreeSet<String>,
}

impl ShellPolicy {
    /// A policy allowing exactly the given executable names (basenames such
    /// as `ls`, not paths), as configured by the operator.
    pub fn new(allowlist: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            allowlist: allowlist.into_iter().map(Into::into).collect(),
        }
    }

    /// The allowed executable names, sorted.
    pub fn allowed_programs(&self) -> impl Iterator<Item = &str> {
        self.allowlist.iter().map(String::as_str)
    }

    /// Checks one command line; on success returns the parsed command.
    ///
    /// # Errors
    ///
    /// The first rule the command breaks, as a message the model can act on.
    pub fn check(&self, command: &str) -> Result<CheckedCommand, ShellPolicyViolation> {
        let words = syntax::scan(command)?;
        // Two independent tokenisers must agree: a disagreement means a
        // quoting construct one of them misreads, which is exactly where an
        // argument could hide from the checks below.
        let split = shell_words::split(command).map_err(|_| ShellPolicyViolation::Unparseable)?;
        if split.len() != words.len() || split.iter().zip(&words).any(|(a, b)| *a != b.text) {
            return Err(ShellPolicyViolation::Unparseable);
        }
        self.check_words(&words)
    }

    /// Steps 3 and 4 on already scanned words; `xargs` uses it for the
    /// command it would run.
    fn check_words(&self, words: &[Word]) -> Result<CheckedCommand, ShellPolicyViolation> {
        let [program, args @ ..] = words else {
            return Err(ShellPolicyViolation::Empty);
        };
        if let Some(name) = assignment_name(&program.text) {
            return Err(ShellPolicyViolation::EnvAssignment {
                name: name.to_owned(),
            });
        }
        if !program.literal {
            return Err(ShellPolicyViolation::ProgramNotLiteral {
                word: program.text.clone(),
            });
        }
        let name = self.program_name(&program.text)?;
        programs::check(self, name, args)?;
        Ok(CheckedCommand {
            program: program.text.clone(),
            args: args.iter().map(|word| word.text.clone()).collect(),
        })
    }

    /// The allowlisted basename of `program`, or why it may not run.
    fn program_name<'a>(&self, program: &'a str) -> Result<&'a str, ShellPolicyViolation> {
        let name = match program.rsplit_once('/') {
            None => program,
            // An exact string match on the directory also rules out `..`,
            // `//` and `.` components.
            Some((dir, name)) if SYSTEM_BIN_DIRS.contains(&dir) => name,
            Some(_) => {
                return Err(ShellPolicyViolation::ProgramPath {
                    program: program.to_owned(),
                });
            }
        };
        if self.allowlist.contains(name) {
            Ok(name)
        } else {
            Err(ShellPolicyViolation::ProgramNotAllowed {
                program: program.to_owned(),
                allowed: self.allowlist.iter().cloned().collect(),
            })
        }
    }
}

impl Default for ShellPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_ALLOWLIST.iter().copied())
    }
}

/// A command line that passed the policy, split into words as `sh` will
/// see them (quotes removed; `$NAME` references and anchored wildcards are
/// left for the shell to expand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCommand {
    /// The program as written: a bare name or an allowed absolute path.
    pub program: String,
    /// The arguments after the program.
    pub args: Vec<String>,
}

/// Why [`ShellPolicy::check`] refused a command line. Every message is
/// written for the model: what was found and what to do instead. None is
/// worth retrying unchanged; the model retries with a corrected command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellPolicyViolation {
    /// The command is empty or only whitespace.
    #[error("the command is empty: give one program and its arguments, e.g. `ls -la /shared`")]
    Empty,
    /// The command contains a NUL byte.
    #[error("the command contains a NUL byte, which no program can receive: remove it")]
    NulByte,
    /// An unquoted newline, or a carriage return anywhere.
    #[error(
        "line breaks outside quotes (and carriage returns anywhere) are not allowed: put the \
         command on one line and run one command per shell_exec call"
    )]
    LineBreak,
    /// A quote is opened and never closed.
    #[error(
        "the {quote} quote at character {position} is never closed: close it, or escape a \
         literal quote with a backslash"
    )]
    UnbalancedQuote {
        /// Which quote.
        quote: Quote,
        /// 1-based character position of the opening quote.
        position: usize,
    },
    /// Unquoted shell syntax that would run more than one plain command.
    #[error("{}", operator.advice())]
    Operator {
        /// The operator found.
        operator: Operator,
    },
    /// `$(…)` or backticks, unquoted or inside double quotes.
    #[error(
        "command substitution with {form} is not allowed, not even inside double quotes: run \
         the inner command with its own shell_exec call and use its output"
    )]
    CommandSubstitution {
        /// The form found.
        form: Substitution,
    },
    /// An expansion other than a plain `$NAME` or `${NAME}`.
    #[error(
        "the expansion `{expansion}` is not allowed: only plain variables (`$NAME`, `${{NAME}}`) \
         are expanded; write the value out literally"
    )]
    UnsupportedExpansion {
        /// The expansion as written (possibly shortened).
        expansion: String,
    },
    /// An unquoted `#` at the start of a word.
    #[error(
        "`#` at the start of a word begins a shell comment, which would silently drop the rest \
         of the command: quote it (e.g. `'#include'`) if it is part of an argument"
    )]
    Comment,
    /// An unquoted wildcard that could expand into option-like file names.
    #[error(
        "the unquoted wildcard in `{word}` would be expanded by the shell into file names, and a \
         file named like an option (e.g. `--checkpoint-action=exec=…`) would be passed on as \
         one: quote it (`'{word}'`) if the program should receive the pattern itself, or \
         anchor it to a directory (e.g. `./{word}`) if the shell should expand it"
    )]
    UnanchoredWildcard {
        /// The word as written after quote removal.
        word: String,
    },
    /// Unquoted `{a,b}` or `{1..3}`.
    #[error(
        "brace expansion in `{word}` is not allowed, because it turns one word into several the \
         policy never saw: write the words out, or quote the braces"
    )]
    BraceExpansion {
        /// The word as written after quote removal.
        word: String,
    },
    /// `NAME=value` before the program.
    #[error(
        "setting environment variables before the program (`{name}=…`) is not allowed: \
         variables such as LD_PRELOAD, PAGER or GIT_SSH_COMMAND make allowed programs run other \
         code; pass settings as program options instead"
    )]
    EnvAssignment {
        /// The variable name.
        name: String,
    },
    /// The program word contains a variable, `~` or a wildcard.
    #[error(
        "the program name `{word}` is not written literally: write the program's own name, \
         without variables, `~` or wildcards"
    )]
    ProgramNotLiteral {
        /// The program word.
        word: String,
    },
    /// A relative path, or an absolute path outside the system directories.
    #[error(
        "`{program}` names a program by a path that could be any file in the workspace named \
         like an allowed tool: use its bare name (looked up in PATH) or an absolute path under \
         /bin, /usr/bin or /usr/local/bin"
    )]
    ProgramPath {
        /// The program as written.
        program: String,
    },
    /// The program's basename is not on the allowlist.
    #[error("`{program}` is not an allowed program; the allowed programs are: {}", allowed.join(", "))]
    ProgramNotAllowed {
        /// The program as written.
        program: String,
        /// The allowlist, sorted.
        allowed: Vec<String>,
    },
    /// An allowed program with an argument that makes it run other code.
    #[error("`{program}{}` is not allowed: {escape}", quoted_argument(argument))]
    Escape {
        /// The program's basename.
        program: String,
        /// The offending argument; empty when its absence is the problem
        /// (an interpreter without a script reads code from standard input).
        argument: String,
        /// Why it is refused.
        escape: ArgumentEscape,
    },
    /// The command `xargs` would run is itself refused.
    #[error("xargs would run a command the shell policy does not allow: {inner}")]
    XargsTarget {
        /// Why the command xargs would run is refused.
        inner: Box<ShellPolicyViolation>,
    },
    /// The two tokenisers disagree on the words.
    #[error("the command could not be split into words unambiguously: simplify its quoting")]
    Unparseable,
}

/// ` argument` for a message, shortened if long; empty stays empty.
fn quoted_argument(argument: &str) -> String {
    if argument.is_empty() {
        return String::new();
    }
    match argument.char_indices().nth(MAX_QUOTED_ARGUMENT_CHARS) {
        Some((cut, _)) => format!(" {}…", &argument[..cut]),
        None => format!(" {argument}"),
    }
}

/// Which quote [`ShellPolicyViolation::UnbalancedQuote`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// `'`
    Single,
    /// `"`
    Double,
}

impl fmt::Display for Quote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single => "single (')",
            Self::Double => "double (\")",
        })
    }
}

/// Unquoted shell operators refused by the syntax rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `&&`
    And,
    /// `||`
    Or,
    /// `;`
    Semicolon,
    /// `|` (and `|&`)
    Pipe,
    /// A single `&`.
    Background,
    /// `>`, `>|`, `>&`, `&>`
    RedirectOut,
    /// `>>`
    Append,
    /// `<`, `<&`, `<>`, `<(`
    RedirectIn,
    /// `<<`, `<<-`, `<<<`
    HereDoc,
    /// `(` or `)`
    Parenthesis,
}

impl Operator {
    /// The model-facing message for this operator.
    fn advice(self) -> String {
        let chaining = |op: &str| {
            format!(
                "command chaining with `{op}` is not allowed: run one command per shell_exec \
                 call (quote the `{op}` if it is part of an argument)"
            )
        };
        let redirect = |op: &str| {
            format!(
                "output redirection with `{op}` is not allowed: the output is returned to you; \
                 to write a file use the file_write tool or the program's own output option \
                 (e.g. `sort -o out.txt`, `curl -o file`)"
            )
        };
        match self {
            Self::And => chaining("&&"),
            Self::Or => chaining("||"),
            Self::Semicolon => chaining(";"),
            Self::Pipe => "pipes (`|`) are not allowed: run one command per shell_exec call and \
                use program options instead (e.g. `grep -c` rather than `| wc -l`, `sort -u` \
                rather than `| uniq`); quote the `|` if it is part of an argument, as in \
                `grep 'a|b' file`"
                .to_owned(),
            Self::Background => "background jobs (`&`) are not allowed: commands run in the \
                foreground, one per shell_exec call; quote the `&` if it is part of an argument \
                (e.g. in a URL)"
                .to_owned(),
            Self::RedirectOut => redirect(">"),
            Self::Append => redirect(">>"),
            Self::RedirectIn => "input redirection with `<` is not allowed: pass the file name \
                as an argument instead"
                .to_owned(),
            Self::HereDoc => "here-documents and here-strings (`<<`) are not allowed: write the \
                text to a file (e.g. with file_write) and pass the file name"
                .to_owned(),
            Self::Parenthesis => "parentheses (subshells, grouping, process substitution) are \
                not allowed: run one plain command, and quote or escape parentheses that are \
                part of an argument, e.g. `find . \\( -name a -o -name b \\)`"
                .to_owned(),
        }
    }
}

/// The form of a command substitution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Substitution {
    /// `$(…)`
    Dollar,
    /// `` `…` ``
    Backticks,
}

impl fmt::Display for Substitution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dollar => "`$(…)`",
            Self::Backticks => "backticks",
        })
    }
}

/// Why an argument of an allowed program is refused (see
/// [`ShellPolicyViolation::Escape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgumentEscape {
    /// `find -exec`, `-execdir`, `-ok`, `-okdir`.
    FindExec,
    /// `xargs` would run a program whose safety depends on its arguments.
    XargsUncheckedArguments,
    /// `xargs --process-slot-var`.
    XargsEnvironment,
    /// `xargs -I`/`-i` whose replacement string occurs in the program name.
    XargsReplacesProgram,
    /// A separate option value the shell may split into several words.
    SplittingValue,
    /// An option the policy cannot place, so it cannot tell scripts and
    /// programs from other arguments.
    UnrecognisedOption,
    /// `git -c`, `--config-env`, `--exec-path`, `git clone -c/--config`.
    GitConfigOverride,
    /// `git config` with a key that names a command.
    GitExecConfigKey,
    /// A git option or subcommand that runs a command from the command line.
    GitRunsCommand,
    /// An awk program that runs commands or loads extensions.
    AwkRunsCommand,
    /// The sed `e` command or `s///e` flag.
    SedExecute,
    /// A sed script or awk program with `$` variables or wildcards.
    ScriptNotLiteral,
    /// A sed script the policy could not parse.
    ScriptUnparseable,
    /// Inline code: `python -c`, `node -e`, code from standard input, …
    InlineCode,
    /// An option naming another program to run (`tar --to-command`, …).
    RunsProgram,
    /// Options read from a file the policy cannot see (`curl -K`).
    HiddenOptions,
    /// Tool configuration overridden on the command line (`cargo --config`).
    ConfigOverride,
    /// A package manager asked to run an arbitrary program.
    PackageManagerExec,
}

impl fmt::Display for ArgumentEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FindExec => {
                "it runs another program for every file found; list the files with `find` alone \
                 and process them in a separate command"
            }
            Self::XargsUncheckedArguments => {
                "xargs appends arguments read from its input, which the shell policy cannot see, \
                 so it may only run programs whose options cannot run other code (such as ls, \
                 grep, wc or rm); run the program directly with explicit arguments"
            }
            Self::XargsEnvironment => {
                "it sets an environment variable in the programs xargs runs; remove it"
            }
            Self::XargsReplacesProgram => {
                "the replacement string occurs in the program name, so xargs would run whatever \
                 its input says; use a replacement string that appears only in the arguments"
            }
            Self::SplittingValue => {
                "the shell may split this option value into several words (an unquoted \
                 wildcard or `$VAR`), shifting which argument is the script or program to run; \
                 quote it or write the value out"
            }
            Self::UnrecognisedOption => {
                "the shell policy does not recognise this option, so it cannot tell which \
                 arguments are code or programs to run; use a documented option (for options \
                 that take a value, the `--name=value` form), or drop it"
            }
            Self::GitConfigOverride => {
                "it overrides git configuration or git's helper directory from the command line, \
                 which can make git run arbitrary commands (core.pager, core.sshCommand, \
                 alias.*=!…); run the git command without it"
            }
            Self::GitExecConfigKey => {
                "this configuration key makes git run a command (pagers, editors, hooks, \
                 helpers, filters, aliases, ssh or diff programs); set only keys that hold plain \
                 data, such as user.name or user.email"
            }
            Self::GitRunsCommand => {
                "it makes git run a command given on the command line; run that command yourself \
                 in a separate shell_exec call"
            }
            Self::AwkRunsCommand => {
                "awk programs may not run commands (`system()`, `| getline`, `print | \"cmd\"`, \
                 `|&`) or load code (`@load`, `@include`, `@f()` calls, `-l`); any `|` outside a \
                 string or regular expression counts as a pipe. Do the awk part and the command \
                 separately; writing a file with `print > \"file\"` is allowed"
            }
            Self::SedExecute => {
                "the sed `e` command and the `s///e` flag run shell commands; use sed only to \
                 edit text (the `w` command and `s///w` flag may write files)"
            }
            Self::ScriptNotLiteral => {
                "the script must be written literally (single-quoted, without `$` variables or \
                 wildcards) so it can be checked before it runs"
            }
            Self::ScriptUnparseable => {
                "the shell policy could not parse this sed script to rule out the `e` command; \
                 check for unbalanced delimiters or brackets, or split it into simpler `-e` \
                 expressions"
            }
            Self::InlineCode => {
                "inline code (given on the command line or read from standard input) is not run; \
                 write the code to a file in the workspace (e.g. with file_write) and run that \
                 file"
            }
            Self::RunsProgram => {
                "it makes the program run another program of your choosing, outside the \
                 allowlist; use a built-in alternative (e.g. `tar -z`, `rg -z`) or run the other \
                 program yourself in a separate command"
            }
            Self::HiddenOptions => {
                "it reads further options from a file, hiding them from the shell policy and \
                 the audit log; pass the options on the command line instead"
            }
            Self::ConfigOverride => {
                "it overrides the tool's configuration from the command line, which can name \
                 programs for it to run (runners, wrappers, shells); leave configuration to the \
                 project's configuration files"
            }
            Self::PackageManagerExec => {
                "it runs an arbitrary program or package instead of a project script; define \
                 the command as a script in package.json and run it with `npm run <script>` \
                 (or `pnpm run` / `yarn run`)"
            }
        })
    }
}

/// `NAME` if `word` is a shell variable assignment `NAME=value`.
fn assignment_name(word: &str) -> Option<&str> {
    let (name, _) = word.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(policy: &ShellPolicy, command: &str) -> ShellPolicyViolation {
        policy.check(command).expect_err(command)
    }

    #[test]
    fn returns_program_and_args_after_quote_removal() {
        let checked = ShellPolicy::default()
            .check(r#"grep -rn "fn main" '/shared/src'"#)
            .unwrap();
        assert_eq!(checked.program, "grep");
        assert_eq!(checked.args, ["-rn", "fn main", "/shared/src"]);
    }

    #[test]
    fn absolute_paths_only_from_system_directories() {
        let policy = ShellPolicy::default();
        for allowed in ["/bin/ls", "/usr/bin/ls", "/usr/local/bin/ls"] {
            assert!(policy.check(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "./ls",
            "bin/ls",
            "../bin/ls",
            "/tmp/ls",
            "/usr/bin/../../tmp/ls",
            "//bin/ls",
        ] {
            assert!(
                matches!(
                    violation(&policy, refused),
                    ShellPolicyViolation::ProgramPath { .. }
                ),
                "{refused}"
            );
        }
        assert!(matches!(
            violation(&policy, "/usr/bin/bash"),
            ShellPolicyViolation::ProgramNotAllowed { .. }
        ));
    }

    #[test]
    fn environment_assignments_are_refused() {
        let found = violation(&ShellPolicy::default(), "LD_PRELOAD=/tmp/x.so ls");
        assert_eq!(
            found,
            ShellPolicyViolation::EnvAssignment {
                name: "LD_PRELOAD".into()
            }
        );
        // After the program, `NAME=value` is an ordinary argument.
        assert!(ShellPolicy::default().check("make CFLAGS=-O2").is_ok());
    }

    #[test]
    fn program_must_be_literal() {
        let policy = ShellPolicy::default();
        for command in ["$SHELL -c id", "~/ls", "/usr/bin/l?"] {
            assert!(
                matches!(
                    violation(&policy, command),
                    ShellPolicyViolation::ProgramNotLiteral { .. }
                ),
                "{command}"
            );
        }
    }

    #[test]
    fn not_allowed_message_lists_the_allowlist() {
        let message = violation(&ShellPolicy::new(["ls", "cat"]), "bash -c id").to_string();
        assert_eq!(
            message,
            "`bash` is not an allowed program; the allowed programs are: cat, ls"
        );
    }

    #[test]
    fn escape_message_names_program_and_shortened_argument() {
        let policy = ShellPolicy::default();
        let message = violation(&policy, r"find . -exec rm {} \;").to_string();
        assert!(message.starts_with("`find -exec` is not allowed: it runs another program"));
        let long = format!("awk 'BEGIN {{ {} system(\"id\") }}'", "x = 1; ".repeat(20));
        assert!(
            violation(&policy, &long)
                .to_string()
                .contains("…` is not allowed: awk programs")
        );
        let message = violation(&policy, "python3").to_string();
        assert!(
            message.starts_with("`python3` is not allowed: inline code"),
            "{message}"
        );
    }

    #[test]
    fn xargs_target_violation_is_nested() {
        let found = violation(&ShellPolicy::default(), "xargs -0 sh -c id");
        let ShellPolicyViolation::XargsTarget { inner } = &found else {
            panic!("{found:?}")
        };
        assert!(matches!(
            **inner,
            ShellPolicyViolation::ProgramNotAllowed { .. }
        ));
        assert!(found.to_string().starts_with("xargs would run a command"));
    }

    #[test]
    fn assignment_names() {
        assert_eq!(assignment_name("A_1=x"), Some("A_1"));
        assert_eq!(assignment_name("_=x"), Some("_"));
        assert_eq!(assignment_name("1A=x"), None);
        assert_eq!(assignment_name("--opt=x"), None);
        assert_eq!(assignment_name("=x"), None);
    }
}
