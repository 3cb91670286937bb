//! Memory benchmarks (spec 09, B3 and B4): message store throughput with
//! full indexing, hybrid query latency at 1k / 10k / 100k chunks, and the
//! database size per 10k chunks — for the lexical embedder and, when built
//! with `--features semantic` and `OXYDRA_TEST_EMBEDDING_MODEL_DIR` points
//! at a model, for the semantic model (1k and 10k: embedding 100k chunks
//! on a 2-core CPU takes too long for a routine run).
//!
//! `cargo bench -p memory --bench memory` runs it fully; under `cargo test`
//! it does a quick smoke pass (a few hundred chunks) and checks the results
//! are sane. Prints a table and one JSON line.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use test_support::bench::{full_run, percentile};

use memory::{Embedder, LexicalEmbedder, LibsqlMemory, MemoryOptions};
use serde_json::json;
use types::{Memory, MemoryRetrieval};

/// Queries timed at each size.
const QUERIES: usize = 200;

/// A small deterministic generator (xorshift64*), so every run indexes the
/// same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const COMMON: [&str; 24] = [
    "the", "a", "to", "of", "and", "in", "is", "for", "on", "with", "we", "it", "that", "this",
    "deploy", "meeting", "budget", "server", "invoice", "review", "customer", "release", "bug",
    "plan",
];

/// A vocabulary of common words and many rarer synthetic ones.
fn vocabulary() -> Vec<String> {
    let syllables = [
        "ka", "lo", "mi", "ner", "sta", "vo", "qui", "ran", "tel", "bo", "zu", "fen", "gar", "pli",
        "dor", "xe",
    ];
    let mut words: Vec<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
    for a in syllables {
        for b in syllables {
            for c in ["", "s", "t", "ner"] {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

/// A message of 20–40 words, Zipf-like: common words are frequent.
fn sentence(rng: &mut Rng, words: &[String]) -> String {
    let len = 20 + rng.below(21);
    (0..len)
        .map(|_| {
            let pick = if rng.below(3) == 0 {
                rng.below(COMMON.len())
            } else {
                rng.below(words.len())
            };
            words[pick].as_str()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn db_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            std::fs::metadata(format!("{}{suffix}", path.display()))
                .ok()
                .map(|m| m.len())
        })
        .sum()
}

#[derive(Debug, serde::Serialize)]
struct Row {
    embedder: String,
    chunks: usize,
    store_msgs_per_s: f64,
    query_p50_ms: f64,
    query_p99_ms: f64,
    queries: usize,
    db_mib_per_10k_chunks: f64,
}

async fn run(embedder: Arc<dyn Embedder>, sizes: &[usize], queries: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bench.db");
    let memory = LibsqlMemory::open(MemoryOptions::local(&path), embedder.clone())
        .await
        .expect("open the database");
    let words = vocabulary();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut stored = 0_usize;
    let mut rows = Vec::new();
    for &size in sizes {
        let started = Instant::now();
        let added = size - stored;
        while stored < size {
            stored += 1;
            let payload = json!({"role": "user", "content": sentence(&mut rng, &words)});
            memory
                .store("bench", stored as i64, payload)
                .await
                .expect("store");
        }
        let store_rate = added as f64 / started.elapsed().as_secs_f64();
        let mut latencies = Vec::with_capacity(queries);
        for _ in 0..queries {
            let query = (0..4)
                .map(|_| words[rng.below(words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let started = Instant::now();
            let hits = memory
                .hybrid_query("bench", &query, 5)
                .await
                .expect("hybrid query");
            latencies.push(started.elapsed());
            assert!(hits.len() <= 5);
        }
        latencies.sort();
        rows.push(Row {
            embedder: embedder.model_name().to_owned(),
            chunks: size,
            store_msgs_per_s: store_rate,
            query_p50_ms: percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
            query_p99_ms: percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
            queries,
            db_mib_per_10k_chunks: db_bytes(&path) as f64 / (1024.0 * 1024.0) * 10_000.0
                / size as f64,
        });
        eprintln!("measured: {:?}", rows.last());
    }
    rows
}

#[cfg(feature = "semantic")]
fn semantic() -> Option<Arc<dyn Embedder>> {
    let dir = std::env::var_os("OXYDRA_TEST_EMBEDDING_MODEL_DIR")?;
    match memory::SemanticEmbedder::new(Path::new(&dir), Some("all-MiniLM-L6-v2")) {
        Ok(embedder) => Some(Arc::new(embedder)),
        Err(error) => {
            println!("semantic model skipped: {error}");
            None
        }
    }
}

#[cfg(not(feature = "semantic"))]
fn semantic() -> Option<Arc<dyn Embedder>> {
    None
}

fn main() {
    let full = full_run();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (lexical_sizes, semantic_sizes, queries): (&[usize], &[usize], usize) = if full {
        (&[1_000, 10_000, 100_000], &[1_000, 10_000], QUERIES)
    } else {
        (&[300], &[50], 20)
    };
    let mut rows = runtime.block_on(run(
        Arc::new(LexicalEmbedder::new()),
        lexical_sizes,
        queries,
    ));
    if let Some(embedder) = semantic() {
        rows.extend(runtime.block_on(run(embedder, semantic_sizes, queries)));
    }
    println!(
        "{:<28} {:>8} {:>12} {:>10} {:>10} {:>8} {:>12}",
        "embedder", "chunks", "store msg/s", "p50 ms", "p99 ms", "queries", "MiB/10k"
    );
    for row in &rows {
        println!(
            "{:<28} {:>8} {:>12.0} {:>10.2} {:>10.2} {:>8} {:>12.2}",
            row.embedder,
            row.chunks,
            row.store_msgs_per_s,
            row.query_p50_ms,
            row.query_p99_ms,
            row.queries,
            row.db_mib_per_10k_chunks
        );
        assert!(row.store_msgs_per_s > 0.0 && row.query_p50_ms <= row.query_p99_ms);
    }
    println!("{}", json!({"bench": "memory", "full": full, "rows": rows}));
}
