//! Landlock self-hardening, proven in real processes: each test re-executes
//! this test binary as a child (only that test, on the main thread), the
//! child hardens itself and then tries real file operations, printing one
//! line per outcome; the parent asserts on the child's exit status and
//! those lines. The restriction is irreversible, so it must never happen in
//! the parent.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::kill;
use nix::unistd::Pid;

use sandbox::hardening::{
    FilesystemRules, HardeningReport, LandlockOutcome, NotEnforcedReason, PathAccess, SkipReason,
    harden_current_process,
};

/// Tells the child which scenario to run.
const SCENARIO_ENV: &str = "OXYDRA_HARDENING_TEST_SCENARIO";
/// The temporary directory holding `alice` and `bob`.
const ROOT_ENV: &str = "OXYDRA_HARDENING_TEST_ROOT";
/// The child's report as JSON.
const REPORT_PREFIX: &str = "HARDENING-REPORT ";
/// The child's report as its log line.
const DISPLAY_PREFIX: &str = "HARDENING-DISPLAY ";
/// One outcome: `HARDENING-CHECK <name> <ok|denied|error:<kind>>`.
const CHECK_PREFIX: &str = "HARDENING-CHECK ";

const BOB_SECRET: &str = "bob's private notes";

/// What the child printed.
struct ChildRun {
    report: HardeningReport,
    display: String,
    checks: BTreeMap<String, String>,
}

/// Two workspaces under one temporary root; bob's holds a file.
fn two_workspaces() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temporary directory");
    fs::create_dir(root.path().join("alice")).expect("alice's workspace");
    fs::create_dir(root.path().join("bob")).expect("bob's workspace");
    fs::write(root.path().join("bob").join("secret.txt"), BOB_SECRET).expect("bob's file");
    root
}

/// Runs `test_name` again in a child process with `scenario` set, and
/// collects what it printed. Panics (failing the test) when the child fails.
fn run_child(test_name: &str, scenario: &str, root: &Path) -> ChildRun {
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(SCENARIO_ENV, scenario)
        .env(ROOT_ENV, root)
        .output()
        .expect("spawn the test binary as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child scenario {scenario} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let mut report = None;
    let mut display = None;
    let mut checks = BTreeMap::new();
    for line in stdout.lines() {
        if let Some(json) = line.strip_prefix(REPORT_PREFIX) {
            report = Some(serde_json::from_str(json).expect("the report line is a report"));
        } else if let Some(text) = line.strip_prefix(DISPLAY_PREFIX) {
            display = Some(text.to_owned());
        } else if let Some(check) = line.strip_prefix(CHECK_PREFIX) {
            let (name, result) = check.split_once(' ').expect("check line has a result");
            checks.insert(name.to_owned(), result.to_owned());
        }
    }
    ChildRun {
        report: report.unwrap_or_else(|| panic!("child printed no report:\n{stdout}")),
        display: display.unwrap_or_else(|| panic!("child printed no log line:\n{stdout}")),
        checks,
    }
}

/// Prints one outcome line for the parent.
fn check<T>(name: &str, result: std::io::Result<T>) {
    let outcome = match result {
        Ok(_) => "ok".to_owned(),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => "denied".to_owned(),
        Err(error) => format!("error:{:?}", error.kind()),
    };
    println!("{CHECK_PREFIX}{name} {outcome}");
}

/// The child's side: harden for alice, then probe.
fn child_probe(extra_read_only: &[PathBuf]) {
    let root = PathBuf::from(std::env::var_os(ROOT_ENV).expect("root from the parent"));
    let alice = root.join("alice");
    let bob = root.join("bob");
    let rules = FilesystemRules::for_guest(&alice, extra_read_only);
    let report = harden_current_process(&rules);
    // libtest has already printed "test <name> ... " without a newline.
    println!();
    println!(
        "{REPORT_PREFIX}{}",
        serde_json::to_string(&report).expect("report serialises")
    );
    println!("{DISPLAY_PREFIX}{report}");

    check(
        "read_other_workspace",
        fs::read_to_string(bob.join("secret.txt")),
    );
    check("list_other_workspace", fs::read_dir(&bob));
    check(
        "write_outside",
        fs::write(root.join("outside.txt"), "escaped"),
    );
    check(
        "write_own",
        fs::write(alice.join("notes.txt"), "alice's notes"),
    );
    check(
        "read_own",
        fs::read_to_string(alice.join("notes.txt")).and_then(|text| {
            if text == "alice's notes" {
                Ok(text)
            } else {
                Err(std::io::Error::other(format!("read back {text:?}")))
            }
        }),
    );
    check(
        "rename_own",
        fs::create_dir(alice.join("sub"))
            .and_then(|()| fs::rename(alice.join("notes.txt"), alice.join("sub/notes.txt"))),
    );
    check("read_system", fs::read_to_string("/etc/passwd"));
    check(
        "write_system_tree",
        fs::write(alice.join("sub/../../outside-too.txt"), "escaped"),
    );
    check(
        "write_dev_null",
        fs::OpenOptions::new().write(true).open("/dev/null"),
    );
    // Signal 0 checks permission without delivering anything: the parent
    // (the test harness, outside the sandbox) stands for the runner.
    let parent = Pid::from_raw(i32::try_from(std::os::unix::process::parent_id()).expect("pid"));
    check(
        "signal_parent",
        kill(parent, None).map_err(|errno| std::io::Error::from_raw_os_error(errno as i32)),
    );
}

/// Asserts the outcomes match what the report claims took effect.
fn assert_probe_outcomes(run: &ChildRun) {
    let outcome = |name: &str| {
        run.checks
            .get(name)
            .unwrap_or_else(|| panic!("child printed no {name} check: {:?}", run.checks))
            .as_str()
    };
    // Alice's own workspace and the read-only system paths work either way.
    if !run.report.landlock_enforced() {
        assert_eq!(outcome("signal_parent"), "ok");
    }
    for name in [
        "write_own",
        "read_own",
        "rename_own",
        "read_system",
        "write_dev_null",
    ] {
        assert_eq!(outcome(name), "ok", "{name}; report: {}", run.display);
    }
    if run.report.landlock_enforced() {
        for name in [
            "read_other_workspace",
            "list_other_workspace",
            "write_outside",
            "write_system_tree",
        ] {
            assert_eq!(outcome(name), "denied", "{name}; report: {}", run.display);
        }
        assert!(run.report.no_new_privs, "{}", run.display);
        let signal = if run.report.scoped_signals_and_abstract_sockets {
            "denied"
        } else {
            "ok"
        };
        assert_eq!(outcome("signal_parent"), signal, "{}", run.display);
        assert!(run.display.contains("no_new_privs set"), "{}", run.display);
    } else {
        // The report must not lie in this direction either: nothing
        // restricted means bob's file really is readable.
        eprintln!(
            "!!!!! LANDLOCK IS NOT AVAILABLE ON THIS KERNEL — hardening was NOT tested: {} !!!!!",
            run.display
        );
        assert!(
            matches!(
                run.report.landlock,
                LandlockOutcome::NotEnforced {
                    reason: NotEnforcedReason::KernelLacksLandlock
                        | NotEnforcedReason::DisabledAtBoot
                }
            ),
            "Landlock failed for another reason than the kernel: {}",
            run.display
        );
        assert!(run.display.contains("not enforced"), "{}", run.display);
        assert_eq!(outcome("read_other_workspace"), "ok");
    }
}

#[test]
fn hardened_guest_reaches_only_its_workspace_and_system_paths() {
    const NAME: &str = "hardened_guest_reaches_only_its_workspace_and_system_paths";
    if std::env::var_os(SCENARIO_ENV).is_some() {
        child_probe(&[]);
        return;
    }
    let root = two_workspaces();
    let run = run_child(NAME, "workspaces", root.path());
    assert_probe_outcomes(&run);
    // Nothing escaped, and bob's file is untouched.
    assert!(!root.path().join("outside.txt").exists());
    assert!(!root.path().join("outside-too.txt").exists());
    assert_eq!(
        fs::read_to_string(root.path().join("bob/secret.txt")).expect("bob's file"),
        BOB_SECRET
    );
    let alice = root.path().join("alice");
    if run.report.landlock_enforced() {
        assert!(
            run.display.starts_with("landlock fully enforced (ABI ")
                || run.display.starts_with("landlock partially enforced (ABI "),
            "{}",
            run.display
        );
        assert_eq!(run.report.read_write.first(), Some(&alice));
        assert!(
            run.report.read_only.contains(&PathBuf::from("/etc")),
            "{:?}",
            run.report.read_only
        );
        assert!(
            run.display
                .contains(&format!("read-write {}", alice.display())),
            "{}",
            run.display
        );
        assert!(run.report.skipped.is_empty(), "{:?}", run.report.skipped);
        // libtest runs even a single test on a thread of its own, so the
        // child's main thread exists and is (truthfully) reported as
        // unrestricted; the probes ran on the restricted test thread.
        let threads = run.report.threads_at_restriction.expect("thread count");
        assert!(threads >= 1, "{}", run.display);
        assert_eq!(
            run.display.contains(&format!(
                "WARNING: {} other thread(s) were running and stay unrestricted",
                threads - 1
            )),
            threads > 1,
            "{}",
            run.display
        );
        if let LandlockOutcome::PartiallyEnforced {
            unhandled_rights, ..
        } = &run.report.landlock
        {
            // Partial only ever because the kernel's ABI predates some rights.
            assert!(!unhandled_rights.is_empty(), "{}", run.display);
        }
    }
    assert_eq!(
        fs::read_to_string(alice.join("sub/notes.txt")).expect("alice's renamed notes"),
        "alice's notes"
    );
}

#[test]
fn missing_rule_path_is_skipped_and_named_while_hardening_holds() {
    const NAME: &str = "missing_rule_path_is_skipped_and_named_while_hardening_holds";
    const MISSING: &str = "does-not-exist";
    if std::env::var_os(SCENARIO_ENV).is_some() {
        let root = PathBuf::from(std::env::var_os(ROOT_ENV).expect("root from the parent"));
        child_probe(&[root.join(MISSING)]);
        return;
    }
    let root = two_workspaces();
    let run = run_child(NAME, "missing-path", root.path());
    assert_probe_outcomes(&run);
    if run.report.landlock_enforced() {
        let missing = root.path().join(MISSING);
        assert_eq!(run.report.skipped.len(), 1, "{:?}", run.report.skipped);
        let skipped = &run.report.skipped[0];
        assert_eq!(skipped.path, missing);
        assert_eq!(skipped.access, PathAccess::ReadOnly);
        assert_eq!(skipped.reason, SkipReason::Missing);
        assert!(!run.report.read_only.contains(&missing));
        assert!(
            run.display
                .contains(&format!("skipped {} (missing)", missing.display())),
            "{}",
            run.display
        );
    }
}

#[test]
fn guest_rules_hold_the_workspace_existing_system_paths_and_extras() {
    let workspace = Path::new("/w/alice");
    let extra = PathBuf::from("/opt/oxydra-models-not-here");
    let rules = FilesystemRules::for_guest(workspace, std::slice::from_ref(&extra));
    assert_eq!(rules.read_write[0], workspace);
    assert!(
        rules
            .read_write
            .iter()
            .skip(1)
            .all(|path| path == Path::new("/dev/null"))
    );
    assert_eq!(rules.read_only.last(), Some(&extra));
    // System paths are listed only where they exist; /tmp never is.
    for path in &rules.read_only[..rules.read_only.len() - 1] {
        assert!(path.exists(), "{} does not exist", path.display());
    }
    assert!(!rules.read_only.iter().any(|path| path == Path::new("/tmp")));
    assert!(rules.read_only.contains(&PathBuf::from("/usr")));
    assert!(rules.read_only.contains(&PathBuf::from("/etc")));
}
