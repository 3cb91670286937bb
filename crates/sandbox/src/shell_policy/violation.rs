//! Why the shell policy refuses a command line: [`ShellPolicyViolation`]
//! and the enums its variants carry. Every message is written for the
//! model that wrote the command: what was found, and what to do instead.

use std::fmt;

use super::Connector;

/// Longest argument quoted back in a message; awk programs can be long.
const MAX_QUOTED_ARGUMENT_CHARS: usize = 60;

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
         command on one line (join commands with `&&` or `;` where the shell_exec tool accepts \
         command lists, or run them in separate calls)"
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
    /// Compound syntax: one command of a line with several is refused, so
    /// the whole line is (nothing of it runs).
    #[error(
        "command {position} of {count} (`{command}`) is refused, so nothing in the line was run: \
         {inner}"
    )]
    InCommand {
        /// 1-based position of the refused command in the line.
        position: usize,
        /// How many commands the line has.
        count: usize,
        /// The refused command as written (possibly shortened).
        command: String,
        /// Why it is refused.
        inner: Box<ShellPolicyViolation>,
    },
    /// Compound syntax: a `|`, `&&`, `||` or `;` without a command on one
    /// side (a trailing `;` is fine).
    #[error(
        "`{connector}` needs a command on each side: remove it or add the missing command (only \
         a trailing `;` may end the line)"
    )]
    MissingCommand {
        /// The operator.
        connector: Connector,
    },
    /// Compound syntax: a redirection operator without a file name.
    #[error(
        "the redirection `{redirection}` has no target: write a file name after it (`> out.txt`, \
         `2> /dev/null`) or a descriptor after `>&` (`2>&1`)"
    )]
    MissingRedirectionTarget {
        /// The redirection as written.
        redirection: String,
    },
    /// Compound syntax: a command made of redirections only.
    #[error(
        "a command made only of redirections runs no program: name the program (to create an \
         empty file, use `touch FILE`)"
    )]
    RedirectionOnly,
    /// Compound syntax: a redirection form the policy does not accept.
    #[error("the redirection `{redirection}` is not allowed: {problem}")]
    UnsupportedRedirection {
        /// The redirection as written (possibly only its operator).
        redirection: String,
        /// Why it is refused.
        problem: RedirectionProblem,
    },
    /// Compound syntax: a file redirection outside the workspace.
    #[error(
        "the redirection `{redirection}` names a file outside the workspace ({workspace}): \
         redirect to a relative path that does not climb above the working directory with `..`, \
         to an absolute path under {workspace}, or to /dev/null"
    )]
    RedirectOutsideWorkspace {
        /// The redirection as written.
        redirection: String,
        /// The workspace directory.
        workspace: String,
    },
    /// Compound syntax: `cd` used in a way the policy refuses.
    #[error("`cd` {problem}")]
    Cd {
        /// What is wrong.
        problem: CdProblem,
    },
    /// Compound syntax: `cd` to a directory outside the workspace.
    #[error(
        "`cd {path}` would leave the workspace ({workspace}): change only to directories inside \
         it, by a relative path that does not climb above the working directory with `..` or by \
         an absolute path under {workspace}"
    )]
    CdOutsideWorkspace {
        /// The directory as written.
        path: String,
        /// The workspace directory.
        workspace: String,
    },
    /// Compound syntax: a builtin that changes the state later commands
    /// of the line run in.
    #[error(
        "`{name}` changes the shell's own state (variables, options, aliases, traps or the \
         command lookup) for the commands after it, which the shell policy checked as written: \
         it is not allowed; write values into the commands themselves"
    )]
    ShellStateBuiltin {
        /// The builtin (`read`, `export`, `printf -v`, …).
        name: String,
    },
    /// A variable whose value the command line itself wrote: bash's
    /// `$BASH_EXECUTION_STRING` and `$BASH_COMMAND` (both syntaxes), and
    /// in compound lines `$_` and, after a `cd`, `$PWD` and `$OLDPWD`.
    #[error(
        "`${name}` is not allowed in this command line: its value is text the command line \
         itself wrote (bash's `$BASH_EXECUTION_STRING` and `$BASH_COMMAND` hold the command, \
         `$_` the previous command's last argument, and `cd` changes `$PWD` and `$OLDPWD`), \
         which the shell would split into words the shell policy never checked; write the \
         value out"
    )]
    ShellStateVariable {
        /// The variable's name.
        name: String,
    },
}

/// `text` shortened for a message if long.
pub(super) fn shortened(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_ARGUMENT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// ` argument` for a message, shortened if long; empty stays empty.
fn quoted_argument(argument: &str) -> String {
    if argument.is_empty() {
        return String::new();
    }
    format!(" {}", shortened(argument))
}

/// Why [`ShellPolicyViolation::UnsupportedRedirection`] refused a
/// redirection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectionProblem {
    /// A descriptor of more than one digit (`10>`).
    LongDescriptor,
    /// bash's `{name}>`.
    NamedDescriptor,
    /// `>&` or `<&` followed by something other than one digit.
    DuplicateTarget,
    /// A file name with `$`, `~` or a wildcard.
    TargetNotLiteral,
}

impl fmt::Display for RedirectionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LongDescriptor => {
                "bash reads a descriptor of several digits as a descriptor and dash as an \
                 argument; use a descriptor from 0 to 9"
            }
            Self::NamedDescriptor => {
                "bash allocates a descriptor for `{name}` and dash reads it as an argument; use a \
                 descriptor from 0 to 9"
            }
            Self::DuplicateTarget => {
                "`>&` and `<&` take one descriptor digit (`2>&1`, `>&2`); to send both outputs \
                 to a file write `> file 2>&1`"
            }
            Self::TargetNotLiteral => {
                "the file name must be written literally, without variables, `~` or wildcards"
            }
        })
    }
}

/// Why [`ShellPolicyViolation::Cd`] refused a `cd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdProblem {
    /// No directory, an empty one, or several words.
    Arguments,
    /// The directory has `$`, `~` or a wildcard.
    NotLiteral,
    /// An option, or `cd -`.
    Option,
}

impl fmt::Display for CdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Arguments => "takes exactly one directory: write `cd DIR && …`",
            Self::NotLiteral => {
                "needs the directory written literally, without variables, `~` or wildcards"
            }
            Self::Option => "takes no options, and `cd -` is not allowed: name the directory",
        })
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
    /// `|&` (compound syntax; the strict syntax reports it as a pipe).
    PipeStderr,
    /// `&>` (compound syntax; the strict syntax reports it as `>`).
    RedirectBoth,
    /// `>|` (compound syntax).
    Clobber,
    /// `<>` (compound syntax).
    ReadWrite,
    /// `<(` or `>(` (compound syntax).
    ProcessSubstitution,
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
                foreground and end with the call; quote the `&` if it is part of an argument \
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
            Self::PipeStderr => {
                "`|&` is bash-only: write `2>&1 |` to pipe standard error too".to_owned()
            }
            Self::RedirectBoth => "`&>` is bash-only (dash reads it as a background job): write \
                `> file 2>&1` to send both outputs to a file"
                .to_owned(),
            Self::Clobber => "`>|` (writing over a file despite noclobber) is not allowed: \
                write `> file`"
                .to_owned(),
            Self::ReadWrite => "`<>` (open a file for reading and writing) is not allowed: use \
                `<` or `>`"
                .to_owned(),
            Self::ProcessSubstitution => "process substitution (`<(…)`, `>(…)`) is not allowed: \
                write the inner command's output to a file first (`cmd > tmp.txt && …`), or use \
                a pipe"
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
