//! Indexing (`upsert_chunks`, and the chunks `store` writes) and the hybrid
//! query: vector nearest neighbours + FTS5 relevance, each min-max
//! normalised, merged with the configured weights, ties broken by recency.
//!
//! Vector search is exact: every vector of the model in the searched
//! scope is compared (a session's few thousand chunks take a millisecond
//! or two). The approximate DiskANN index it replaced cost ~2 ms of CPU
//! per indexed chunk, and its recall needed the full-text half to catch
//! what its graph walk passed by.

use std::collections::HashMap;

use async_trait::async_trait;
use libsql::Connection;
use serde_json::Value;
use types::config::RetrievalScope;
use types::memory::drop_sent;
use types::{
    ChunkInput, MemoryError, MemoryRetrieval, MemorySummaryState, RetrievalResult,
    SummaryWriteOutcome, UpsertOutcome,
};

use crate::db::{now_ms, off_runtime, query_error};
use crate::fts::{in_sessions, match_expression};
use crate::indexer::{embed_or_skip, vectors_incomplete};
use crate::notes::{NOTES_SESSION, automatic_within};
use crate::state::{StoredSummary, read_state, touch_session, write_state};
use crate::store::{LibsqlMemory, check_session_id};
use crate::text::{chunk, chunk_id, content_hash};

/// Sessions with more chunks than this are searched by full text across
/// all sessions first (see `fts_candidates`).
const LARGE_SESSION: i64 = 2000;
/// Candidates taken from each list before merging.
const MIN_CANDIDATES: usize = 20;
const MAX_CANDIDATES: usize = 200;
/// How many full-text matches of all sessions are ranked per wanted
/// candidate when a large session is searched.
const FTS_OVERSAMPLE: usize = 4;

/// One chunk ready to insert.
#[derive(Debug, Clone)]
pub(crate) struct PreparedChunk {
    pub text: String,
    pub hash: String,
    pub sequence_start: i64,
    pub sequence_end: i64,
    pub metadata_json: String,
}

impl PreparedChunk {
    /// A chunk known only by its text (its vector is all that is wanted).
    pub(crate) fn text_only(text: String) -> Self {
        Self {
            hash: content_hash(&text),
            text,
            sequence_start: 0,
            sequence_end: 0,
            metadata_json: "{}".to_owned(),
        }
    }
}

/// Hashes `pieces` (dropping repeats within the batch). A document's
/// chunks hash with their source, so the same paragraph in two documents
/// (or two notes) is two chunks, and removing one document never takes
/// text from the other.
pub(crate) fn prepare(
    pieces: Vec<String>,
    source: Option<&str>,
    sequence_start: i64,
    sequence_end: i64,
    metadata: &Value,
) -> Vec<PreparedChunk> {
    let metadata_json = match metadata {
        Value::Null => "{}".to_owned(),
        value => value.to_string(),
    };
    let mut seen = std::collections::HashSet::new();
    pieces
        .into_iter()
        .filter_map(|text| {
            let hash = match source {
                Some(source) => content_hash(&format!("{source}\n{text}")),
                None => content_hash(&text),
            };
            seen.insert(hash.clone()).then(|| PreparedChunk {
                text,
                hash,
                sequence_start,
                sequence_end,
                metadata_json: metadata_json.clone(),
            })
        })
        .collect()
}

/// The content hash of a document, over its chunks.
fn source_hash(chunks: &[PreparedChunk]) -> String {
    content_hash(
        &chunks
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The little-endian f32 bytes of a vector (libSQL's F32 blob layout).
fn vector_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Inserts `chunks` (deduplicating by content hash within the session:
/// an existing chunk only extends its `sequence_end`) and their vectors.
pub(crate) async fn insert_chunks(
    conn: &Connection,
    session_id: &str,
    file_id: Option<i64>,
    chunks: &[PreparedChunk],
    vectors: Option<&[Vec<f32>]>,
    model: &str,
) -> Result<UpsertOutcome, MemoryError> {
    let failed = query_error("indexing a chunk");
    let mut outcome = UpsertOutcome::default();
    for (i, piece) in chunks.iter().enumerate() {
        let id = chunk_id(session_id, &piece.hash);
        let updated = conn
            .execute(
                "UPDATE chunks SET sequence_end = MAX(sequence_end, ?3)
                 WHERE session_id = ?1 AND content_hash = ?2",
                (session_id, piece.hash.as_str(), piece.sequence_end),
            )
            .await
            .map_err(&failed)?;
        if updated > 0 {
            outcome.deduplicated += 1;
        } else {
            conn.execute(
                "INSERT INTO chunks (chunk_id, session_id, file_id, chunk_text, content_hash,
                                     sequence_start, sequence_end, metadata_json, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                (
                    id.as_str(),
                    session_id,
                    file_id,
                    piece.text.as_str(),
                    piece.hash.as_str(),
                    piece.sequence_start,
                    piece.sequence_end,
                    piece.metadata_json.as_str(),
                    now_ms(),
                ),
            )
            .await
            .map_err(&failed)?;
            outcome.inserted += 1;
        }
        if let Some(vector) = vectors.and_then(|v| v.get(i)) {
            insert_vector(conn, &id, model, vector).await?;
        }
    }
    Ok(outcome)
}

/// Stores a chunk's vector of `model` (kept when it already has one). A
/// zero vector (text without any feature) has no direction to compare;
/// it is left out of vector search.
pub(crate) async fn insert_vector(
    conn: &Connection,
    chunk_id: &str,
    model: &str,
    vector: &[f32],
) -> Result<(), MemoryError> {
    if vector.iter().all(|x| *x == 0.0) {
        return Ok(());
    }
    conn.execute(
        "INSERT OR IGNORE INTO chunks_vec (chunk_id, embedding_model, embedding)
         VALUES (?1, ?2, vector32(?3))",
        (chunk_id, model, vector_blob(vector)),
    )
    .await
    .map_err(query_error("storing a chunk vector"))?;
    Ok(())
}

/// One candidate from either list.
#[derive(Debug, Clone)]
struct Candidate {
    chunk_id: String,
    session_id: String,
    text: String,
    sequence_start: i64,
    sequence_end: i64,
    source_uri: Option<String>,
    indexed_at: i64,
    raw: f64,
}

const CANDIDATE_COLUMNS: &str = "c.chunk_id, c.session_id, c.chunk_text, c.sequence_start, \
     c.sequence_end, f.source_uri, c.created_at";

async fn read_candidates(
    mut rows: libsql::Rows,
    doing: &'static str,
) -> Result<Vec<Candidate>, MemoryError> {
    let failed = query_error(doing);
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(&failed)? {
        out.push(Candidate {
            chunk_id: row.get(0).map_err(&failed)?,
            session_id: row.get(1).map_err(&failed)?,
            text: row.get(2).map_err(&failed)?,
            sequence_start: row.get(3).map_err(&failed)?,
            sequence_end: row.get(4).map_err(&failed)?,
            source_uri: row.get(5).map_err(&failed)?,
            indexed_at: row.get(6).map_err(&failed)?,
            raw: row.get(7).map_err(&failed)?,
        });
    }
    Ok(out)
}

/// Maps raw scores to `[0, 1]` by min-max. When every score is the same
/// (one candidate, or a tie) there is no spread to normalise and `flat`
/// decides: vector lists keep the cosine similarity (so a lone weak
/// neighbour does not count as a perfect match), full-text lists give 1
/// (every full-text hit matched a query word; `-bm25` alone says little
/// when a term is in most rows).
fn min_max(candidates: &mut [Candidate], flat: fn(f64) -> f64) {
    let min = candidates
        .iter()
        .map(|c| c.raw)
        .fold(f64::INFINITY, f64::min);
    let max = candidates
        .iter()
        .map(|c| c.raw)
        .fold(f64::NEG_INFINITY, f64::max);
    for candidate in candidates.iter_mut() {
        candidate.raw = if max - min > f64::EPSILON {
            (candidate.raw - min) / (max - min)
        } else {
            flat(candidate.raw)
        };
    }
}

/// What one hybrid query searches, owned so that each half (vector and
/// full text) can run on a thread of its own.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub(crate) within: Within,
    pub(crate) model: String,
    /// Candidates taken from each list.
    pub(crate) wanted: usize,
}

/// The sessions a search covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Within {
    /// These sessions (one or two: a conversation with the saved notes, or
    /// the documents).
    Sessions(Vec<String>),
    /// Every session.
    All,
}

impl Within {
    /// The sessions as a JSON array (one SQL parameter, read with
    /// `json_each`); `[]` for every session.
    fn sessions_json(&self) -> String {
        debug_assert!(
            matches!(self, Self::All)
                || matches!(self, Self::Sessions(ids) if (1..=2).contains(&ids.len()))
        );
        match self {
            Self::Sessions(ids) => serde_json::Value::from(ids.clone()).to_string(),
            Self::All => "[]".to_owned(),
        }
    }

    fn contains(&self, session_id: &str) -> bool {
        match self {
            Self::Sessions(ids) => ids.iter().any(|id| id == session_id),
            Self::All => true,
        }
    }
}

/// How many chunks the searched sessions hold, counted up to
/// `LARGE_SESSION + 1` from the session index without touching the rows.
async fn sessions_size(conn: &Connection, sessions_json: &str) -> Result<i64, MemoryError> {
    let failed = query_error("sizing the search");
    let mut rows = conn
        .query(
            "SELECT count(*) FROM (SELECT 1 FROM chunks
             WHERE session_id IN (json_extract(?1, '$[0]'), json_extract(?1, '$[1]'))
             LIMIT ?2)",
            (sessions_json, LARGE_SESSION + 1),
        )
        .await
        .map_err(&failed)?;
    match rows.next().await.map_err(&failed)? {
        Some(row) => row.get(0).map_err(&failed),
        None => Ok(0),
    }
}

/// The `wanted` nearest chunks by cosine similarity (`1 - distance`),
/// exactly: every vector of the model in the scope is compared. The scan
/// reads only ids and vectors (the sessions' chunk ids from a covering
/// index, or the model's vectors for every session); the rows of the
/// winners are read afterwards. The ids are a list of two values, not a
/// `json_each` subquery: SQLite then looks each one up in the session
/// index (with the subquery it scanned every chunk).
async fn vector_candidates(
    conn: &Connection,
    search: &Search,
    query: &[f32],
) -> Result<Vec<Candidate>, MemoryError> {
    let nearest = match search.within {
        // `CROSS JOIN` keeps the session's chunk ids the outer loop; left
        // to itself SQLite walked every vector of the model and joined
        // chunks to each.
        Within::Sessions(_) => {
            "SELECT s.chunk_id AS chunk_id,
                    1.0 - vector_distance_cos(v.embedding, vector32(?1)) AS similarity
             FROM chunks s INDEXED BY chunks_session_ids
             CROSS JOIN chunks_vec v ON v.chunk_id = s.chunk_id AND v.embedding_model = ?2
             WHERE s.session_id IN (json_extract(?3, '$[0]'), json_extract(?3, '$[1]'))
             ORDER BY similarity DESC LIMIT ?4"
        }
        Within::All => {
            "SELECT v.chunk_id AS chunk_id,
                    1.0 - vector_distance_cos(v.embedding, vector32(?1)) AS similarity
             FROM chunks_vec v
             WHERE v.embedding_model = ?2 AND ?3 IS NOT NULL
             ORDER BY similarity DESC LIMIT ?4"
        }
    };
    let sql = format!(
        "SELECT {CANDIDATE_COLUMNS}, n.similarity
         FROM ({nearest}) AS n
         JOIN chunks c ON c.chunk_id = n.chunk_id
         LEFT JOIN files f ON f.file_id = c.file_id
         ORDER BY n.similarity DESC"
    );
    let rows = conn
        .query(
            &sql,
            (
                vector_blob(query),
                search.model.as_str(),
                search.within.sessions_json(),
                i64::try_from(search.wanted).unwrap_or(i64::MAX),
            ),
        )
        .await
        .map_err(query_error("scanning vectors"))?;
    read_candidates(rows, "scanning vectors").await
}

/// Full-text matches by `-bm25()` over the chunk text (higher is
/// better), ranked and cut by FTS5 before any chunk row is read.
///
/// In session scope a small session is searched with the session's key in
/// the `MATCH` (other sessions' matches are never ranked). For a large
/// session that restriction costs more than it saves (FTS5 steps through
/// the session's whole key list, ~4 ms at 100k chunks), and the session is
/// likely a large share of the database: the best matches of all sessions
/// are ranked first, and the restricted search runs only when too few of
/// them are this session's.
async fn fts_candidates(
    conn: &Connection,
    search: &Search,
    expression: &str,
) -> Result<Vec<Candidate>, MemoryError> {
    let Within::Sessions(sessions) = &search.within else {
        return ranked_fts(conn, expression, search.wanted).await;
    };
    if sessions_size(conn, &search.within.sessions_json()).await? > LARGE_SESSION {
        let limit = search.wanted * FTS_OVERSAMPLE;
        let mut found = ranked_fts(conn, expression, limit).await?;
        let complete = found.len() < limit;
        found.retain(|c| search.within.contains(&c.session_id));
        if complete || found.len() >= search.wanted {
            found.truncate(search.wanted);
            return Ok(found);
        }
    }
    // The key is the ids' exact (hex) encoding: every match is one of
    // these sessions'.
    ranked_fts(conn, &in_sessions(sessions, expression), search.wanted).await
}

/// The `limit` best chunks matching `expression`, best first.
async fn ranked_fts(
    conn: &Connection,
    expression: &str,
    limit: usize,
) -> Result<Vec<Candidate>, MemoryError> {
    let sql = format!(
        "SELECT {CANDIDATE_COLUMNS}, m.score
         FROM (SELECT rowid AS id, -bm25(chunks_fts, 1.0, 0.0) AS score
               FROM chunks_fts WHERE chunks_fts MATCH ?1
               ORDER BY score DESC LIMIT ?2) AS m
         JOIN chunks c ON c.id = m.id
         LEFT JOIN files f ON f.file_id = c.file_id
         ORDER BY m.score DESC"
    );
    let rows = conn
        .query(&sql, (expression, i64::try_from(limit).unwrap_or(i64::MAX)))
        .await
        .map_err(query_error("full-text search"))?;
    read_candidates(rows, "full-text search").await
}

impl LibsqlMemory {
    /// Whether the session has a chunk older than `sequence`, or there is
    /// a saved note (two index lookups).
    async fn anything_before(&self, session_id: &str, sequence: i64) -> Result<bool, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("looking for older memory");
        let mut rows = conn
            .query(
                "SELECT EXISTS (SELECT 1 FROM chunks WHERE session_id = ?1 AND sequence_end < ?2)
                     OR EXISTS (SELECT 1 FROM files WHERE session_id = ?3)",
                (session_id, sequence, NOTES_SESSION),
            )
            .await
            .map_err(&failed)?;
        match rows.next().await.map_err(&failed)? {
            Some(row) => Ok(row.get::<i64>(0).map_err(&failed)? != 0),
            None => Ok(false),
        }
    }

    /// The hybrid query over `within`: vector and full-text candidates,
    /// each min-max normalised, merged with the configured weights, ties
    /// broken by recency.
    pub(crate) async fn ranked(
        &self,
        within: Within,
        query: &str,
        max_results: usize,
    ) -> Result<Vec<RetrievalResult>, MemoryError> {
        if max_results == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let wanted = (max_results * 4).clamp(MIN_CANDIDATES, MAX_CANDIDATES);
        let query_vector = match self.embedder.embed(&[query.to_owned()]).await {
            Ok(mut vectors) => vectors.pop().filter(|v| v.iter().any(|x| *x != 0.0)),
            Err(error) => {
                tracing::warn!(%error, "embedding the query failed; full-text search only");
                None
            }
        };
        let search = Search {
            within,
            model: self.embedder.model_name().to_owned(),
            wanted,
        };
        // The two searches run at once, each on its own connection.
        let vector = async {
            match query_vector.clone() {
                Some(v) => {
                    self.search(search.clone(), move |conn, search| async move {
                        vector_candidates(&conn, &search, &v).await
                    })
                    .await
                }
                None => Ok(Vec::new()),
            }
        };
        let fts = async {
            match match_expression(query) {
                Some(expression) => {
                    self.search(search.clone(), move |conn, search| async move {
                        fts_candidates(&conn, &search, &expression).await
                    })
                    .await
                }
                None => Ok(Vec::new()),
            }
        };
        let (mut vector, mut fts) = tokio::try_join!(vector, fts)?;
        // A neighbour pointing away from the query (cosine <= 0) carries no
        // evidence of relevance.
        vector.retain(|c| c.raw > 0.0);
        min_max(&mut vector, |cosine| cosine.clamp(0.0, 1.0));
        min_max(&mut fts, |_| 1.0);
        let mut merged: HashMap<String, RetrievalResult> = HashMap::new();
        for (candidate, is_vector) in vector
            .into_iter()
            .map(|c| (c, true))
            .chain(fts.into_iter().map(|c| (c, false)))
        {
            let entry =
                merged
                    .entry(candidate.chunk_id.clone())
                    .or_insert_with(|| RetrievalResult {
                        chunk_id: candidate.chunk_id,
                        session_id: candidate.session_id,
                        text: candidate.text,
                        score: 0.0,
                        vector_score: 0.0,
                        fts_score: 0.0,
                        sequence_start: candidate.sequence_start,
                        sequence_end: candidate.sequence_end,
                        source_uri: candidate.source_uri,
                        indexed_at: candidate.indexed_at,
                    });
            if is_vector {
                entry.vector_score = candidate.raw;
            } else {
                entry.fts_score = candidate.raw;
            }
        }
        let mut results: Vec<RetrievalResult> = merged
            .into_values()
            .map(|mut r| {
                r.score = self.options.vector_weight * r.vector_score
                    + self.options.fts_weight * r.fts_score;
                r
            })
            // Every candidate matched (a query word, or a vector pointing
            // its way); min-max gives the weakest a score of 0, and it is
            // still a match.
            .collect();
        results.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.sequence_end.cmp(&a.sequence_end))
                .then(a.chunk_id.cmp(&b.chunk_id))
        });
        results.truncate(max_results);
        Ok(results)
    }

    /// Runs one half of a hybrid query on the blocking pool with a read
    /// connection of its own (see `off_runtime`).
    async fn search<F, Fut, T>(&self, search: Search, run: F) -> Result<T, MemoryError>
    where
        F: FnOnce(Connection, Search) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, MemoryError>> + Send + 'static,
        T: Send + 'static,
    {
        // The task owns the connection and its slot: a caller that gives
        // up does not free the slot while the search still runs.
        let (conn, slot) = self.pool.take_reader().await?;
        let (conn, slot, found) = off_runtime(async move {
            let found = run(conn.clone(), search).await;
            (conn, slot, found)
        })
        .await?;
        self.pool.release_reader(conn);
        drop(slot);
        found
    }

    async fn upsert_source(
        &self,
        conn: &Connection,
        session_id: &str,
        source_uri: &str,
        chunks: &[PreparedChunk],
    ) -> Result<i64, MemoryError> {
        let failed = query_error("recording the indexed file");
        let hash = source_hash(chunks);
        let mut rows = conn
            .query(
                "SELECT file_id, content_hash FROM files WHERE session_id = ?1 AND source_uri = ?2",
                (session_id, source_uri),
            )
            .await
            .map_err(&failed)?;
        let existing = match rows.next().await.map_err(&failed)? {
            Some(row) => Some((
                row.get::<i64>(0).map_err(&failed)?,
                row.get::<String>(1).map_err(&failed)?,
            )),
            None => None,
        };
        drop(rows);
        let metadata = serde_json::json!({ "chunks": chunks.len() }).to_string();
        match existing {
            Some((file_id, stored)) if stored == hash => Ok(file_id),
            Some((file_id, _)) => {
                // The document changed: its old chunks go, the new ones
                // are inserted by the caller.
                conn.execute("DELETE FROM chunks WHERE file_id = ?1", [file_id])
                    .await
                    .map_err(&failed)?;
                conn.execute(
                    "UPDATE files SET content_hash = ?2, metadata_json = ?3 WHERE file_id = ?1",
                    (file_id, hash, metadata),
                )
                .await
                .map_err(&failed)?;
                Ok(file_id)
            }
            None => {
                let mut rows = conn
                    .query(
                        "INSERT INTO files (session_id, source_uri, content_hash, metadata_json, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING file_id",
                        (session_id, source_uri, hash, metadata, now_ms()),
                    )
                    .await
                    .map_err(&failed)?;
                match rows.next().await.map_err(&failed)? {
                    Some(row) => row.get(0).map_err(&failed),
                    None => Err(MemoryError::Query(
                        "recording the indexed file: no file_id returned".into(),
                    )),
                }
            }
        }
    }
}

#[async_trait]
impl MemoryRetrieval for LibsqlMemory {
    /// The automatic retrieval before a turn: the configured scope (the
    /// conversation, or every session), with the saved notes.
    async fn hybrid_query(
        &self,
        session_id: &str,
        query: &str,
        max_results: usize,
    ) -> Result<Vec<RetrievalResult>, MemoryError> {
        self.ranked(
            automatic_within(self.options.scope, session_id),
            query,
            max_results,
        )
        .await
    }

    /// In session scope, a session with no chunk older than `sent_from`
    /// and no saved notes has nothing to add to the context: answered
    /// without embedding the query or searching.
    async fn hybrid_query_before(
        &self,
        session_id: &str,
        query: &str,
        max_results: usize,
        sent_from: i64,
    ) -> Result<Vec<RetrievalResult>, MemoryError> {
        if self.options.scope == RetrievalScope::Session
            && !self.anything_before(session_id, sent_from).await?
        {
            return Ok(Vec::new());
        }
        let mut results = self.hybrid_query(session_id, query, max_results).await?;
        drop_sent(&mut results, session_id, sent_from);
        Ok(results)
    }

    /// Indexes document or message text. Each input is normalised and cut
    /// like message text; inputs with a `source_uri` get one `files` row
    /// per source, and a source whose content changed has its previous
    /// chunks replaced.
    async fn upsert_chunks(
        &self,
        session_id: &str,
        chunks: Vec<ChunkInput>,
    ) -> Result<UpsertOutcome, MemoryError> {
        check_session_id(session_id)?;
        // Sources in first-seen order, each with its prepared chunks.
        let mut groups: Vec<(Option<String>, Vec<PreparedChunk>)> = Vec::new();
        for input in chunks {
            let prepared = prepare(
                chunk(&input.text),
                input.source_uri.as_deref(),
                input.sequence_start,
                input.sequence_end,
                &input.metadata,
            );
            match groups.iter_mut().find(|(uri, _)| *uri == input.source_uri) {
                Some((_, list)) => list.extend(prepared),
                None => groups.push((input.source_uri, prepared)),
            }
        }
        // A document indexed with this very content is left alone (not
        // even embedded again): re-indexing a directory costs only reads.
        let stored = self.source_hashes(session_id).await?;
        let mut unchanged = 0;
        groups.retain(|(source, prepared)| {
            let same = source
                .as_ref()
                .is_some_and(|uri| stored.get(uri) == Some(&source_hash(prepared)));
            if same {
                unchanged += prepared.len();
            }
            !same
        });
        let all: Vec<PreparedChunk> = groups.iter().flat_map(|(_, c)| c.clone()).collect();
        let vectors = embed_or_skip(self.embedder.as_ref(), &all).await;
        let tx = self.pool.begin_write().await?;
        let result = async {
            touch_session(&tx, session_id, self.options.agent_identity.as_deref()).await?;
            if vectors.is_none() {
                vectors_incomplete(&tx).await?;
            }
            let mut outcome = UpsertOutcome {
                inserted: 0,
                deduplicated: unchanged,
            };
            let mut offset = 0;
            for (source, prepared) in &groups {
                let file_id = match source {
                    Some(uri) => Some(self.upsert_source(&tx, session_id, uri, prepared).await?),
                    None => None,
                };
                let slice = vectors
                    .as_deref()
                    .map(|v| &v[offset..offset + prepared.len()]);
                offset += prepared.len();
                let step = insert_chunks(
                    &tx,
                    session_id,
                    file_id,
                    prepared,
                    slice,
                    self.embedder.model_name(),
                )
                .await?;
                outcome.inserted += step.inserted;
                outcome.deduplicated += step.deduplicated;
            }
            Ok(outcome)
        }
        .await;
        tx.finish(result).await
    }

    async fn read_summary_state(
        &self,
        session_id: &str,
    ) -> Result<Option<MemorySummaryState>, MemoryError> {
        let conn = self.pool.reader().await?;
        Ok(read_state(&conn, session_id)
            .await?
            .summary_state
            .map(MemorySummaryState::from))
    }

    /// Compare-and-swap in one write transaction: applied only when the
    /// stored epoch (0 when none) equals `expected_epoch`.
    async fn write_summary_state(
        &self,
        session_id: &str,
        state: &MemorySummaryState,
        expected_epoch: u64,
    ) -> Result<SummaryWriteOutcome, MemoryError> {
        check_session_id(session_id)?;
        let tx = self.pool.begin_write().await?;
        let result = async {
            let mut stored = read_state(&tx, session_id).await?;
            let current_epoch = stored.summary_state.as_ref().map_or(0, |s| s.epoch);
            if current_epoch != expected_epoch {
                return Ok(SummaryWriteOutcome::Stale { current_epoch });
            }
            let new_epoch = expected_epoch + 1;
            touch_session(&tx, session_id, self.options.agent_identity.as_deref()).await?;
            stored.summary_state = Some(StoredSummary {
                text: state.summary_text.clone(),
                epoch: new_epoch,
                upper_sequence: state.upper_sequence,
            });
            write_state(&tx, session_id, &stored).await?;
            Ok(SummaryWriteOutcome::Applied { new_epoch })
        }
        .await;
        tx.finish(result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(raw: f64) -> Candidate {
        Candidate {
            chunk_id: String::new(),
            session_id: String::new(),
            text: String::new(),
            sequence_start: 0,
            sequence_end: 0,
            source_uri: None,
            indexed_at: 0,
            raw,
        }
    }

    #[test]
    fn min_max_maps_to_the_unit_interval() {
        let mut list = vec![candidate(2.0), candidate(4.0), candidate(3.0)];
        min_max(&mut list, |_| 1.0);
        let scores: Vec<f64> = list.iter().map(|c| c.raw).collect();
        assert_eq!(scores, [0.0, 1.0, 0.5]);
        let mut single = vec![candidate(0.25)];
        min_max(&mut single, |raw| raw.clamp(0.0, 1.0));
        assert_eq!(single[0].raw, 0.25);
        let mut tie = vec![candidate(7.5), candidate(7.5)];
        min_max(&mut tie, |_| 1.0);
        assert_eq!((tie[0].raw, tie[1].raw), (1.0, 1.0));
        let mut empty: Vec<Candidate> = Vec::new();
        min_max(&mut empty, |_| 1.0);
    }

    #[test]
    fn vectors_are_little_endian_f32() {
        assert_eq!(vector_blob(&[1.0, -2.0]), [0, 0, 128, 63, 0, 0, 0, 192]);
    }
}
