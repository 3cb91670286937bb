//! The endpoint file (`<workspace>/tmp/gateway-endpoint`) and the access
//! token it carries. The format is `types::protocol::gateway::GatewayEndpoint`
//! (one line of JSON with `url` and `token`), so clients read it without
//! depending on this crate.

use std::path::{Path, PathBuf};

use rand::RngCore;
use tokio::io::AsyncWriteExt;
use types::SecretString;
use types::protocol::gateway::GatewayEndpoint;

use crate::error::GatewayError;

/// Random bytes in a token (hex-encoded, so 64 characters).
const TOKEN_BYTES: usize = 32;

/// A fresh access token: 32 random bytes from the OS-seeded generator,
/// hex-encoded.
pub fn generate_token() -> SecretString {
    SecretString::new(random_hex(TOKEN_BYTES))
}

/// `bytes` random bytes as lowercase hex (ids and tokens).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a presented token with the expected one in time that does not
/// depend on where they differ.
pub(crate) fn tokens_match(expected: &SecretString, presented: &SecretString) -> bool {
    let (a, b) = (expected.expose().as_bytes(), presented.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A written endpoint file. Call `remove` when the gateway stops.
#[derive(Debug)]
pub struct EndpointFile {
    path: PathBuf,
}

impl EndpointFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file (a missing file is fine: someone cleaned up).
    pub fn remove(self) -> Result<(), GatewayError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(GatewayError::EndpointFile {
                path: self.path,
                source,
            }),
        }
    }
}

/// Writes `endpoint` to `<tmp_dir>/gateway-endpoint` atomically: a private
/// temporary file (mode 0600 from its creation) is written, synced and
/// renamed over the old one, so a reader sees the old file or the whole
/// new one, never a partial line, and nobody else can read the token.
pub async fn write_endpoint_file(
    tmp_dir: &Path,
    endpoint: &GatewayEndpoint,
) -> Result<EndpointFile, GatewayError> {
    let path = tmp_dir.join(GatewayEndpoint::FILE_NAME);
    let staging = tmp_dir.join(format!(
        ".{}.{}.tmp",
        GatewayEndpoint::FILE_NAME,
        random_hex(6)
    ));
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GatewayError::EndpointFile { path, source }
    };
    let written = async {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&staging).await?;
        file.write_all(endpoint.to_line().as_bytes()).await?;
        file.sync_all().await
    }
    .await;
    if let Err(source) = written {
        // Best effort: the staging file holds the token, do not leave it.
        let _ = tokio::fs::remove_file(&staging).await;
        return Err(fail(&staging)(source));
    }
    if let Err(source) = tokio::fs::rename(&staging, &path).await {
        let _ = tokio::fs::remove_file(&staging).await;
        return Err(fail(&path)(source));
    }
    Ok(EndpointFile { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_hex_and_compare_exactly() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert!(tokens_match(&a, &a.clone()));
        assert!(!tokens_match(&a, &b));
        assert!(!tokens_match(&a, &SecretString::new(&a.expose()[..63])));
        assert!(!tokens_match(&a, &SecretString::new("")));
    }

    #[tokio::test]
    async fn endpoint_file_is_private_atomic_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = GatewayEndpoint {
            url: "ws://127.0.0.1:1234/ws".into(),
            token: generate_token(),
        };
        let file = write_endpoint_file(dir.path(), &endpoint).await.unwrap();
        assert_eq!(file.path(), dir.path().join("gateway-endpoint"));
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(GatewayEndpoint::parse(&text).unwrap(), endpoint);
        assert_eq!(text.lines().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Rewriting replaces it and leaves no staging files behind.
        let second = GatewayEndpoint {
            url: "ws://127.0.0.1:999/ws".into(),
            token: generate_token(),
        };
        let file = write_endpoint_file(dir.path(), &second).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["gateway-endpoint"]);
        file.remove().unwrap();
        assert!(!dir.path().join("gateway-endpoint").exists());
    }

    #[tokio::test]
    async fn endpoint_file_in_a_missing_directory_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let endpoint = GatewayEndpoint {
            url: "ws://127.0.0.1:1/ws".into(),
            token: generate_token(),
        };
        let err = write_endpoint_file(&missing, &endpoint).await.unwrap_err();
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }
}
