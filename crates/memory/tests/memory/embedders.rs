//! The embedders behind the trait: the OpenAI-compatible endpoint against
//! a local HTTP server, configuration errors, and (with the `semantic`
//! feature and model files present) the candle model.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use memory::{
    DIMENSIONS, Embedder, EndpointAccess, LexicalEmbedder, LibsqlMemory, MemoryOptions,
    OpenAiEmbedder, build_embedder,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use types::config::EmbeddingConfig;
use types::{Memory, MemoryRetrieval, SecretString};

#[derive(Debug, Clone, Deserialize)]
struct Request {
    model: String,
    input: Vec<String>,
    dimensions: usize,
}

#[derive(Debug, Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Debug, Serialize)]
struct Answer {
    object: &'static str,
    data: Vec<Item>,
    model: String,
}

/// How the fake endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Lexical vectors, in reverse order (indices must be honoured).
    Good,
    WrongWidth,
    Unauthorized,
}

/// Each request with its `Authorization` header.
type Seen = Vec<(Option<String>, Request)>;

#[derive(Debug, Clone)]
struct Fake {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

async fn embeddings(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(request): Json<Request>,
) -> (StatusCode, Json<serde_json::Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    fake.seen.lock().unwrap().push((auth, request.clone()));
    let mode = *fake.mode.lock().unwrap();
    match mode {
        Mode::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}),
            ),
        ),
        Mode::Good | Mode::WrongWidth => {
            let lexical = LexicalEmbedder::new();
            let mut data: Vec<Item> = request
                .input
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    let mut embedding = lexical.vector(text);
                    if mode == Mode::WrongWidth {
                        embedding.push(0.0);
                    }
                    // Not unit length: the embedder normalises.
                    embedding.iter_mut().for_each(|x| *x *= 3.0);
                    Item {
                        object: "embedding",
                        index,
                        embedding,
                    }
                })
                .collect();
            data.reverse();
            let answer = Answer {
                object: "list",
                data,
                model: request.model.clone(),
            };
            (StatusCode::OK, Json(serde_json::to_value(answer).unwrap()))
        }
    }
}

async fn start_fake() -> (String, Fake, tokio::task::JoinHandle<()>) {
    let fake = Fake {
        mode: Arc::new(Mutex::new(Mode::Good)),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{address}/v1"), fake, server)
}

#[tokio::test]
async fn the_openai_compatible_endpoint_embeds_and_reports_failures() {
    let (base_url, fake, server) = start_fake().await;
    let embedder = build_embedder(
        &EmbeddingConfig::OpenaiCompatible {
            provider: "local".into(),
            model: "nomic-embed-text".into(),
        },
        Some(EndpointAccess {
            base_url: format!("{base_url}/"),
            api_key: Some(SecretString::new("sk-test")),
        }),
    )
    .unwrap();
    assert_eq!(embedder.model_name(), "openai:nomic-embed-text");
    let texts = vec!["alpha beta".to_owned(), "gamma".to_owned()];
    let vectors = embedder.embed(&texts).await.unwrap();
    let lexical = LexicalEmbedder::new();
    for (text, vector) in texts.iter().zip(&vectors) {
        assert_eq!(vector.len(), DIMENSIONS);
        let expected = lexical.vector(text);
        assert!(
            vector
                .iter()
                .zip(&expected)
                .all(|(a, b)| (a - b).abs() < 1e-5)
        );
    }
    {
        let seen = fake.seen.lock().unwrap();
        let (auth, request) = &seen[0];
        assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
        assert_eq!(request.model, "nomic-embed-text");
        assert_eq!(request.dimensions, DIMENSIONS);
        assert_eq!(request.input, texts);
    }

    // Memory on top of it: stored and found by vector similarity.
    let dir = tempfile::tempdir().unwrap();
    let memory = LibsqlMemory::open(
        MemoryOptions::local(dir.path().join("m.db")),
        embedder.clone(),
    )
    .await
    .unwrap();
    memory
        .store("s", 1, json!("the harbour crane is broken"))
        .await
        .unwrap();
    memory.wait_indexed().await;
    let hits = memory.hybrid_query("s", "harbour cranes", 1).await.unwrap();
    assert!(hits[0].vector_score > 0.0 && hits[0].text.contains("crane"));

    *fake.mode.lock().unwrap() = Mode::WrongWidth;
    let err = embedder.embed(&texts).await.unwrap_err().to_string();
    assert!(
        err.contains("returned 385 dimensions") && err.contains("nomic-embed-text"),
        "{err}"
    );

    *fake.mode.lock().unwrap() = Mode::Unauthorized;
    let err = embedder.embed(&texts).await.unwrap_err().to_string();
    assert!(
        err.contains("401") && err.contains("Incorrect API key provided"),
        "{err}"
    );
    assert!(!err.contains("sk-test"));
    // An unusable endpoint never loses an event: text is still indexed.
    memory
        .store("s", 2, json!("the ferry timetable changed"))
        .await
        .unwrap();
    memory.wait_indexed().await;
    let hits = memory
        .hybrid_query("s", "ferry timetable", 1)
        .await
        .unwrap();
    assert_eq!(hits[0].text, "the ferry timetable changed");
    assert_eq!(hits[0].vector_score, 0.0);

    server.abort();
    let _ = server.await;
    let err = OpenAiEmbedder::new(&base_url, None, "m")
        .unwrap()
        .embed(&texts)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("embeddings request to"), "{err}");
}

#[tokio::test]
async fn embedder_configuration_errors_are_specific() {
    let err = build_embedder(
        &EmbeddingConfig::OpenaiCompatible {
            provider: "p".into(),
            model: "m".into(),
        },
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no base URL was resolved"),
        "{err}"
    );
    assert!(OpenAiEmbedder::new("http://127.0.0.1:1", None, " ").is_err());
    // `auto` reaching memory unresolved means the runner found no
    // installed model: lexical, like an explicit choice of it.
    for config in [EmbeddingConfig::Lexical {}, EmbeddingConfig::Auto {}] {
        assert_eq!(
            build_embedder(&config, None).unwrap().model_name(),
            "oxydra-lexical-v1"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let err = build_embedder(
        &EmbeddingConfig::Semantic {
            model_dir: dir.path().to_owned(),
            model_name: None,
        },
        None,
    )
    .unwrap_err()
    .to_string();
    if cfg!(feature = "semantic") {
        assert!(err.contains("has no config.json"), "{err}");
    } else {
        assert!(err.contains("`semantic` feature"), "{err}");
    }
}

#[cfg(feature = "semantic")]
mod semantic {
    use super::*;

    /// Points the semantic tests at a model directory (`scripts/test`
    /// fetches all-MiniLM-L6-v2 into a cache and sets it).
    const MODEL_DIR_ENV: &str = "OXYDRA_TEST_EMBEDDING_MODEL_DIR";

    fn model_dir() -> Option<std::path::PathBuf> {
        let Some(dir) = std::env::var_os(MODEL_DIR_ENV).map(std::path::PathBuf::from) else {
            println!(
                "SKIPPED: {MODEL_DIR_ENV} is not set; run scripts/test to fetch all-MiniLM-L6-v2"
            );
            return None;
        };
        let missing: Vec<&str> = ["config.json", "tokenizer.json", "model.safetensors"]
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if missing.is_empty() {
            Some(dir)
        } else {
            println!("SKIPPED: {} lacks {missing:?}", dir.display());
            None
        }
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[tokio::test]
    async fn the_local_model_ranks_paraphrases_together() {
        let Some(dir) = model_dir() else { return };
        let embedder =
            Arc::new(memory::SemanticEmbedder::new(&dir, Some("all-MiniLM-L6-v2")).unwrap());
        assert!(
            !embedder.is_loaded(),
            "loading must wait for the first text"
        );
        let texts: Vec<String> = [
            "a cat sat on the mat",
            "a kitten rested on the rug",
            "the stock market fell sharply today",
            "quarterly earnings beat expectations",
        ]
        .map(str::to_owned)
        .to_vec();
        let vectors = embedder.embed(&texts).await.unwrap();
        assert!(embedder.is_loaded());
        assert_eq!(vectors[0].len(), DIMENSIONS);
        assert!((cosine(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-4);
        let paraphrase = cosine(&vectors[0], &vectors[1]);
        assert!(paraphrase > 0.5, "{paraphrase}");
        assert!(paraphrase > cosine(&vectors[0], &vectors[2]) + 0.3);
        assert!(paraphrase > cosine(&vectors[0], &vectors[3]) + 0.3);

        // Through memory: no shared word, yet the paraphrase ranks first.
        let store_dir = tempfile::tempdir().unwrap();
        let memory = LibsqlMemory::open(
            MemoryOptions::local(store_dir.path().join("m.db")),
            embedder.clone(),
        )
        .await
        .unwrap();
        for (i, text) in texts.iter().enumerate().skip(1) {
            memory.store("s", i as i64, json!(text)).await.unwrap();
        }
        memory.wait_indexed().await;
        let hits = memory
            .hybrid_query("s", "a cat sat on the mat", 3)
            .await
            .unwrap();
        assert_eq!(hits[0].text, "a kitten rested on the rug", "{hits:#?}");
        assert_eq!(memory.embedding_model(), "candle:all-MiniLM-L6-v2");
    }
}
