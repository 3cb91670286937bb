//! Best-effort self-hardening of the current process: the process tier's
//! (`--insecure`) last line of defence.
//!
//! `oxydra-vm` calls [`harden_current_process`] in `main`, before any thread
//! exists, with [`FilesystemRules::for_guest`]. On Linux that installs a
//! Landlock ruleset (read-write beneath the user's workspace, read and
//! execute beneath the system paths a guest needs, nothing else) and sets
//! `PR_SET_NO_NEW_PRIVS`. Hardening never fails the process: whatever did or
//! did not take effect is described by the returned [`HardeningReport`],
//! which the caller logs.
//!
//! The module compiles on every platform; only the Landlock calls are
//! Linux-only. Elsewhere the report says Landlock is unavailable.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Read-only (read and execute) system paths, in the order they appear in
/// the report; each says why a guest needs it. Only those that exist on the
/// machine become rules.
const GUEST_READ_ONLY: &[&str] = &[
    // Programs and shared libraries (glibc loads NSS modules during name
    // lookup), zoneinfo, and the CA bundles /etc/ssl links into.
    "/usr",
    // Shared libraries; a symlink into /usr on merged-/usr systems (the rule
    // then lands on its target).
    "/lib",
    // The dynamic loader and 64-bit libraries where they are kept apart.
    "/lib64",
    // Programs a guest may run; /usr/bin on merged-/usr systems.
    "/bin",
    // Resolver configuration (hosts, nsswitch.conf, gai.conf), passwd and
    // group for user lookups, TLS CA certificates, localtime. Secrets such
    // as shadow stay protected by their file modes.
    "/etc",
    // Often a symlink into /run (systemd-resolved, NetworkManager). Landlock
    // judges the resolved file, so the target needs a rule of its own; the
    // rule is taken on the opened path, which follows the link.
    "/etc/resolv.conf",
    // std's available_parallelism (tokio's worker count) reads
    // /proc/self/cgroup and /proc/self/mountinfo. Landlock's ptrace scoping
    // still refuses other processes' environ, mem and fd entries.
    "/proc",
    // The CPU quota available_parallelism honours.
    "/sys/fs/cgroup",
    // CPU topology (online CPUs) for runtimes sizing their thread pools.
    "/sys/devices/system/cpu",
    // Randomness for libraries that open the devices instead of calling
    // getrandom(2).
    "/dev/urandom",
    "/dev/random",
];

/// System files a guest may also write, beside its workspace.
const GUEST_WRITABLE_DEVICES: &[&str] = &[
    // std's Stdio::null opens it for writing as a child's stdout and
    // stderr; the writes vanish.
    "/dev/null",
];

/// Which paths the hardened process may use. Every path covers itself and,
/// for a directory, everything beneath it; anything not listed is denied.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilesystemRules {
    /// Read, write, create, remove, rename and execute beneath these.
    pub read_write: Vec<PathBuf>,
    /// Read and execute beneath these.
    pub read_only: Vec<PathBuf>,
}

impl FilesystemRules {
    /// The rules for a process-tier guest: `read_write` is the workspace
    /// (plus `/dev/null`, whose writes vanish), `read_only` the system paths
    /// a guest needs that exist on this machine (`/usr`, `/lib`, `/lib64`,
    /// `/bin`, `/etc` and the target of `/etc/resolv.conf`, `/proc`,
    /// `/sys/fs/cgroup`, `/sys/devices/system/cpu`, `/dev/urandom`,
    /// `/dev/random`), followed by `extra_read_only`. Temporary files belong
    /// in the workspace (the runner sets `TMPDIR=<workspace>/tmp`), so
    /// `/tmp` is not allowed.
    ///
    /// The workspace and the extra paths are kept even when they do not
    /// exist; [`harden_current_process`] skips and reports those.
    pub fn for_guest(workspace: &Path, extra_read_only: &[PathBuf]) -> Self {
        let existing = |list: &'static [&'static str]| {
            list.iter()
                .map(PathBuf::from)
                .filter(|path| path.exists())
                .collect::<Vec<_>>()
        };
        let mut read_write = vec![workspace.to_path_buf()];
        read_write.extend(existing(GUEST_WRITABLE_DEVICES));
        let mut read_only = existing(GUEST_READ_ONLY);
        read_only.extend(extra_read_only.iter().cloned());
        Self {
            read_write,
            read_only,
        }
    }
}

/// One filesystem access right Landlock can restrict; named as the kernel
/// names them (`LANDLOCK_ACCESS_FS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsRight {
    Execute,
    WriteFile,
    ReadFile,
    ReadDir,
    RemoveDir,
    RemoveFile,
    MakeChar,
    MakeDir,
    MakeReg,
    MakeSock,
    MakeFifo,
    MakeBlock,
    MakeSym,
    Refer,
    Truncate,
    IoctlDev,
    ResolveUnix,
}

impl FsRight {
    /// Every right, in the kernel's bit order.
    pub const ALL: [FsRight; 17] = [
        FsRight::Execute,
        FsRight::WriteFile,
        FsRight::ReadFile,
        FsRight::ReadDir,
        FsRight::RemoveDir,
        FsRight::RemoveFile,
        FsRight::MakeChar,
        FsRight::MakeDir,
        FsRight::MakeReg,
        FsRight::MakeSock,
        FsRight::MakeFifo,
        FsRight::MakeBlock,
        FsRight::MakeSym,
        FsRight::Refer,
        FsRight::Truncate,
        FsRight::IoctlDev,
        FsRight::ResolveUnix,
    ];

    /// The kernel's name without the `LANDLOCK_ACCESS_FS_` prefix, lower case.
    pub fn name(self) -> &'static str {
        match self {
            FsRight::Execute => "execute",
            FsRight::WriteFile => "write_file",
            FsRight::ReadFile => "read_file",
            FsRight::ReadDir => "read_dir",
            FsRight::RemoveDir => "remove_dir",
            FsRight::RemoveFile => "remove_file",
            FsRight::MakeChar => "make_char",
            FsRight::MakeDir => "make_dir",
            FsRight::MakeReg => "make_reg",
            FsRight::MakeSock => "make_sock",
            FsRight::MakeFifo => "make_fifo",
            FsRight::MakeBlock => "make_block",
            FsRight::MakeSym => "make_sym",
            FsRight::Refer => "refer",
            FsRight::Truncate => "truncate",
            FsRight::IoctlDev => "ioctl_dev",
            FsRight::ResolveUnix => "resolve_unix",
        }
    }
}

/// What became of the Landlock ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LandlockOutcome {
    /// Every right this build knows is handled: only the allowed paths are
    /// reachable.
    FullyEnforced {
        /// The kernel's Landlock ABI version in use.
        abi: u32,
    },
    /// The ruleset is in force, but the kernel cannot restrict some rights
    /// (its ABI predates them): those stay unrestricted everywhere.
    PartiallyEnforced {
        /// The kernel's Landlock ABI version in use.
        abi: u32,
        /// Rights this build asked for that the kernel could not handle.
        unhandled_rights: Vec<FsRight>,
    },
    /// Nothing is restricted by Landlock.
    NotEnforced {
        /// Why not.
        reason: NotEnforcedReason,
    },
}

/// Why Landlock did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotEnforcedReason {
    /// Not Linux: Landlock does not exist on this platform.
    UnsupportedPlatform,
    /// The kernel is built without Landlock (`ENOSYS`).
    KernelLacksLandlock,
    /// The kernel has Landlock but it is not enabled at boot (`EOPNOTSUPP`;
    /// add `landlock` to the `lsm=` boot parameter).
    DisabledAtBoot,
    /// The kernel has Landlock but supports none of the requested rights.
    NoSupportedRights,
    /// Building or applying the ruleset failed.
    Error {
        /// The Landlock library's error text.
        message: String,
    },
}

impl fmt::Display for NotEnforcedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotEnforcedReason::UnsupportedPlatform => {
                f.write_str("Landlock unavailable on this platform")
            }
            NotEnforcedReason::KernelLacksLandlock => f.write_str("kernel lacks Landlock"),
            NotEnforcedReason::DisabledAtBoot => {
                f.write_str("kernel has Landlock disabled at boot; add it to lsm=")
            }
            NotEnforcedReason::NoSupportedRights => {
                f.write_str("kernel supports none of the requested rights")
            }
            NotEnforcedReason::Error { message } => write!(f, "error: {message}"),
        }
    }
}

/// Which list a rule path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathAccess {
    ReadWrite,
    ReadOnly,
}

/// Why a rule path got no rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// The path does not exist.
    Missing,
    /// The path exists but could not be opened or inspected.
    Unusable {
        /// The operating system's error text.
        message: String,
    },
}

/// A rule path that was left out; it stays denied when Landlock is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedPath {
    pub path: PathBuf,
    pub access: PathAccess,
    pub reason: SkipReason,
}

/// Exactly what [`harden_current_process`] put into effect. `Display` is one
/// line for the startup log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardeningReport {
    pub landlock: LandlockOutcome,
    /// Whether `PR_SET_NO_NEW_PRIVS` is set (no set-uid or file-capability
    /// gains across `execve`).
    pub no_new_privs: bool,
    /// Paths that got a read-write rule.
    pub read_write: Vec<PathBuf>,
    /// Paths that got a read-only rule.
    pub read_only: Vec<PathBuf>,
    /// Paths that got no rule, and why.
    pub skipped: Vec<SkippedPath>,
    /// Whether signals and abstract Unix sockets are scoped to the sandbox
    /// (Landlock ABI 6+): the process cannot signal, or connect to abstract
    /// sockets of, processes outside it — the runner or other users' guests.
    pub scoped_signals_and_abstract_sockets: bool,
    /// Threads in the process when the restriction was applied, when known.
    /// Landlock restricts only the calling thread and its future children,
    /// so anything above 1 means threads that stay unrestricted.
    pub threads_at_restriction: Option<u64>,
}

impl HardeningReport {
    /// Whether Landlock restricts the process at all (fully or partially).
    pub fn landlock_enforced(&self) -> bool {
        match self.landlock {
            LandlockOutcome::FullyEnforced { .. } | LandlockOutcome::PartiallyEnforced { .. } => {
                true
            }
            LandlockOutcome::NotEnforced { .. } => false,
        }
    }
}

impl fmt::Display for HardeningReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths = |list: &[PathBuf]| {
            if list.is_empty() {
                "(none)".to_owned()
            } else {
                list.iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match &self.landlock {
            LandlockOutcome::FullyEnforced { abi } => {
                write!(f, "landlock fully enforced (ABI {abi})")?;
            }
            LandlockOutcome::PartiallyEnforced {
                abi,
                unhandled_rights,
            } => {
                write!(f, "landlock partially enforced (ABI {abi}")?;
                if !unhandled_rights.is_empty() {
                    let names: Vec<_> = unhandled_rights.iter().map(|r| r.name()).collect();
                    write!(f, "; kernel cannot restrict {}", names.join(", "))?;
                }
                f.write_str(")")?;
            }
            LandlockOutcome::NotEnforced { reason } => {
                write!(f, "landlock not enforced ({reason}); nothing restricted")?;
            }
        }
        if self.landlock_enforced() {
            write!(
                f,
                ": read-write {}; read-only {}",
                paths(&self.read_write),
                paths(&self.read_only)
            )?;
            if self.scoped_signals_and_abstract_sockets {
                f.write_str("; signals and abstract sockets scoped")?;
            }
            if !self.skipped.is_empty() {
                let skipped: Vec<_> = self
                    .skipped
                    .iter()
                    .map(|skip| match &skip.reason {
                        SkipReason::Missing => format!("{} (missing)", skip.path.display()),
                        SkipReason::Unusable { message } => {
                            format!("{} ({message})", skip.path.display())
                        }
                    })
                    .collect();
                write!(f, "; skipped {}", skipped.join(", "))?;
            }
            if let Some(threads) = self.threads_at_restriction.filter(|n| *n > 1) {
                write!(
                    f,
                    "; WARNING: {} other thread(s) were running and stay unrestricted",
                    threads - 1
                )?;
            }
        }
        let nnp = if self.no_new_privs { "set" } else { "not set" };
        write!(f, "; no_new_privs {nnp}")
    }
}

/// Restricts the current process as far as this platform and kernel allow,
/// and says exactly what took effect. Never panics and never fails: the
/// caller logs the report and carries on.
///
/// Landlock's `landlock_restrict_self` applies to the **calling thread**
/// and to the threads and processes it creates afterwards — not to threads
/// that already exist. Call this in `main` before any thread is spawned
/// (before building a tokio runtime); the report's
/// `threads_at_restriction` shows when that was not so.
///
/// On Linux, all filesystem rights of the newest Landlock ABI this build
/// knows are handled (best effort: rights the kernel's ABI lacks are
/// listed as unhandled). Paths in `rules.read_write` get every right,
/// paths in `rules.read_only` read and execute; paths that do not exist or
/// cannot be opened get no rule and are listed as skipped. If every path is
/// skipped the process can reach no file at all: hardening fails closed.
/// `PR_SET_NO_NEW_PRIVS` is set as part of the restriction, even when the
/// kernel lacks Landlock.
pub fn harden_current_process(rules: &FilesystemRules) -> HardeningReport {
    #[cfg(target_os = "linux")]
    {
        linux::harden(rules)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = rules;
        HardeningReport {
            landlock: LandlockOutcome::NotEnforced {
                reason: NotEnforcedReason::UnsupportedPlatform,
            },
            no_new_privs: false,
            read_write: Vec::new(),
            read_only: Vec::new(),
            skipped: Vec::new(),
            scoped_signals_and_abstract_sockets: false,
            threads_at_restriction: None,
        }
    }
}

/// The Landlock calls; everything above compiles on every platform.
#[cfg(target_os = "linux")]
mod linux {
    use std::path::PathBuf;

    use landlock::{
        ABI, Access, AccessFs, BitFlags, LandlockStatus, PathBeneath, PathFd, RestrictionStatus,
        Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
    };

    use super::{
        FilesystemRules, FsRight, HardeningReport, LandlockOutcome, NotEnforcedReason, PathAccess,
        SkipReason, SkippedPath,
    };

    /// The newest ABI this build knows. Its rights are all requested; the
    /// crate's best-effort mode keeps those the running kernel supports and
    /// the report names the rest.
    const NEWEST_ABI: ABI = ABI::V10;

    /// Every ABI with its number (`ABI` is non-exhaustive, so no cast).
    const KNOWN_ABIS: [(ABI, u32); 10] = [
        (ABI::V1, 1),
        (ABI::V2, 2),
        (ABI::V3, 3),
        (ABI::V4, 4),
        (ABI::V5, 5),
        (ABI::V6, 6),
        (ABI::V7, 7),
        (ABI::V8, 8),
        (ABI::V9, 9),
        (ABI::V10, 10),
    ];

    fn to_landlock(right: FsRight) -> AccessFs {
        match right {
            FsRight::Execute => AccessFs::Execute,
            FsRight::WriteFile => AccessFs::WriteFile,
            FsRight::ReadFile => AccessFs::ReadFile,
            FsRight::ReadDir => AccessFs::ReadDir,
            FsRight::RemoveDir => AccessFs::RemoveDir,
            FsRight::RemoveFile => AccessFs::RemoveFile,
            FsRight::MakeChar => AccessFs::MakeChar,
            FsRight::MakeDir => AccessFs::MakeDir,
            FsRight::MakeReg => AccessFs::MakeReg,
            FsRight::MakeSock => AccessFs::MakeSock,
            FsRight::MakeFifo => AccessFs::MakeFifo,
            FsRight::MakeBlock => AccessFs::MakeBlock,
            FsRight::MakeSym => AccessFs::MakeSym,
            FsRight::Refer => AccessFs::Refer,
            FsRight::Truncate => AccessFs::Truncate,
            FsRight::IoctlDev => AccessFs::IoctlDev,
            FsRight::ResolveUnix => AccessFs::ResolveUnix,
        }
    }

    /// The rights a rule grants. A file cannot carry directory-only rights
    /// (the kernel would refuse them, and best effort would turn the whole
    /// ruleset "partial"), so those are dropped for non-directories.
    fn rule_access(access: PathAccess, is_dir: bool) -> BitFlags<AccessFs> {
        let granted = match access {
            PathAccess::ReadWrite => AccessFs::from_all(NEWEST_ABI),
            PathAccess::ReadOnly => AccessFs::from_read(NEWEST_ABI),
        };
        if is_dir {
            granted
        } else {
            granted & AccessFs::from_file(NEWEST_ABI)
        }
    }

    /// A rule path that could be opened.
    struct OpenedPath {
        path: PathBuf,
        access: PathAccess,
        fd: PathFd,
        is_dir: bool,
    }

    pub(super) fn harden(rules: &FilesystemRules) -> HardeningReport {
        let threads_at_restriction = proc_status_field("Threads");
        let mut opened = Vec::new();
        let mut skipped = Vec::new();
        let all = rules
            .read_write
            .iter()
            .map(|path| (path, PathAccess::ReadWrite))
            .chain(
                rules
                    .read_only
                    .iter()
                    .map(|path| (path, PathAccess::ReadOnly)),
            );
        for (path, access) in all {
            match open_rule_path(path) {
                Ok((fd, is_dir)) => opened.push(OpenedPath {
                    path: path.clone(),
                    access,
                    fd,
                    is_dir,
                }),
                Err(reason) => skipped.push(SkippedPath {
                    path: path.clone(),
                    access,
                    reason,
                }),
            }
        }
        let mut read_write = Vec::new();
        let mut read_only = Vec::new();
        for entry in &opened {
            match entry.access {
                PathAccess::ReadWrite => read_write.push(entry.path.clone()),
                PathAccess::ReadOnly => read_only.push(entry.path.clone()),
            }
        }

        match restrict(opened) {
            Ok(status) => {
                let landlock = outcome(&status);
                HardeningReport {
                    scoped_signals_and_abstract_sockets: scopes_enforced(&landlock),
                    landlock,
                    no_new_privs: status.no_new_privs,
                    read_write,
                    read_only,
                    skipped,
                    threads_at_restriction,
                }
            }
            Err(error) => HardeningReport {
                landlock: LandlockOutcome::NotEnforced {
                    reason: NotEnforcedReason::Error {
                        message: error.to_string(),
                    },
                },
                // The failure may have come before or after the prctl, so
                // ask the kernel; Landlock is not in force, so /proc is
                // readable.
                no_new_privs: proc_status_field("NoNewPrivs") == Some(1),
                read_write: Vec::new(),
                read_only: Vec::new(),
                skipped,
                scoped_signals_and_abstract_sockets: false,
                threads_at_restriction,
            },
        }
    }

    /// Scopes are requested with every ruleset and exist from ABI 6 on.
    fn scopes_enforced(outcome: &LandlockOutcome) -> bool {
        match outcome {
            LandlockOutcome::FullyEnforced { abi }
            | LandlockOutcome::PartiallyEnforced { abi, .. } => *abi >= 6,
            LandlockOutcome::NotEnforced { .. } => false,
        }
    }

    /// Opens a rule path (following symlinks, as the kernel will when it
    /// checks an access) and says whether it is a directory.
    fn open_rule_path(path: &PathBuf) -> Result<(PathFd, bool), SkipReason> {
        let unusable = |message: String| SkipReason::Unusable { message };
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SkipReason::Missing);
            }
            Err(error) => return Err(unusable(error.to_string())),
        };
        let fd = PathFd::new(path).map_err(|error| unusable(error.to_string()))?;
        Ok((fd, metadata.is_dir()))
    }

    fn restrict(opened: Vec<OpenedPath>) -> Result<RestrictionStatus, RulesetError> {
        let mut ruleset = Ruleset::default()
            .handle_access(AccessFs::from_all(NEWEST_ABI))?
            .scope(Scope::from_all(NEWEST_ABI))?
            .create()?;
        for entry in opened {
            let access = rule_access(entry.access, entry.is_dir);
            ruleset = ruleset.add_rule(PathBeneath::new(entry.fd, access))?;
        }
        // Sets PR_SET_NO_NEW_PRIVS (even when the kernel lacks Landlock),
        // then restricts the calling thread.
        ruleset.restrict_self()
    }

    fn outcome(status: &RestrictionStatus) -> LandlockOutcome {
        let abi = match status.landlock {
            LandlockStatus::Available { effective_abi, .. } => effective_abi,
            LandlockStatus::NotEnabled => {
                return LandlockOutcome::NotEnforced {
                    reason: NotEnforcedReason::DisabledAtBoot,
                };
            }
            LandlockStatus::NotImplemented => {
                return LandlockOutcome::NotEnforced {
                    reason: NotEnforcedReason::KernelLacksLandlock,
                };
            }
        };
        let number = KNOWN_ABIS
            .iter()
            .find(|(known, _)| *known == abi)
            .map_or(0, |(_, number)| *number);
        match status.ruleset {
            RulesetStatus::FullyEnforced => LandlockOutcome::FullyEnforced { abi: number },
            RulesetStatus::PartiallyEnforced => {
                let supported = AccessFs::from_all(abi);
                let requested = AccessFs::from_all(NEWEST_ABI);
                let unhandled_rights = FsRight::ALL
                    .into_iter()
                    .filter(|right| {
                        let bit = to_landlock(*right);
                        requested.contains(bit) && !supported.contains(bit)
                    })
                    .collect();
                LandlockOutcome::PartiallyEnforced {
                    abi: number,
                    unhandled_rights,
                }
            }
            RulesetStatus::NotEnforced => LandlockOutcome::NotEnforced {
                reason: NotEnforcedReason::NoSupportedRights,
            },
        }
    }

    /// A numeric field of `/proc/self/status` (`Threads`, `NoNewPrivs`).
    fn proc_status_field(name: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_unhandled_rights_and_skips() {
        let report = HardeningReport {
            landlock: LandlockOutcome::PartiallyEnforced {
                abi: 7,
                unhandled_rights: vec![FsRight::ResolveUnix],
            },
            no_new_privs: true,
            read_write: vec![PathBuf::from("/w/alice")],
            read_only: vec![PathBuf::from("/usr"), PathBuf::from("/etc")],
            skipped: vec![SkippedPath {
                path: PathBuf::from("/opt/none"),
                access: PathAccess::ReadOnly,
                reason: SkipReason::Missing,
            }],
            scoped_signals_and_abstract_sockets: true,
            threads_at_restriction: Some(3),
        };
        assert_eq!(
            report.to_string(),
            "landlock partially enforced (ABI 7; kernel cannot restrict resolve_unix): \
             read-write /w/alice; read-only /usr, /etc; signals and abstract sockets scoped; \
             skipped /opt/none (missing); \
             WARNING: 2 other thread(s) were running and stay unrestricted; no_new_privs set"
        );
    }

    #[test]
    fn display_of_unenforced_report_claims_no_paths() {
        let report = HardeningReport {
            landlock: LandlockOutcome::NotEnforced {
                reason: NotEnforcedReason::KernelLacksLandlock,
            },
            no_new_privs: true,
            read_write: Vec::new(),
            read_only: Vec::new(),
            skipped: Vec::new(),
            scoped_signals_and_abstract_sockets: false,
            threads_at_restriction: Some(1),
        };
        assert_eq!(
            report.to_string(),
            "landlock not enforced (kernel lacks Landlock); nothing restricted; no_new_privs set"
        );
    }
}
