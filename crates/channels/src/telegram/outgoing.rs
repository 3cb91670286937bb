//! Files the agent sends (`FileSent` frames): read from the host directory
//! behind `/shared` with the runner's rights, so the file actually opened
//! is checked, not the path — the guest owns that directory and could
//! swap a checked file for a link to something of the host's, or for a
//! FIFO that would block the reader.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest file uploaded (Telegram takes up to 50 MB from a bot).
pub const MAX_OUTGOING_BYTES: u64 = 50 * 1000 * 1000;

/// Reads the file the agent calls `path` (`/shared/…`) from `shared_dir`.
pub(super) fn read_shared(shared_dir: &Path, path: &str) -> Result<Vec<u8>, String> {
    let relative = path
        .strip_prefix("/shared/")
        .filter(|rest| !rest.split('/').any(|part| part == ".." || part.is_empty()))
        .ok_or_else(|| format!("{path} is not a file under /shared"))?;
    let root =
        std::fs::canonicalize(shared_dir).map_err(|e| format!("{}: {e}", shared_dir.display()))?;
    // Non-blocking, so a FIFO cannot hold the channel; refused below.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(root.join(relative))
        .map_err(|e| format!("{path} cannot be opened: {e}"))?;
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| format!("{path} cannot be checked: {e}"))?;
    if !opened.starts_with(&root) {
        return Err(format!("{path} leads outside /shared"));
    }
    let meta = file
        .metadata()
        .map_err(|e| format!("{path} cannot be checked: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if meta.len() > MAX_OUTGOING_BYTES {
        return Err(format!("{path} is larger than {MAX_OUTGOING_BYTES} bytes"));
    }
    let mut contents = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.by_ref()
        .take(MAX_OUTGOING_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(|e| format!("{path} cannot be read: {e}"))?;
    if contents.len() as u64 > MAX_OUTGOING_BYTES {
        return Err(format!("{path} is larger than {MAX_OUTGOING_BYTES} bytes"));
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_really_inside_shared_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("report.txt"), "numbers").unwrap();
        std::fs::write(dir.path().join("host-secret"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("host-secret"), shared.join("link")).unwrap();
        nix::unistd::mkfifo(&shared.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::create_dir(shared.join("dir")).unwrap();
        assert_eq!(
            read_shared(&shared, "/shared/report.txt").unwrap(),
            b"numbers"
        );
        for (path, why) in [
            ("/shared/link", "leads outside /shared"),
            ("/shared/fifo", "not a regular file"),
            ("/shared/dir", "not a regular file"),
            ("/shared/../host-secret", "not a file under /shared"),
            ("/vault/x", "not a file under /shared"),
            ("/shared/missing", "cannot be opened"),
        ] {
            let error = read_shared(&shared, path).unwrap_err();
            assert!(error.contains(why), "{path}: {error}");
        }
    }
}
