//! Files people send: saved under the user's `/shared/inbox/` (on the host:
//! `<shared>/inbox/`) with a sanitised name that never overwrites another
//! file, capped in size, downloaded to a hidden temporary name first so
//! the agent never sees half a file. The turn then names the file's path
//! as the agent sees it.

use std::path::Path;

use super::api::{BotApi, Message};

/// The directory inside `/shared`.
pub const INBOX: &str = "inbox";
/// The longest name kept (bytes, before a uniqueness prefix).
const MAX_NAME: usize = 100;

/// A file a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Incoming {
    pub file_id: String,
    pub name: String,
    /// As Telegram reports it, when it does.
    pub size: Option<u64>,
}

/// The document, or the largest size of the photo, a message carries.
pub(super) fn incoming(message: &Message) -> Option<Incoming> {
    if let Some(document) = &message.document {
        return Some(Incoming {
            file_id: document.file_id.clone(),
            name: document
                .file_name
                .clone()
                .unwrap_or_else(|| format!("document-{}", message.message_id)),
            size: document.file_size,
        });
    }
    let photo = message.photo.as_ref()?.iter().max_by_key(|size| {
        (
            size.file_size,
            u64::from(size.width) * u64::from(size.height),
        )
    })?;
    Some(Incoming {
        file_id: photo.file_id.clone(),
        name: format!("photo-{}.jpg", message.message_id),
        size: photo.file_size,
    })
}

/// A name safe on every filesystem and in a shell: letters, digits, `.`,
/// `-` and `_` (anything else becomes `_`), no leading dot, at most
/// `MAX_NAME` bytes, never empty.
pub(super) fn sanitise(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while clean.starts_with('.') {
        clean.remove(0);
    }
    if clean.len() > MAX_NAME {
        // Keep the extension: cut from the stem.
        let extension = clean
            .rfind('.')
            .map(|dot| clean[dot..].to_owned())
            .filter(|ext| ext.len() <= 16)
            .unwrap_or_default();
        clean.truncate(MAX_NAME - extension.len());
        clean.push_str(&extension);
    }
    if clean.is_empty() || clean.chars().all(|c| c == '_') {
        "file".to_owned()
    } else {
        clean
    }
}

/// Downloads `file` into `<shared_dir>/inbox/` and returns its path as the
/// agent sees it (`/shared/inbox/<name>`), or what to tell the sender.
pub(super) async fn receive(
    api: &BotApi,
    shared_dir: &Path,
    file: &Incoming,
    max_bytes: u64,
) -> Result<String, String> {
    let megabytes = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1_000_000.0);
    if let Some(size) = file.size.filter(|size| *size > max_bytes) {
        return Err(format!(
            "{} is too large ({}; files up to {} are accepted).",
            file.name,
            megabytes(size),
            megabytes(max_bytes)
        ));
    }
    let located = api
        .get_file(&file.file_id)
        .await
        .map_err(|e| format!("{} could not be fetched: {e}", file.name))?;
    let Some(remote) = located.file_path else {
        return Err(format!("Telegram cannot serve {} (too large).", file.name));
    };
    let inbox = shared_dir.join(INBOX);
    tokio::fs::create_dir_all(&inbox)
        .await
        .map_err(|e| format!("the inbox {} cannot be created: {e}", inbox.display()))?;
    let name = sanitise(&file.name);
    let partial = inbox.join(format!(".{name}.{}.part", std::process::id()));
    let saved = match api.download(&remote, max_bytes, &partial).await {
        Ok(_) => place(&partial, &inbox, &name).await,
        Err(error) => Err(format!("{} could not be downloaded: {error}", file.name)),
    };
    if saved.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    saved.map(|placed| format!("/shared/{INBOX}/{placed}"))
}

/// Renames the downloaded file to `name`, or `2-name`, `3-name`, … when
/// taken; returns the name used. The link-then-unlink never replaces an
/// existing file, even one created meanwhile.
async fn place(partial: &Path, inbox: &Path, name: &str) -> Result<String, String> {
    for attempt in 1..1000 {
        let candidate = if attempt == 1 {
            name.to_owned()
        } else {
            format!("{attempt}-{name}")
        };
        match tokio::fs::hard_link(partial, inbox.join(&candidate)).await {
            Ok(()) => {
                let _ = tokio::fs::remove_file(partial).await;
                return Ok(candidate);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(format!("the file could not be saved in the inbox: {error}")),
        }
    }
    Err(format!(
        "the inbox already holds 999 files named like {name}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(
            sanitise("report 2026 (final).pdf"),
            "report_2026__final_.pdf"
        );
        assert_eq!(sanitise("../../etc/passwd"), "passwd");
        assert_eq!(sanitise("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitise(".bashrc"), "bashrc");
        assert_eq!(sanitise("; rm -rf ~"), "__rm_-rf__");
        assert_eq!(sanitise("Ωμέγα"), "file");
        assert_eq!(sanitise(""), "file");
        let long = format!("{}.tar.gz", "a".repeat(300));
        let clean = sanitise(&long);
        assert_eq!(clean.len(), MAX_NAME);
        assert!(clean.ends_with(".gz"), "{clean}");
    }

    #[tokio::test]
    async fn a_taken_name_gets_a_prefix_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "old").unwrap();
        let partial = dir.path().join(".a.txt.part");
        std::fs::write(&partial, "new").unwrap();
        assert_eq!(
            place(&partial, dir.path(), "a.txt").await.unwrap(),
            "2-a.txt"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "old"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("2-a.txt")).unwrap(),
            "new"
        );
        assert!(!partial.exists());
    }
}
