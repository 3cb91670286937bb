//! Hybrid retrieval: ranking on a small labelled set, dedupe, documents,
//! hostile full-text queries, scopes, and models kept apart.

use std::sync::Arc;

use async_trait::async_trait;
use memory::{Embedder, LexicalEmbedder, LibsqlMemory, MemoryOptions};
use serde_json::json;
use types::config::RetrievalScope;
use types::{AgentMemory, ChunkInput, Memory, MemoryError, MemoryRetrieval};

use crate::{count, open};

const NOTES: [&str; 8] = [
    "The quarterly budget review is scheduled for Thursday afternoon.",
    "Remember to rotate the PostgreSQL credentials before the audit.",
    "Alice prefers her coffee black with no sugar.",
    "The deployment pipeline failed because the Docker image was too large.",
    "Our cat Miso sleeps on the windowsill every morning.",
    "Kubernetes autoscaling thresholds were raised to 80 percent CPU.",
    "The flight to Lisbon departs at 7:40 from terminal 2.",
    "Invoice 4471 from Acme Corp is overdue by 30 days.",
];

async fn labelled(path: &std::path::Path) -> LibsqlMemory {
    let memory = open(path).await;
    for (i, note) in NOTES.iter().enumerate() {
        let seq = i64::try_from(i).unwrap() + 1;
        memory
            .store("s", seq, json!({"role": "user", "content": note}))
            .await
            .unwrap();
    }
    memory.wait_indexed().await;
    memory
}

#[tokio::test]
async fn keyword_queries_find_their_note_first() {
    let dir = tempfile::tempdir().unwrap();
    let memory = labelled(&dir.path().join("m.db")).await;
    for (query, expected) in [
        ("when is the budget review?", 0),
        ("postgresql credentials rotation", 1),
        ("how does Alice take her coffee", 2),
        ("why did the docker deployment fail", 3),
        ("where does Miso sleep", 4),
        ("kubernetes autoscaling", 5),
        ("Lisbon flight terminal", 6),
        ("acme invoice overdue", 7),
        // Word pieces: the lexical embedder's n-grams match inflections
        // even where the full-text search has no exact word.
        ("deployments pipelines", 3),
    ] {
        let hits = memory.hybrid_query("s", query, 3).await.unwrap();
        assert!(!hits.is_empty(), "{query}: nothing found");
        assert_eq!(hits[0].text, NOTES[expected], "{query}: {hits:#?}");
        assert!(hits[0].score > 0.0 && hits[0].score <= 1.0 + 1e-9);
        for hit in &hits {
            assert!((0.0..=1.0).contains(&hit.vector_score), "{hit:?}");
            assert!((0.0..=1.0).contains(&hit.fts_score), "{hit:?}");
            let expected_score = 0.7 * hit.vector_score + 0.3 * hit.fts_score;
            assert!((hit.score - expected_score).abs() < 1e-9);
        }
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // The full-text half alone finds an exact keyword.
    let hits = memory.hybrid_query("s", "4471", 1).await.unwrap();
    assert_eq!(hits[0].text, NOTES[7]);
    assert_eq!(hits[0].fts_score, 1.0);
    assert!(
        memory
            .hybrid_query("s", "anything", 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(memory.hybrid_query("s", "   ", 5).await.unwrap().is_empty());
}

#[tokio::test]
async fn ties_are_broken_by_recency() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    memory.store("s", 1, json!("zebra crossing")).await.unwrap();
    memory.store("s", 2, json!("crossing zebra")).await.unwrap();
    memory.wait_indexed().await;
    let hits = memory.hybrid_query("s", "zebra crossing", 2).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].score, hits[1].score, "{hits:#?}");
    assert_eq!(hits[0].sequence_end, 2);
}

#[tokio::test]
async fn the_weakest_of_two_matches_is_still_returned() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    memory
        .store("s", 1, json!("what is my cat called?"))
        .await
        .unwrap();
    memory
        .store(
            "s",
            2,
            json!("The cat is called Marmalade and hides from the vacuum."),
        )
        .await
        .unwrap();
    memory.wait_indexed().await;
    // Min-max scores the weaker match 0 in both lists; it still matched.
    let hits = memory
        .hybrid_query("s", "what is the cat called", 5)
        .await
        .unwrap();
    assert_eq!(hits.len(), 2, "{hits:#?}");
}

#[tokio::test]
async fn what_the_context_already_sends_is_not_retrieved() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open(&dir.path().join("m.db")).await;
    for (seq, text) in [
        (1, "the backup runs at night"),
        (2, "backup logs go to /tmp"),
        (3, "backup question"),
    ] {
        memory.store("s", seq, json!(text)).await.unwrap();
    }
    memory.wait_indexed().await;
    // The whole conversation is in the context, and there are no notes.
    assert!(
        memory
            .hybrid_query_before("s", "backup", 5, 1)
            .await
            .unwrap()
            .is_empty()
    );
    // Only what precedes the context is retrieved.
    let hits = memory
        .hybrid_query_before("s", "backup", 5, 3)
        .await
        .unwrap();
    let mut sequences: Vec<i64> = hits.iter().map(|h| h.sequence_end).collect();
    sequences.sort();
    assert_eq!(sequences, [1, 2]);
    // A saved note is always worth a search.
    memory
        .save_note("other", "backups are encrypted")
        .await
        .unwrap();
    let hits = memory
        .hybrid_query_before("s", "backup", 5, 1)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text, "backups are encrypted");
}

#[tokio::test]
async fn hostile_full_text_queries_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let memory = labelled(&dir.path().join("m.db")).await;
    for query in [
        "\"",
        "\"unbalanced quote",
        "budget\"",
        "*",
        "budget*",
        "NEAR(",
        "NEAR(budget review, 2)",
        "- budget",
        "-budget",
        "content: budget",
        "chunk_text:budget",
        "((budget",
        "budget))",
        "AND OR NOT",
        "budget AND",
        "^budget",
        "{chunk_text}: x",
        "'; DROP TABLE chunks; --",
        "\u{0}",
        "🦀🦀",
        "",
    ] {
        let result = memory.hybrid_query("s", query, 5).await;
        assert!(result.is_ok(), "{query:?}: {result:?}");
    }
    // Operators are searched as words, so the real word still ranks.
    let hits = memory
        .hybrid_query("s", "NEAR(budget -review*", 1)
        .await
        .unwrap();
    assert_eq!(hits[0].text, NOTES[0]);
    assert_eq!(memory.recall("s", None).await.unwrap().len(), NOTES.len());
}

#[tokio::test]
async fn repeated_text_is_stored_once_and_extends_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    memory
        .store("s", 1, json!({"role": "user", "content": "ship it"}))
        .await
        .unwrap();
    memory
        .store("s", 2, json!({"role": "assistant", "content": "ship   it"}))
        .await
        .unwrap();
    memory
        .store("s", 3, json!({"role": "user", "content": "something else"}))
        .await
        .unwrap();
    memory.store("other", 1, json!("ship it")).await.unwrap();
    memory.wait_indexed().await;
    assert_eq!(
        count(&path, "SELECT count(*) FROM chunks WHERE session_id = 's'").await,
        2
    );
    let hits = memory.hybrid_query("s", "ship it", 5).await.unwrap();
    assert_eq!(hits[0].text, "ship it");
    assert_eq!((hits[0].sequence_start, hits[0].sequence_end), (1, 2));
    let outcome = memory
        .upsert_chunks(
            "s",
            vec![
                ChunkInput {
                    text: "ship it".into(),
                    source_uri: None,
                    sequence_start: 9,
                    sequence_end: 9,
                    metadata: serde_json::Value::Null,
                },
                ChunkInput {
                    text: "brand new".into(),
                    source_uri: None,
                    sequence_start: 9,
                    sequence_end: 9,
                    metadata: serde_json::Value::Null,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        types::UpsertOutcome {
            inserted: 1,
            deduplicated: 1
        }
    );
    let hits = memory.hybrid_query("s", "ship it", 1).await.unwrap();
    assert_eq!((hits[0].sequence_start, hits[0].sequence_end), (1, 9));
    // Each session keeps its own copy; vectors exist once per chunk.
    assert_eq!(count(&path, "SELECT count(*) FROM chunks").await, 4);
    assert_eq!(count(&path, "SELECT count(*) FROM chunks_vec").await, 4);
}

#[tokio::test]
async fn documents_are_indexed_with_a_file_record_and_replaced_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    let long_text = (0..200)
        .map(|i| format!("paragraph{i} of the onboarding handbook"))
        .collect::<Vec<_>>()
        .join(" ");
    let doc = |text: &str| ChunkInput {
        text: text.into(),
        source_uri: Some("file:///shared/handbook.md".into()),
        sequence_start: 0,
        sequence_end: 0,
        metadata: json!({"kind": "handbook"}),
    };
    let first = memory
        .upsert_chunks("s", vec![doc(&long_text)])
        .await
        .unwrap();
    assert!(first.inserted > 5, "{first:?}");
    assert_eq!(first.deduplicated, 0);
    assert_eq!(count(&path, "SELECT count(*) FROM files").await, 1);
    let hits = memory
        .hybrid_query("s", "paragraph150 handbook", 1)
        .await
        .unwrap();
    assert!(hits[0].text.contains("paragraph150"));
    assert_eq!(
        hits[0].source_uri.as_deref(),
        Some("file:///shared/handbook.md")
    );
    // The same content again changes nothing.
    let again = memory
        .upsert_chunks("s", vec![doc(&long_text)])
        .await
        .unwrap();
    assert_eq!(again.inserted, 0);
    assert_eq!(again.deduplicated, first.inserted);
    // Changed content replaces the old chunks of that file.
    let changed = memory
        .upsert_chunks(
            "s",
            vec![doc("a completely rewritten handbook about sailing")],
        )
        .await
        .unwrap();
    assert_eq!(changed.inserted, 1);
    assert_eq!(count(&path, "SELECT count(*) FROM files").await, 1);
    assert_eq!(count(&path, "SELECT count(*) FROM chunks").await, 1);
    assert!(
        memory
            .hybrid_query("s", "paragraph150", 3)
            .await
            .unwrap()
            .iter()
            .all(|h| !h.text.contains("paragraph150"))
    );
    assert_eq!(
        memory.hybrid_query("s", "sailing", 1).await.unwrap().len(),
        1
    );
    assert!(memory.upsert_chunks("", vec![doc("x")]).await.is_err());
}

/// An embedder with another model name (the same features): its vectors
/// must never be compared with the lexical model's.
#[derive(Debug)]
struct RenamedLexical;

#[async_trait]
impl Embedder for RenamedLexical {
    fn model_name(&self) -> &str {
        "renamed-model"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        LexicalEmbedder::new().embed(texts).await
    }
}

#[tokio::test]
async fn a_new_embedding_model_reindexes_in_the_background_and_models_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let lexical = open(&path).await;
    lexical
        .store("s", 1, json!("orange submarine"))
        .await
        .unwrap();
    lexical.wait_indexed().await;
    drop(lexical);
    let vectors_of = |model: &'static str| {
        let path = path.clone();
        async move {
            count(
                &path,
                &format!("SELECT count(*) FROM chunks_vec WHERE embedding_model = '{model}'"),
            )
            .await
        }
    };
    assert_eq!(vectors_of("oxydra-lexical-v1").await, 1);
    let complete_for = |model: &'static str| {
        let path = path.clone();
        async move {
            count(
                &path,
                &format!(
                    "SELECT count(*) FROM memory_meta WHERE key = 'vectors_complete' AND value = '{model}'"
                ),
            )
            .await
        }
    };
    assert_eq!(complete_for("oxydra-lexical-v1").await, 1);

    let renamed = LibsqlMemory::open(MemoryOptions::local(&path), Arc::new(RenamedLexical))
        .await
        .unwrap();
    renamed.wait_indexed().await;
    // The old chunk has this model's vector now, and the other model's
    // vectors are gone: a query never compares across models.
    assert_eq!(vectors_of("renamed-model").await, 1);
    assert_eq!(count(&path, "SELECT count(*) FROM chunks_vec").await, 1);
    assert_eq!(complete_for("renamed-model").await, 1);
    let hits = renamed.hybrid_query("s", "submarines", 5).await.unwrap();
    assert!(hits[0].vector_score > 0.3, "{hits:#?}");
    // New text is embedded by the new model only.
    renamed
        .store("s", 2, json!("purple zeppelin"))
        .await
        .unwrap();
    renamed.wait_indexed().await;
    assert_eq!(vectors_of("renamed-model").await, 2);
    assert_eq!(count(&path, "SELECT count(*) FROM chunks_vec").await, 2);
}

#[tokio::test]
async fn scope_session_or_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    memory
        .store("a", 1, json!("the launch codes are in the blue folder"))
        .await
        .unwrap();
    memory
        .store("b", 1, json!("lunch is at noon"))
        .await
        .unwrap();
    memory.wait_indexed().await;
    assert!(
        memory
            .hybrid_query("b", "launch codes folder", 5)
            .await
            .unwrap()
            .iter()
            .all(|h| h.session_id == "b")
    );
    let mut options = MemoryOptions::local(&path);
    options.scope = RetrievalScope::User;
    let user = LibsqlMemory::open(options, Arc::new(LexicalEmbedder::new()))
        .await
        .unwrap();
    let hits = user
        .hybrid_query("b", "launch codes folder", 5)
        .await
        .unwrap();
    assert_eq!(hits[0].session_id, "a");
}

#[tokio::test]
async fn vector_search_is_exact_in_large_and_small_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    // A session larger than `LARGE_SESSION`, whose full-text half takes
    // the other plan.
    let inputs: Vec<ChunkInput> = (0..2100)
        .map(|i| ChunkInput {
            text: format!("record {i} mentions topic{} and item{}", i % 97, i * 7),
            source_uri: None,
            sequence_start: i,
            sequence_end: i,
            metadata: serde_json::Value::Null,
        })
        .collect();
    memory.upsert_chunks("big", inputs).await.unwrap();
    memory
        .store("small", 1, json!("a lonely note about item7"))
        .await
        .unwrap();
    memory.wait_indexed().await;
    let hits = memory
        .hybrid_query("big", "record 1234 topic70 item8638", 3)
        .await
        .unwrap();
    assert_eq!(
        hits[0].text, "record 1234 mentions topic70 and item8638",
        "{hits:#?}"
    );
    assert!(hits[0].vector_score > 0.99);
    // The small session is found even though the database is full of
    // another session's vectors.
    let hits = memory.hybrid_query("small", "item7", 3).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].session_id, "small");
}

#[tokio::test]
async fn a_large_session_finds_its_own_matches_when_another_session_has_better_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let memory = open(&path).await;
    // More chunks than the exact-scan limit, two of them about zebras.
    let mut inputs: Vec<ChunkInput> = (0..2100)
        .map(|i| ChunkInput {
            text: format!("ledger line {i} balanced against account {}", i % 89),
            source_uri: None,
            sequence_start: i,
            sequence_end: i,
            metadata: serde_json::Value::Null,
        })
        .collect();
    for (i, text) in [
        "a zebra was seen near the long river bank at dawn",
        "the zoo report mentions one zebra among many other animals",
    ]
    .into_iter()
    .enumerate()
    {
        inputs[i * 1000].text = text.to_owned();
    }
    memory.upsert_chunks("big", inputs).await.unwrap();
    // Another session whose matches all rank higher (short, repeated).
    let zebras: Vec<ChunkInput> = (0..120)
        .map(|i| ChunkInput {
            text: format!("zebra zebra {i}"),
            source_uri: None,
            sequence_start: i,
            sequence_end: i,
            metadata: serde_json::Value::Null,
        })
        .collect();
    memory.upsert_chunks("herd", zebras).await.unwrap();

    // The 80 best full-text matches of all sessions are the other
    // session's; this session's are found by the restricted search.
    let hits = memory.hybrid_query("big", "zebra", 5).await.unwrap();
    assert!(hits[0].text.contains("zebra"), "{hits:#?}");
    assert_eq!(hits[0].fts_score, 1.0, "{hits:#?}");
    assert_eq!(hits[0].vector_score, 1.0, "{hits:#?}");
    assert!(hits.iter().all(|h| h.session_id == "big"), "{hits:#?}");
    // The other session still finds its own.
    let hits = memory.hybrid_query("herd", "zebra", 5).await.unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.session_id == "herd"), "{hits:#?}");
}
