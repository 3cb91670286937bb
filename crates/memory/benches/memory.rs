//! Memory benchmarks (spec 09, B3 and B4): store throughput (events
//! acknowledged per second, `WRITERS` sessions storing at once, so
//! concurrent appends share commits), the background indexer's rate and
//! lag (how long the oldest acknowledged-but-unindexed event has waited,
//! sampled while the writers run), hybrid query latency at 1k / 10k /
//! 100k chunks (one session's, and user-wide as `memory_search` with
//! scope `user` searches), and the database size per 10k chunks — for the lexical
//! embedder and, when built
//! with `--features semantic` and `OXYDRA_TEST_EMBEDDING_MODEL_DIR` points
//! at a model, for the semantic model (1k and 10k: embedding 100k chunks
//! on a 2-core CPU takes too long for a routine run).
//!
//! `cargo bench -p memory --bench memory` runs it fully; under `cargo test`
//! it does a quick smoke pass (a few hundred chunks) and checks the results
//! are sane. Prints a table and one JSON line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use test_support::bench::{full_run, percentile};

use memory::{Embedder, LexicalEmbedder, LibsqlMemory, MemoryOptions};
use serde_json::json;
use types::{AgentMemory, Memory, MemoryRetrieval, SearchScope};

/// Queries timed at each size.
const QUERIES: usize = 200;
/// Sessions storing at once (as many clients' turns would).
const WRITERS: usize = 32;
/// How often the indexing lag is sampled.
const LAG_SAMPLE: Duration = Duration::from_millis(20);

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
    indexed_msgs_per_s: f64,
    index_lag_p50_ms: f64,
    index_lag_p99_ms: f64,
    query_p50_ms: f64,
    query_p99_ms: f64,
    /// `memory_search` with scope `user`: every session's chunks.
    user_query_p50_ms: f64,
    user_query_p99_ms: f64,
    queries: usize,
    db_mib_per_10k_chunks: f64,
}

/// Samples how long the oldest queued event has waited, until `done`.
async fn sample_lag(path: PathBuf, done: Arc<AtomicBool>) -> Vec<Duration> {
    let db = libsql::Builder::new_local(&path)
        .build()
        .await
        .expect("open for sampling");
    let conn = db.connect().expect("connect for sampling");
    conn.busy_timeout(memory::BUSY_TIMEOUT)
        .expect("busy timeout");
    let mut lags = Vec::new();
    while !done.load(Ordering::Relaxed) {
        // The statement ends (and its snapshot with it) before the sleep.
        let oldest: Option<i64> = conn
            .query("SELECT MIN(queued_at) FROM index_queue", ())
            .await
            .expect("sample the queue")
            .next()
            .await
            .expect("sample row")
            .and_then(|row| row.get(0).ok());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        lags.push(Duration::from_millis(
            oldest.map_or(0, |at| (now - at).max(0) as u64),
        ));
        tokio::time::sleep(LAG_SAMPLE).await;
    }
    lags
}

/// Stores events `from..to` (sequence numbers spread over `WRITERS`
/// sessions, each session's in order) with the writers running at once.
async fn fill(memory: &Arc<LibsqlMemory>, words: &Arc<Vec<String>>, from: usize, to: usize) {
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (memory, words) = (Arc::clone(memory), Arc::clone(words));
        writers.spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (writer as u64 + 1));
            for n in (from..to).filter(|n| n % WRITERS == writer) {
                let payload = json!({"role": "user", "content": sentence(&mut rng, &words)});
                memory
                    .store(
                        &format!("bench-{writer}"),
                        (n / WRITERS + 1) as i64,
                        payload,
                    )
                    .await
                    .expect("store");
            }
        });
    }
    writers.join_all().await;
}

async fn run(embedder: Arc<dyn Embedder>, sizes: &[usize], queries: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bench.db");
    let memory = Arc::new(
        LibsqlMemory::open(MemoryOptions::local(&path), embedder.clone())
            .await
            .expect("open the database"),
    );
    let words = Arc::new(vocabulary());
    let mut rng = Rng(0x51_7cc1_b727_220a);
    let mut stored = 0_usize;
    let mut rows = Vec::new();
    for &size in sizes {
        let done = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample_lag(path.clone(), Arc::clone(&done)));
        let started = Instant::now();
        fill(&memory, &words, stored, size).await;
        let stored_in = started.elapsed();
        memory.wait_indexed().await;
        let indexed_in = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let mut lags = sampler.await.expect("lag sampler");
        lags.sort();
        let added = (size - stored) as f64;
        stored = size;
        let mut latencies = Vec::with_capacity(queries);
        let mut user_latencies = Vec::with_capacity(queries);
        for _ in 0..queries {
            let query = (0..4)
                .map(|_| words[rng.below(words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let started = Instant::now();
            let hits = memory
                .hybrid_query("bench-0", &query, 5)
                .await
                .expect("hybrid query");
            latencies.push(started.elapsed());
            assert!(hits.len() <= 5);
            let started = Instant::now();
            let hits = memory
                .search("bench-0", &query, SearchScope::User, 5)
                .await
                .expect("user-wide search");
            user_latencies.push(started.elapsed());
            assert!(hits.len() <= 5);
        }
        latencies.sort();
        user_latencies.sort();
        rows.push(Row {
            embedder: embedder.model_name().to_owned(),
            chunks: size,
            store_msgs_per_s: added / stored_in.as_secs_f64(),
            indexed_msgs_per_s: added / indexed_in.as_secs_f64(),
            index_lag_p50_ms: percentile(&lags, 0.50).as_secs_f64() * 1000.0,
            index_lag_p99_ms: percentile(&lags, 0.99).as_secs_f64() * 1000.0,
            query_p50_ms: percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
            query_p99_ms: percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
            user_query_p50_ms: percentile(&user_latencies, 0.50).as_secs_f64() * 1000.0,
            user_query_p99_ms: percentile(&user_latencies, 0.99).as_secs_f64() * 1000.0,
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
    // The smoke pass checks the harness; the semantic model, in a debug
    // build, would take minutes over it (its own tests cover it).
    if let Some(embedder) = semantic().filter(|_| full) {
        rows.extend(runtime.block_on(run(embedder, semantic_sizes, queries)));
    }
    println!(
        "{:<28} {:>8} {:>12} {:>12} {:>14} {:>10} {:>10} {:>15} {:>8} {:>12}",
        "embedder",
        "chunks",
        "store msg/s",
        "index msg/s",
        "lag p50/p99",
        "p50 ms",
        "p99 ms",
        "user p50/p99",
        "queries",
        "MiB/10k"
    );
    for row in &rows {
        println!(
            "{:<28} {:>8} {:>12.0} {:>12.0} {:>14} {:>10.2} {:>10.2} {:>15} {:>8} {:>12.2}",
            row.embedder,
            row.chunks,
            row.store_msgs_per_s,
            row.indexed_msgs_per_s,
            format!("{:.0}/{:.0} ms", row.index_lag_p50_ms, row.index_lag_p99_ms),
            row.query_p50_ms,
            row.query_p99_ms,
            format!(
                "{:.1}/{:.1} ms",
                row.user_query_p50_ms, row.user_query_p99_ms
            ),
            row.queries,
            row.db_mib_per_10k_chunks
        );
        assert!(row.store_msgs_per_s > 0.0 && row.query_p50_ms <= row.query_p99_ms);
    }
    println!("{}", json!({"bench": "memory", "full": full, "rows": rows}));
}
