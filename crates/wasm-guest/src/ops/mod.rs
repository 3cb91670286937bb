//! The file operations, over plain `std::fs`. Every limit that protects the
//! process (read sizes, result counts) is enforced here, so it holds on the
//! host and inside the WASM guest alike.

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use globset::{Glob, GlobMatcher};
use regex::Regex;
use types::protocol::file_ops::{
    DirEntry, EntryKind, FileErrorKind, FileRequest, FileResponse, SearchMatch,
};

use crate::path::{OpError, PathMap, VirtualPath};

/// The most text `file_read` loads (larger files: ask for a line range).
pub const MAX_READ_BYTES: u64 = 4 * 1024 * 1024;
/// Files larger than this are skipped by `file_search`.
pub const MAX_SEARCH_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The most bytes a vault copy moves.
pub const MAX_VAULT_BYTES: u64 = 16 * 1024 * 1024;
/// Matched lines longer than this are cut (minified files).
const MAX_MATCH_LINE_CHARS: usize = 300;
/// How many leading bytes decide that a file is binary.
const BINARY_SNIFF_BYTES: usize = 8192;
/// Directories `file_search` never descends into.
const SKIPPED_DIRS: [&str; 2] = [".git", "node_modules"];

/// Runs one request. Never panics on any input; failures are
/// `FileResponse::Error`s with a message for the model.
pub fn execute(request: &FileRequest, map: &impl PathMap) -> FileResponse {
    run(request, map).unwrap_or_else(FileResponse::from)
}

fn run(request: &FileRequest, map: &impl PathMap) -> Result<FileResponse, OpError> {
    let path = VirtualPath::parse(request.path())?;
    let open = map.open_path(&path, request.access())?;
    match request {
        FileRequest::Read {
            start_line,
            max_lines,
            ..
        } => read(&path, &open, *start_line, *max_lines),
        FileRequest::Search {
            pattern,
            glob,
            max_results,
            ..
        } => search(&path, &open, pattern, glob.as_deref(), *max_results),
        FileRequest::List { .. } => list(&path, &open),
        FileRequest::Write { content, .. } => write(&path, &open, content.as_bytes()),
        FileRequest::Edit {
            old_text, new_text, ..
        } => edit(&path, &open, old_text, new_text),
        FileRequest::Delete { .. } => delete(&path, &open),
        FileRequest::VaultRead { .. } => vault_read(&path, &open),
        FileRequest::VaultWrite { content_base64, .. } => {
            let bytes = BASE64.decode(content_base64).map_err(|e| {
                OpError::new(
                    FileErrorKind::InvalidInput,
                    format!("invalid base64 content: {e}"),
                )
            })?;
            write(&path, &open, &bytes)
        }
    }
}

/// Maps an I/O error to a message naming the workspace path.
fn io_error(path: &VirtualPath, error: std::io::Error) -> OpError {
    let kind = match error.kind() {
        ErrorKind::NotFound => FileErrorKind::NotFound,
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            FileErrorKind::PermissionDenied
        }
        ErrorKind::IsADirectory => FileErrorKind::NotAFile,
        ErrorKind::NotADirectory => FileErrorKind::NotADirectory,
        _ => FileErrorKind::Io,
    };
    let message = match kind {
        FileErrorKind::NotFound => format!("{path} does not exist"),
        FileErrorKind::PermissionDenied => format!("{path}: permission denied"),
        _ => format!("{path}: {error}"),
    };
    OpError::new(kind, message)
}

fn kind_of(metadata: &fs::Metadata) -> EntryKind {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

/// Reads at most `limit` bytes; the flag says whether the file is longer.
fn read_capped(file: File, limit: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    let longer = bytes.len() as u64 > limit;
    bytes.truncate(limit as usize);
    Ok((bytes, longer))
}

fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0)
}

/// The UTF-8 text of `bytes`, or a `Binary` error. A cut at `limit` may
/// have split a character; only that tail is dropped.
fn as_text(path: &VirtualPath, bytes: Vec<u8>, cut: bool) -> Result<String, OpError> {
    let binary = || {
        OpError::new(
            FileErrorKind::Binary,
            format!("{path} is not UTF-8 text; only text files can be read"),
        )
    };
    if looks_binary(&bytes) {
        return Err(binary());
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(error) if cut && error.utf8_error().error_len().is_none() => {
            let valid = error.utf8_error().valid_up_to();
            let mut bytes = error.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).map_err(|_| binary())
        }
        Err(_) => Err(binary()),
    }
}

fn open_file(path: &VirtualPath, open: &Path) -> Result<File, OpError> {
    let metadata = fs::metadata(open).map_err(|e| io_error(path, e))?;
    if metadata.is_dir() {
        return Err(OpError::new(
            FileErrorKind::NotAFile,
            format!("{path} is a directory; use file_list to see its entries"),
        ));
    }
    File::open(open).map_err(|e| io_error(path, e))
}

fn read(
    path: &VirtualPath,
    open: &Path,
    start_line: Option<u64>,
    max_lines: Option<u64>,
) -> Result<FileResponse, OpError> {
    if start_line == Some(0) {
        return Err(OpError::new(
            FileErrorKind::InvalidInput,
            "start_line is 1-based; use 1 for the first line",
        ));
    }
    let (bytes, longer) =
        read_capped(open_file(path, open)?, MAX_READ_BYTES).map_err(|e| io_error(path, e))?;
    let text = as_text(path, bytes, longer)?;
    let skip = start_line.map_or(0, |n| n - 1) as usize;
    let take = max_lines.map_or(usize::MAX, |n| n as usize);
    let mut lines = text.split_inclusive('\n').skip(skip);
    let selected: String = lines.by_ref().take(take).collect();
    let returned = selected.lines().count() as u64;
    let more_lines = lines.next().is_some();
    if skip > 0 && returned == 0 && !text.is_empty() {
        return Err(OpError::new(
            FileErrorKind::InvalidInput,
            format!(
                "{path} has only {} lines; start_line {} is past the end",
                text.lines().count(),
                skip + 1
            ),
        ));
    }
    Ok(FileResponse::Text {
        text: selected,
        lines: returned,
        truncated: longer || more_lines,
    })
}

fn list(path: &VirtualPath, open: &Path) -> Result<FileResponse, OpError> {
    let metadata = fs::metadata(open).map_err(|e| io_error(path, e))?;
    if !metadata.is_dir() {
        return Err(OpError::new(
            FileErrorKind::NotADirectory,
            format!("{path} is a file; use file_read to read it"),
        ));
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(open).map_err(|e| io_error(path, e))? {
        let entry = entry.map_err(|e| io_error(path, e))?;
        // Never follow links: a link is listed as a link.
        let metadata = fs::symlink_metadata(entry.path()).map_err(|e| io_error(path, e))?;
        let kind = kind_of(&metadata);
        entries.push(DirEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            kind,
            size: if kind == EntryKind::File {
                metadata.len()
            } else {
                0
            },
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FileResponse::Entries { entries })
}

/// What a search collects, and when it must stop.
struct Search {
    regex: Regex,
    glob: Option<GlobMatcher>,
    max_results: usize,
    matches: Vec<SearchMatch>,
    truncated: bool,
}

fn search(
    path: &VirtualPath,
    open: &Path,
    pattern: &str,
    glob: Option<&str>,
    max_results: u32,
) -> Result<FileResponse, OpError> {
    let regex = Regex::new(pattern).map_err(|e| {
        OpError::new(
            FileErrorKind::InvalidInput,
            format!("invalid search pattern: {e}"),
        )
    })?;
    let glob = glob
        .map(|g| {
            Glob::new(g).map(|g| g.compile_matcher()).map_err(|e| {
                OpError::new(
                    FileErrorKind::InvalidInput,
                    format!("invalid glob {g:?}: {e}"),
                )
            })
        })
        .transpose()?;
    let mut state = Search {
        regex,
        glob,
        max_results: max_results.max(1) as usize,
        matches: Vec::new(),
        truncated: false,
    };
    let metadata = fs::metadata(open).map_err(|e| io_error(path, e))?;
    if metadata.is_dir() {
        walk(&mut state, path, open, Path::new(""))?;
    } else {
        search_file(&mut state, path, open, Path::new(""));
    }
    Ok(FileResponse::Matches {
        matches: state.matches,
        truncated: state.truncated,
    })
}

/// Depth-first, in name order, without following links.
fn walk(
    state: &mut Search,
    base: &VirtualPath,
    dir: &Path,
    relative: &Path,
) -> Result<(), OpError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io_error(base, e))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if state.truncated {
            return Ok(());
        }
        let name = entry.file_name();
        let relative = relative.join(&name);
        let Ok(metadata) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        match kind_of(&metadata) {
            EntryKind::Directory => {
                if !SKIPPED_DIRS.iter().any(|skip| name == *skip) {
                    walk(state, base, &entry.path(), &relative)?;
                }
            }
            EntryKind::File if metadata.len() <= MAX_SEARCH_FILE_BYTES => {
                search_file(state, base, &entry.path(), &relative);
            }
            EntryKind::File | EntryKind::Symlink | EntryKind::Other => {}
        }
    }
    Ok(())
}

/// Searches one file; unreadable and binary files are skipped silently.
fn search_file(state: &mut Search, base: &VirtualPath, file: &Path, relative: &Path) {
    if let Some(glob) = &state.glob {
        let name = relative.file_name().map(Path::new).unwrap_or(file);
        if !glob.is_match(relative) && !glob.is_match(name) {
            return;
        }
    }
    let Ok(bytes) = fs::read(file) else {
        return;
    };
    if looks_binary(&bytes) {
        return;
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return;
    };
    let shown = relative.components().fold(base.clone(), |p, c| {
        p.child(&c.as_os_str().to_string_lossy())
    });
    for (number, line) in text.lines().enumerate() {
        if !state.regex.is_match(line) {
            continue;
        }
        if state.matches.len() == state.max_results {
            state.truncated = true;
            return;
        }
        let text = match line.char_indices().nth(MAX_MATCH_LINE_CHARS) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_owned(),
        };
        state.matches.push(SearchMatch {
            path: shown.to_string(),
            line: number as u64 + 1,
            text,
        });
    }
}

fn write(path: &VirtualPath, open: &Path, bytes: &[u8]) -> Result<FileResponse, OpError> {
    if path.is_mount_root() || fs::metadata(open).is_ok_and(|m| m.is_dir()) {
        return Err(OpError::new(
            FileErrorKind::NotAFile,
            format!("{path} is a directory; write to a file path inside it"),
        ));
    }
    if let Some(parent) = open.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error(path, e))?;
    }
    fs::write(open, bytes).map_err(|e| io_error(path, e))?;
    Ok(FileResponse::Written {
        path: path.to_string(),
        bytes: bytes.len() as u64,
    })
}

fn edit(path: &VirtualPath, open: &Path, old: &str, new: &str) -> Result<FileResponse, OpError> {
    if old.is_empty() {
        return Err(OpError::new(
            FileErrorKind::InvalidInput,
            "old_text is empty; give the exact text to replace",
        ));
    }
    let (bytes, longer) =
        read_capped(open_file(path, open)?, MAX_READ_BYTES).map_err(|e| io_error(path, e))?;
    if longer {
        return Err(OpError::new(
            FileErrorKind::TooLarge,
            format!("{path} is larger than {MAX_READ_BYTES} bytes and cannot be edited"),
        ));
    }
    let text = as_text(path, bytes, false)?;
    match text.matches(old).count() {
        0 => Err(OpError::new(
            FileErrorKind::NoMatch,
            format!("old_text was not found in {path}; read the file and copy the text exactly"),
        )),
        1 => {
            fs::write(open, text.replacen(old, new, 1)).map_err(|e| io_error(path, e))?;
            Ok(FileResponse::Edited {
                path: path.to_string(),
            })
        }
        n => Err(OpError::new(
            FileErrorKind::AmbiguousMatch,
            format!(
                "old_text occurs {n} times in {path}; include more surrounding text so it matches once"
            ),
        )),
    }
}

fn delete(path: &VirtualPath, open: &Path) -> Result<FileResponse, OpError> {
    if path.is_mount_root() {
        return Err(OpError::new(
            FileErrorKind::PermissionDenied,
            format!("{path} is a workspace mount and cannot be deleted; delete entries inside it"),
        ));
    }
    let metadata = fs::symlink_metadata(open).map_err(|e| io_error(path, e))?;
    let kind = kind_of(&metadata);
    match kind {
        EntryKind::Directory => fs::remove_dir_all(open),
        EntryKind::File | EntryKind::Symlink | EntryKind::Other => fs::remove_file(open),
    }
    .map_err(|e| io_error(path, e))?;
    Ok(FileResponse::Deleted {
        path: path.to_string(),
        kind,
    })
}

fn vault_read(path: &VirtualPath, open: &Path) -> Result<FileResponse, OpError> {
    let (bytes, longer) =
        read_capped(open_file(path, open)?, MAX_VAULT_BYTES).map_err(|e| io_error(path, e))?;
    if longer {
        return Err(OpError::new(
            FileErrorKind::TooLarge,
            format!("{path} is larger than {MAX_VAULT_BYTES} bytes and cannot be copied"),
        ));
    }
    Ok(FileResponse::Bytes {
        bytes: bytes.len() as u64,
        content_base64: BASE64.encode(&bytes),
    })
}

#[cfg(test)]
mod tests;
