//! git's argument-level checks. git can run commands from configuration
//! (pagers, editors, hooks, helpers, aliases, filters, diff drivers, ssh),
//! from options (`--exec`, `--upload-pack`, `-x`) and from subcommands
//! (`bisect run`, `submodule foreach`). The command line may neither
//! override configuration (`-c`, `--config-env`, `--exec-path`) nor write
//! command-valued keys with `git config`; repository-local configuration
//! written by other means is left to the sandbox.

use super::ArgumentEscape;
use super::options::{Name, Syntax};
use super::programs::{Outcome, Rule, blocked, hit, parse};
use super::syntax::Word;

/// Options before the subcommand (git.c parses them exactly, no clusters).
const GLOBAL: Syntax = Syntax {
    short_value: "Cc",
    long_value: "git-dir work-tree namespace super-prefix config-env attr-source",
    long_optional: "exec-path list-cmds",
    ..Syntax::EMPTY
};

/// Subcommand options that run a command, for every subcommand (git's
/// parse-options accepts abbreviations).
const RUNS_COMMAND: &str = "upload-pack receive-pack exec extcmd open-files-in-pager access-hook";

/// Subcommands that run commands given on the command line.
const RUNS_COMMAND_SUBCOMMANDS: &str = "filter-branch filter-repo instaweb send-email";

pub(super) fn check(args: &[Word]) -> Outcome {
    let parsed = parse(args, &GLOBAL)?;
    let overrides = [
        Name::Short('c'),
        Name::Long("config-env"),
        Name::Long("exec-path"),
    ];
    if let Some(opt) = parsed
        .options
        .iter()
        .find(|opt| overrides.contains(&opt.name))
    {
        return Err(hit(&opt.word.text, ArgumentEscape::GitConfigOverride));
    }
    let Some(&(at, subcommand)) = parsed.operands.first() else {
        return Ok(());
    };
    let rest = &args[at + 1..];
    let runs = |word: &Word| Err(hit(&word.text, ArgumentEscape::GitRunsCommand));
    let name = subcommand.text.as_str();
    if RUNS_COMMAND_SUBCOMMANDS
        .split_ascii_whitespace()
        .any(|listed| listed == name)
    {
        return runs(subcommand);
    }
    match name {
        "config" => {
            if let Some(word) = rest.iter().find(|word| is_exec_config_key(&word.text)) {
                return Err(hit(&word.text, ArgumentEscape::GitExecConfigKey));
            }
        }
        "bisect" => {
            let first = rest.iter().find(|word| !word.text.starts_with('-'));
            if let Some(word) = first.filter(|word| word.text == "run") {
                return runs(word);
            }
        }
        "submodule" => {
            if let Some(word) = rest.iter().find(|word| word.text == "foreach") {
                return runs(word);
            }
        }
        "clone" => blocked(
            rest,
            &Rule {
                long: "config",
                short: "c",
                value_letters: "obuj",
                escape: ArgumentEscape::GitConfigOverride,
            },
        )?,
        _ => {}
    }
    let (short, value_letters) = match name {
        "rebase" => ("x", "sSXC"),
        "difftool" => ("x", "t"),
        "grep" => ("O", "efABCm"),
        "clone" => ("u", "objc"),
        "ls-remote" => ("u", ""),
        _ => ("", ""),
    };
    blocked(
        rest,
        &Rule {
            long: RUNS_COMMAND,
            short,
            value_letters,
            escape: ArgumentEscape::GitRunsCommand,
        },
    )
}

/// Whether a `git config` argument names a key whose value git runs as a
/// command (or that selects or includes such keys). Over-matching a data
/// key only refuses a harmless command; under-matching is the risk.
fn is_exec_config_key(word: &str) -> bool {
    let key = word
        .split_once('=')
        .map_or(word, |(key, _)| key)
        .to_ascii_lowercase();
    let Some((section, _)) = key.split_once('.') else {
        return false;
    };
    let last = key.rsplit('.').next().unwrap_or_default();
    let sections = "alias pager include includeif filter credential sendemail";
    let names = "pager editor textconv driver path program helper update allow fsmonitor \
        hookspath gitproxy askpass external difffilter tunnel browser viewer smtpserver \
        uploadpack receivepack";
    let listed = |names: &str, word: &str| names.split_ascii_whitespace().any(|name| name == word);
    listed(sections, section)
        || listed(names, last)
        || last.ends_with("command")
        || last.ends_with("cmd")
        || last.ends_with("hook")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_config_keys() {
        for key in [
            "core.pager",
            "core.sshCommand",
            "core.fsmonitor",
            "alias.x",
            "diff.external",
            "uploadpack.packObjectsHook",
            "diff.foo.textconv",
            "filter.lfs.smudge",
            "credential.helper",
            "includeIf.gitdir:x.path",
            "gpg.ssh.defaultKeyCommand",
            "protocol.ext.allow",
            "core.hooksPath",
            "pager.log",
            "sequence.editor",
            "trailer.sign.cmd",
            "Core.Pager=less",
        ] {
            assert!(is_exec_config_key(key), "{key}");
        }
        for key in [
            "user.name",
            "user.email",
            "init.defaultBranch",
            "pull.rebase",
            "--global",
            "alias",
        ] {
            assert!(!is_exec_config_key(key), "{key}");
        }
    }
}
