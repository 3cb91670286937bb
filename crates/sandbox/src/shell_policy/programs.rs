//! Argument-level checks: options that make an allowlisted program run
//! other programs or inline code.
//!
//! The principle: every program a command starts is either named on the
//! command line and allowlisted, or code from a file in the workspace run by
//! an allowed interpreter or build tool (a visible artefact that the sandbox
//! contains). Code written into the arguments themselves is refused.
//! Programs are recognised by basename family, so an operator who allows
//! `gawk`, `gtar` or `python3.12` gets the same checks.

use std::path::Path;

use super::options::{self, Name, ParseError, Parsed, Syntax, UnknownLong, Value};
use super::scripts::{self, SedProblem};
use super::syntax::Word;
use super::{ArgumentEscape, ShellPolicy, ShellPolicyViolation, compound, git};

/// A refused argument.
#[derive(Debug)]
pub(super) struct Hit {
    argument: String,
    escape: ArgumentEscape,
}

pub(super) type Outcome = Result<(), Hit>;

pub(super) fn hit(argument: &str, escape: ArgumentEscape) -> Hit {
    Hit {
        argument: argument.to_owned(),
        escape,
    }
}

/// Programs with argument-level checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Find,
    Xargs,
    Git,
    Awk,
    Sed,
    Python,
    Node,
    Tar,
    Sort,
    Ripgrep,
    Curl,
    Wget,
    Make,
    Cargo,
    Npm,
    Pnpm,
    Yarn,
}

impl Family {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "find" | "gfind" => Self::Find,
            "xargs" | "gxargs" => Self::Xargs,
            "git" => Self::Git,
            "awk" | "gawk" | "mawk" | "nawk" => Self::Awk,
            "sed" | "gsed" => Self::Sed,
            "node" | "nodejs" => Self::Node,
            "tar" | "gtar" | "bsdtar" => Self::Tar,
            "sort" | "gsort" => Self::Sort,
            "rg" => Self::Ripgrep,
            "curl" => Self::Curl,
            "wget" => Self::Wget,
            "make" | "gmake" => Self::Make,
            "cargo" => Self::Cargo,
            "npm" => Self::Npm,
            "pnpm" => Self::Pnpm,
            "yarn" => Self::Yarn,
            // python, python3, python3.12
            _ if name
                .strip_prefix("python")
                .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.')) =>
            {
                Self::Python
            }
            _ => return None,
        })
    }
}

/// Checks the arguments of the allowlisted program `name`.
pub(super) fn check(
    policy: &ShellPolicy,
    name: &str,
    args: &[Word],
) -> Result<(), ShellPolicyViolation> {
    let Some(family) = Family::of(name) else {
        return Ok(());
    };
    let outcome = match family {
        Family::Xargs => return xargs(policy, args),
        Family::Find => find(args),
        Family::Git => git::check(args),
        Family::Awk => awk(args),
        Family::Sed => sed(args),
        Family::Python => python(args),
        Family::Node => node(args),
        Family::Tar => tar(args),
        Family::Sort => blocked(args, &SORT),
        Family::Ripgrep => blocked(args, &RIPGREP),
        Family::Curl => blocked(args, &CURL),
        Family::Wget => wget(args),
        Family::Make => make(args),
        Family::Cargo => cargo(args),
        Family::Npm => npm(args),
        Family::Pnpm => pnpm(args),
        Family::Yarn => yarn(args),
    };
    outcome.map_err(|Hit { argument, escape }| escaped(name, argument, escape))
}

fn escaped(program: &str, argument: String, escape: ArgumentEscape) -> ShellPolicyViolation {
    ShellPolicyViolation::Escape {
        program: program.to_owned(),
        argument,
        escape,
    }
}

/// Options refused wherever they appear before `--`.
#[derive(Debug)]
pub(super) struct Rule {
    /// Long option names, space-separated, matched with abbreviations.
    pub(super) long: &'static str,
    /// Short option letters, matched inside clusters.
    pub(super) short: &'static str,
    /// Short options whose value ends a cluster (so `-fI` is `-f I`).
    pub(super) value_letters: &'static str,
    pub(super) escape: ArgumentEscape,
}

pub(super) fn blocked(args: &[Word], rule: &Rule) -> Outcome {
    let found = args
        .iter()
        .take_while(|word| word.text != "--")
        .find(|word| {
            rule.long
                .split_ascii_whitespace()
                .any(|name| options::is_long(&word.text, name))
                || rule
                    .short
                    .chars()
                    .any(|c| options::cluster_has(&word.text, c, rule.value_letters))
        });
    found.map_or(Ok(()), |word| Err(hit(&word.text, rule.escape)))
}

pub(super) fn parse<'a>(args: &'a [Word], syntax: &Syntax) -> Result<Parsed<'a>, Hit> {
    options::parse(args, syntax).map_err(|error| match error {
        ParseError::Unknown(word) => hit(&word.text, ArgumentEscape::UnrecognisedOption),
        ParseError::SplitValue(word) => hit(&word.text, ArgumentEscape::SplittingValue),
    })
}

/// Whether `word` is one of the space-separated `names`.
fn listed(names: &str, word: &str) -> bool {
    names.split_ascii_whitespace().any(|name| name == word)
}

// find -------------------------------------------------------------------

fn find(args: &[Word]) -> Outcome {
    // `-delete` and `-fprint*` stay allowed: they change files inside the
    // sandbox, as `rm` and `tee` may.
    match args
        .iter()
        .find(|word| listed("-exec -execdir -ok -okdir", &word.text))
    {
        Some(word) => Err(hit(&word.text, ArgumentEscape::FindExec)),
        None => Ok(()),
    }
}

// xargs ------------------------------------------------------------------

const XARGS: Syntax = Syntax {
    short_flags: Some("0oprtx"),
    short_value: "adEILnPs",
    short_optional: "eil",
    long_flags: "null open-tty interactive no-run-if-empty verbose exit show-limits help version",
    long_value: "arg-file delimiter max-args max-procs max-chars process-slot-var",
    long_optional: "eof replace max-lines",
    unknown_long: UnknownLong::Reject,
    abbreviations: true,
    ..Syntax::EMPTY
};

/// The command xargs runs must pass the whole policy, and must not be a
/// program with argument-level checks: xargs appends arguments from its
/// input (or `-a FILE`) that no check here ever sees.
fn xargs(policy: &ShellPolicy, args: &[Word]) -> Result<(), ShellPolicyViolation> {
    let on_xargs = |Hit { argument, escape }| escaped("xargs", argument, escape);
    let parsed = parse(args, &XARGS).map_err(on_xargs)?;
    let slot_var = parsed
        .options
        .iter()
        .find(|opt| opt.name == Name::Long("process-slot-var"));
    if let Some(opt) = slot_var {
        return Err(on_xargs(hit(
            &opt.word.text,
            ArgumentEscape::XargsEnvironment,
        )));
    }
    // Without a command xargs runs `echo`.
    let Some(&(at, _)) = parsed.operands.first() else {
        return Ok(());
    };
    let checked =
        policy
            .check_words(&args[at..])
            .map_err(|inner| ShellPolicyViolation::XargsTarget {
                inner: Box::new(inner),
            })?;
    let name = checked.program.rsplit('/').next().unwrap_or_default();
    if Family::of(name).is_some() {
        return Err(on_xargs(hit(
            &checked.program,
            ArgumentEscape::XargsUncheckedArguments,
        )));
    }
    // With `-I R`, xargs replaces R in every initial argument, the program
    // name included (`xargs -I ls ls` runs what the input says).
    let replace = parsed.options.iter().find_map(|opt| match opt.name {
        Name::Short('I' | 'i') | Name::Long("replace") => {
            Some(opt.value.map_or("{}", |value| value.text))
        }
        Name::Short(_) | Name::Long(_) => None,
    });
    if let Some(replace) = replace.filter(|replace| checked.program.contains(replace)) {
        return Err(on_xargs(hit(replace, ArgumentEscape::XargsReplacesProgram)));
    }
    Ok(())
}

// awk --------------------------------------------------------------------

/// gawk's options; mawk and busybox use a subset. Unknown letters are flags.
const AWK: Syntax = Syntax {
    short_value: "FfvWeEilZ",
    short_optional: "dDLop",
    long_flags: "characters-as-bytes traditional copyright gen-pot help bignum use-lc-numeric \
        non-decimal-data no-optimize optimize posix re-interval sandbox lint-old version csv trace",
    long_value: "field-separator file assign source exec include load",
    long_optional: "dump-variables debug lint pretty-print profile",
    abbreviations: true,
    ..Syntax::EMPTY
};

fn awk(args: &[Word]) -> Outcome {
    let parsed = parse(args, &AWK)?;
    let mut program_given = false;
    for opt in &parsed.options {
        match opt.name {
            Name::Short('l') | Name::Long("load") => {
                return Err(hit(&opt.word.text, ArgumentEscape::AwkRunsCommand));
            }
            Name::Short('e') | Name::Long("source") => {
                program_given = true;
                if let Some(value) = opt.value {
                    awk_program(&opt.word.text, value)?;
                }
            }
            Name::Short('f' | 'E') | Name::Long("file" | "exec") => {
                program_given = true;
                if let Some(value) = opt.value.filter(|value| reads_standard_input(value.text)) {
                    return Err(hit(value.text, ArgumentEscape::InlineCode));
                }
            }
            Name::Short(_) | Name::Long(_) => {}
        }
    }
    match parsed.operands.first() {
        Some((_, word)) if !program_given => awk_program(&word.text, Value::of(word)),
        _ => Ok(()),
    }
}

fn awk_program(argument: &str, program: Value<'_>) -> Outcome {
    if !program.literal {
        return Err(hit(argument, ArgumentEscape::ScriptNotLiteral));
    }
    if scripts::awk_runs_commands(program.text) {
        return Err(hit(argument, ArgumentEscape::AwkRunsCommand));
    }
    Ok(())
}

// sed --------------------------------------------------------------------

/// GNU sed 4.9 (`bsnrzuEe:f:l:i::V:`, plus `o:` in some builds).
const SED: Syntax = Syntax {
    short_flags: Some("bsnrzuE"),
    short_value: "eflVo",
    short_optional: "i",
    long_flags: "binary regexp-extended debug sandbox follow-symlinks posix quiet silent separate \
        unbuffered null-data zero-terminated help version",
    long_value: "expression file line-length",
    long_optional: "in-place",
    unknown_long: UnknownLong::Reject,
    abbreviations: true,
    permute: true,
    ..Syntax::EMPTY
};

fn sed(args: &[Word]) -> Outcome {
    let parsed = parse(args, &SED)?;
    let mut fragments: Vec<(&str, Value<'_>)> = Vec::new();
    let mut from_file = false;
    for opt in &parsed.options {
        match (opt.name, opt.value) {
            (Name::Short('e') | Name::Long("expression"), Some(value)) => {
                fragments.push((opt.word.text.as_str(), value));
            }
            (Name::Short('f') | Name::Long("file"), Some(value))
                if reads_standard_input(value.text) =>
            {
                return Err(hit(value.text, ArgumentEscape::InlineCode));
            }
            (Name::Short('f') | Name::Long("file"), _) => from_file = true,
            _ => {}
        }
    }
    if fragments.is_empty()
        && !from_file
        && let Some((_, word)) = parsed.operands.first()
    {
        fragments.push((word.text.as_str(), Value::of(word)));
    }
    if let Some((argument, _)) = fragments.iter().find(|(_, value)| !value.literal) {
        return Err(hit(argument, ArgumentEscape::ScriptNotLiteral));
    }
    let sed_hit = |argument: &str, problem| match problem {
        SedProblem::Execute => hit(argument, ArgumentEscape::SedExecute),
        SedProblem::Unparseable => hit(argument, ArgumentEscape::ScriptUnparseable),
    };
    for (argument, value) in &fragments {
        scripts::sed_script(value.text).map_err(|problem| sed_hit(argument, problem))?;
    }
    // sed joins `-e` fragments with newlines; a command can span them.
    let joined = fragments
        .iter()
        .map(|(_, value)| value.text)
        .collect::<Vec<_>>()
        .join("\n");
    scripts::sed_script(&joined).map_err(|problem| sed_hit(&joined, problem))
}

// interpreters -----------------------------------------------------------

const PYTHON: Syntax = Syntax {
    short_flags: Some("bBdEhiIOPqRsSuvVx"),
    short_value: "WX",
    short_last: "cm",
    long_flags: "version help help-env help-xoptions help-all",
    long_value: "check-hash-based-pycs",
    unknown_long: UnknownLong::Reject,
    ..Syntax::EMPTY
};

/// Standard modules that run code given on the command line or stdin.
const PYTHON_CODE_MODULES: &str = "code pdb timeit asyncio idlelib IPython";

fn python(args: &[Word]) -> Outcome {
    let parsed = parse(args, &PYTHON)?;
    let mut informational = false;
    for opt in &parsed.options {
        match opt.name {
            Name::Short('c' | 'i') => return Err(hit(&opt.word.text, ArgumentEscape::InlineCode)),
            Name::Short('m') => {
                let module = opt.value.map_or("", |value| value.text);
                let root = module.split('.').next().unwrap_or_default();
                if listed(PYTHON_CODE_MODULES, root) {
                    return Err(hit(module, ArgumentEscape::InlineCode));
                }
                return Ok(());
            }
            Name::Short('V' | 'h') => informational = true,
            Name::Long(name) if name.starts_with("help") || name == "version" => {
                informational = true;
            }
            Name::Short(_) | Name::Long(_) => {}
        }
    }
    script_operand(&parsed, informational)
}

/// Whether a script or makefile named `path` is the program's standard
/// input: `-`, `/dev/stdin`, or a descriptor under `/dev/fd` or
/// `/proc/*/fd`. In a pipeline that is the previous command's output
/// (`curl … | python3 /dev/stdin`), which is inline code with the pipe in
/// the middle; on its own, standard input is empty.
fn reads_standard_input(path: &str) -> bool {
    if path == "-" {
        return true;
    }
    let path = Path::new(path);
    if !path.is_absolute() {
        return false;
    }
    let normal = compound::normalise(path);
    let mut components = normal
        .iter()
        .skip(1)
        .map(|part| part.to_str().unwrap_or(""));
    match (components.next(), components.next(), components.next()) {
        (Some("dev"), Some("stdin" | "fd"), _) => true,
        (Some("proc"), Some(_), Some("fd")) => true,
        (Some("proc"), Some(_), Some("task")) => components.nth(1) == Some("fd"),
        _ => false,
    }
}

/// An interpreter's script operand: a file. `-` or standard input by
/// another name, or none at all, means code from standard input (or an
/// interactive prompt).
fn script_operand(parsed: &Parsed<'_>, no_script_needed: bool) -> Outcome {
    match parsed.operands.first() {
        Some((_, word)) if reads_standard_input(&word.text) => {
            Err(hit(&word.text, ArgumentEscape::InlineCode))
        }
        Some(_) => Ok(()),
        None if no_script_needed => Ok(()),
        None => Err(hit("", ArgumentEscape::InlineCode)),
    }
}

/// Node options are exact (no abbreviations); an unknown one must be
/// written `--name=value` so it cannot hide the script position.
const NODE: Syntax = Syntax {
    short_flags: Some("chvi"),
    short_value: "eprC",
    long_flags: "test watch check version help interactive no-warnings trace-warnings \
        enable-source-maps expose-gc inspect inspect-brk inspect-wait no-deprecation \
        throw-deprecation trace-deprecation pending-deprecation preserve-symlinks \
        preserve-symlinks-main experimental-vm-modules experimental-strip-types \
        experimental-transform-types experimental-test-coverage experimental-detect-module \
        experimental-require-module experimental-wasm-modules experimental-sqlite \
        experimental-websocket test-only frozen-intrinsics cpu-prof heap-prof prof \
        abort-on-uncaught-exception trace-uncaught trace-exit trace-sigint zero-fill-buffers \
        no-addons no-global-search-paths jitless permission experimental-permission v8-options \
        report-on-fatalerror report-uncaught-exception force-fips enable-fips \
        insecure-http-parser no-experimental-fetch",
    long_value: "eval print require import loader experimental-loader input-type conditions \
        title env-file env-file-if-exists test-reporter test-reporter-destination \
        test-name-pattern test-skip-pattern test-concurrency test-timeout test-shard watch-path \
        run inspect-port debug-port redirect-warnings report-dir report-directory \
        report-filename report-signal diagnostic-dir cpu-prof-dir cpu-prof-name \
        cpu-prof-interval heap-prof-dir heap-prof-name heap-prof-interval icu-data-dir \
        openssl-config unhandled-rejections dns-result-order stack-trace-limit \
        max-http-header-size disable-warning allow-fs-read allow-fs-write secure-heap \
        secure-heap-min tls-keylog use-largepages",
    unknown_long: UnknownLong::RejectUnlessAttached,
    underscores: true,
    ..Syntax::EMPTY
};

fn node(args: &[Word]) -> Outcome {
    let parsed = parse(args, &NODE)?;
    let mut no_script_needed = false;
    for opt in &parsed.options {
        let value = opt.value.map_or("", |value| value.text);
        match opt.name {
            Name::Short('e' | 'p' | 'i') | Name::Long("eval" | "print" | "interactive") => {
                return Err(hit(&opt.word.text, ArgumentEscape::InlineCode));
            }
            // `--import 'data:text/javascript,…'` is inline code.
            Name::Short('r')
            | Name::Long("require" | "import" | "loader" | "experimental-loader")
                if value.trim_start().to_ascii_lowercase().starts_with("data:")
                    || reads_standard_input(value) =>
            {
                return Err(hit(value, ArgumentEscape::InlineCode));
            }
            Name::Short('v' | 'h')
            | Name::Long("version" | "help" | "v8-options" | "test" | "run") => {
                no_script_needed = true;
            }
            Name::Short(_) | Name::Long(_) => {}
        }
    }
    script_operand(&parsed, no_script_needed)
}

// tools with program-running options ---------------------------------------

fn tar(args: &[Word]) -> Outcome {
    // Old-style first argument (`tar cIf prog a.tar`): every letter is an option.
    if let Some(word) = args.first().filter(|word| !word.text.starts_with('-'))
        && word.text.contains(['I', 'F'])
    {
        return Err(hit(&word.text, ArgumentEscape::RunsProgram));
    }
    blocked(
        args,
        &Rule {
            long: "to-command checkpoint-action use-compress-program rsh-command info-script \
            new-volume-script rmt-command",
            short: "IF",
            value_letters: "bCfgHKLNTVX",
            escape: ArgumentEscape::RunsProgram,
        },
    )
}

const SORT: Rule = Rule {
    long: "compress-program",
    short: "",
    value_letters: "",
    escape: ArgumentEscape::RunsProgram,
};

const RIPGREP: Rule = Rule {
    long: "pre pre-glob hostname-bin",
    short: "",
    value_letters: "",
    escape: ArgumentEscape::RunsProgram,
};

const CURL: Rule = Rule {
    long: "config",
    short: "K",
    value_letters: "AbcCdDeEFHmoPQrtTuUwxXyYz",
    escape: ArgumentEscape::HiddenOptions,
};

fn wget(args: &[Word]) -> Outcome {
    blocked(
        args,
        &Rule {
            long: "config",
            short: "",
            value_letters: "",
            escape: ArgumentEscape::HiddenOptions,
        },
    )?;
    // `--use-askpass=CMD`, or `-e use_askpass=CMD` (wgetrc names ignore `-`/`_`).
    let askpass = args.iter().find(|word| {
        word.text
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .contains("useaskpass")
    });
    askpass.map_or(Ok(()), |word| {
        Err(hit(&word.text, ArgumentEscape::RunsProgram))
    })
}

const MAKE: Rule = Rule {
    long: "eval",
    short: "E",
    value_letters: "CfIjloOW",
    escape: ArgumentEscape::InlineCode,
};

/// `make --eval` and a makefile read from standard input (`-f -`).
fn make(args: &[Word]) -> Outcome {
    blocked(args, &MAKE)?;
    let mut words = args.iter().take_while(|word| word.text != "--");
    while let Some(word) = words.next() {
        let text = word.text.as_str();
        let attached = if ["file", "makefile"]
            .iter()
            .any(|name| options::is_long(text, name))
        {
            text.split_once('=').map(|(_, value)| value)
        } else if options::cluster_has(text, 'f', MAKE.value_letters) {
            // The rest of the cluster after `f`, if any, is its value.
            text.split_once('f')
                .map(|(_, rest)| rest)
                .filter(|rest| !rest.is_empty())
        } else {
            continue;
        };
        let value = match attached {
            Some(value) => value,
            None => words.next().map_or("", |next| next.text.as_str()),
        };
        if reads_standard_input(value) {
            return Err(hit(text, ArgumentEscape::InlineCode));
        }
    }
    Ok(())
}

fn cargo(args: &[Word]) -> Outcome {
    blocked(
        args,
        &Rule {
            long: "config",
            short: "",
            value_letters: "",
            escape: ArgumentEscape::ConfigOverride,
        },
    )?;
    // `cargo rustc -- -C linker=PROG` (also after `--`) makes rustc run
    // PROG, which need not be on the allowlist.
    match args.iter().find(|word| word.text.contains("linker=")) {
        Some(word) => Err(hit(&word.text, ArgumentEscape::RunsProgram)),
        None => Ok(()),
    }
}

// package managers ---------------------------------------------------------

/// npm configuration keys (also `--key` options) naming programs to run.
const NPM_PROGRAM_KEYS: &str = "script-shell shell node-options git editor browser viewer call";

/// Words before `--` that do not look like options.
fn plain_operands(args: &[Word]) -> impl Iterator<Item = (usize, &Word)> {
    args.iter()
        .enumerate()
        .take_while(|(_, word)| word.text != "--")
        .filter(|(_, word)| !word.text.starts_with('-'))
}

/// `--script-shell=…` and friends, `npm config set script-shell …`, which
/// persists the same setting, and scripts stored from the command line.
fn package_manager_config(args: &[Word]) -> Outcome {
    blocked(
        args,
        &Rule {
            long: NPM_PROGRAM_KEYS,
            short: "",
            value_letters: "",
            escape: ArgumentEscape::ConfigOverride,
        },
    )?;
    let mut operands = plain_operands(args).map(|(_, word)| word);
    let command = operands.next().map_or("", |word| word.text.as_str());
    // `npm pkg set scripts.x='…'` and `npm set-script x '…'` store inline
    // commands for the next `npm run`.
    let stores_script = match command {
        "set-script" => operands.next(),
        "pkg" => operands.find(|word| word.text.starts_with("scripts.")),
        _ => None,
    };
    if let Some(word) = stores_script {
        return Err(hit(&word.text, ArgumentEscape::ConfigOverride));
    }
    if !listed("config c", command) {
        return Ok(());
    }
    let names_program = |word: &&Word| {
        let key = word
            .text
            .split_once('=')
            .map_or(word.text.as_str(), |(key, _)| key);
        listed(
            NPM_PROGRAM_KEYS,
            &key.to_ascii_lowercase().replace('_', "-"),
        )
    };
    match operands.find(names_program) {
        Some(word) => Err(hit(&word.text, ArgumentEscape::ConfigOverride)),
        None => Ok(()),
    }
}

/// Any operand naming a subcommand that runs arbitrary programs.
fn exec_subcommand(args: &[Word], names: &str) -> Outcome {
    match plain_operands(args).find(|(_, word)| listed(names, &word.text)) {
        Some((_, word)) => Err(hit(&word.text, ArgumentEscape::PackageManagerExec)),
        None => Ok(()),
    }
}

fn npm(args: &[Word]) -> Outcome {
    package_manager_config(args)?;
    exec_subcommand(args, "exec x explore")
}

const PNPM: Syntax = Syntax {
    short_value: "CF",
    long_value: "dir filter filter-prod workspace-dir reporter loglevel test-pattern \
        changed-files-ignore-pattern resume-from",
    ..Syntax::EMPTY
};

/// pnpm's own commands, including those it passes through to npm. pnpm runs
/// any other first word as a script, a dependency's binary or, failing
/// both, any program on PATH; the policy cannot tell these apart.
const PNPM_COMMANDS: &str = "add approve-builds audit bin c cat-file cat-index config dedupe \
    deploy dist-tag docs doctor env fetch find-hash get help i ignored-builds import info init \
    install install-test it la licenses link list ll ln login logout ls outdated owner pack \
    patch patch-commit patch-remove ping prune publish rb rebuild remove rm root run run-script \
    search self-update server set setup start store t test tst un uninstall unlink up update \
    upgrade version view whoami why";

fn pnpm(args: &[Word]) -> Outcome {
    package_manager_config(args)?;
    let parsed = parse(args, &PNPM)?;
    match parsed.operands.first() {
        Some((_, word)) if !listed(PNPM_COMMANDS, &word.text) => {
            Err(hit(&word.text, ArgumentEscape::PackageManagerExec))
        }
        _ => Ok(()),
    }
}

fn yarn(args: &[Word]) -> Outcome {
    package_manager_config(args)?;
    exec_subcommand(args, "exec dlx")?;
    // `yarn node …` and `yarn run node …` are node with yarn's environment.
    let mut operands = plain_operands(args);
    let node_at = match operands.next() {
        Some((at, word)) if word.text == "node" => Some(at),
        Some((_, word)) if word.text == "run" => operands
            .next()
            .filter(|(_, word)| word.text == "node")
            .map(|(at, _)| at),
        _ => None,
    };
    node_at.map_or(Ok(()), |at| node(&args[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_basename() {
        assert_eq!(Family::of("python3.12"), Some(Family::Python));
        assert_eq!(Family::of("python"), Some(Family::Python));
        assert_eq!(Family::of("pythonista"), None);
        assert_eq!(Family::of("gawk"), Some(Family::Awk));
        assert_eq!(Family::of("ls"), None);
    }

    #[test]
    fn standard_input_by_any_name() {
        for path in [
            "-",
            "/dev/stdin",
            "/dev/fd/0",
            "/dev//./stdin",
            "/proc/self/fd/0",
            "/proc/1/task/1/fd/0",
            "/proc/thread-self/fd/0",
        ] {
            assert!(reads_standard_input(path), "{path}");
        }
        for path in ["x.py", "dev/stdin", "/dev/null", "/proc/self/status", "--"] {
            assert!(!reads_standard_input(path), "{path}");
        }
    }

    #[test]
    fn operator_added_variants_get_the_same_checks() {
        let policy = ShellPolicy::new(["gawk", "python3.12", "gtar"]);
        for command in [
            "gawk 'BEGIN{system(\"id\")}'",
            "python3.12 -c 1",
            "gtar -I x -xf a",
        ] {
            let found = policy.check(command).expect_err(command);
            assert!(
                matches!(found, ShellPolicyViolation::Escape { .. }),
                "{command}: {found}"
            );
        }
    }
}
