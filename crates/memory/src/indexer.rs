//! The background indexer: steps 5–9 of spec 05 (text extraction,
//! chunking, embedding, dedupe, chunks with their vectors and full-text
//! rows) for events the append path queued in `index_queue`, in batches,
//! off the turn path.
//!
//! - The queue is the persisted watermark: a batch's chunks are written in
//!   the transaction that deletes its queue rows, so an event is indexed
//!   exactly once, and a crash or restart indexes whatever was
//!   acknowledged but not yet indexed.
//! - `Backlog` bounds it: a store is admitted only while fewer than
//!   `max_backlog` events wait, so a burst of writes slows to the
//!   indexer's pace instead of growing a queue without limit.
//! - Chunks without a vector of the current embedder (stored while an
//!   embeddings endpoint was down, or under another model) get one in the
//!   background once per start, after which other models' vectors are
//!   dropped: vectors of different models never meet.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use types::MemoryError;

use crate::db::{Pool, off_runtime, query_error};
use crate::embed::Embedder;
use crate::retrieval::{PreparedChunk, insert_chunks, insert_vector, prepare};
use crate::text::{answered_call_id, call_ids, chunk, extract_text, memory_tool_call_ids};

/// With nothing queued, the queue is looked at again after this long
/// (another process sharing the database may have queued events).
const IDLE_POLL: Duration = Duration::from_secs(10);
/// The longest pause after failures in a row.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// How many earlier events are searched for the call a tool result
/// answers (one assistant message's calls are answered right after it).
const CALL_LOOKBACK: i64 = 64;
/// The `memory_meta` key naming the model every chunk has a vector of.
const VECTORS_COMPLETE: &str = "vectors_complete";
/// Old vectors deleted per transaction once a model change is complete.
const DROP_BATCH: i64 = 256;

/// Events waiting to be indexed, as this process knows them: admitted
/// appends not yet committed, and committed ones still in the queue; and
/// whether this start's pass over chunks lacking a current vector is done.
///
/// The queue's count is corrected whenever the indexer finds the queue
/// empty with no commit since it looked, so rows another instance on the
/// same database indexed (or queued) never leave it wrong for long.
#[derive(Debug)]
pub(crate) struct Backlog {
    state: watch::Sender<IndexState>,
    max: usize,
}

#[derive(Debug, Clone, Copy)]
struct IndexState {
    in_flight: usize,
    queued: usize,
    /// Bumped by every commit that queued events.
    commits: u64,
    vectors_done: bool,
}

impl IndexState {
    fn pending(&self) -> usize {
        self.in_flight + self.queued
    }
}

impl Backlog {
    pub(crate) fn new(queued: usize, max: usize) -> Self {
        Self {
            state: watch::Sender::new(IndexState {
                in_flight: 0,
                queued,
                commits: 0,
                vectors_done: false,
            }),
            max,
        }
    }

    /// Waits until the backlog has room, then counts one event in it.
    pub(crate) async fn admit(self: &Arc<Self>) -> Admission {
        let mut changes = self.state.subscribe();
        loop {
            let mut admitted = false;
            self.state.send_if_modified(|state| {
                admitted = state.pending() < self.max;
                if admitted {
                    state.in_flight += 1;
                }
                admitted
            });
            if admitted {
                return Admission {
                    backlog: Some(Arc::clone(self)),
                };
            }
            // Only the indexer lowers the count, and it never stops.
            let _ = changes.wait_for(|state| state.pending() < self.max).await;
        }
    }

    /// `admissions` were committed to the queue (before their rows can be
    /// indexed is counted, so the indexer never sees a row it cannot
    /// account for).
    pub(crate) fn committed(&self, admissions: Vec<Admission>) {
        let count = admissions.len();
        self.state.send_modify(|state| {
            state.in_flight = state.in_flight.saturating_sub(count);
            state.queued += count;
            state.commits += 1;
        });
        for mut admission in admissions {
            // Settled: its drop gives nothing back.
            admission.backlog.take();
        }
    }

    fn commits(&self) -> u64 {
        self.state.borrow().commits
    }

    /// The indexer took `rows` off the queue; when it found none, and
    /// nothing was committed since `commits_seen`, the queue is empty.
    fn indexed(&self, rows: usize, commits_seen: u64) {
        self.state.send_if_modified(|state| {
            let before = state.queued;
            state.queued = match rows {
                0 if state.commits == commits_seen => 0,
                _ => state.queued.saturating_sub(rows),
            };
            state.queued != before
        });
    }

    fn vectors_done(&self) {
        self.state.send_modify(|state| state.vectors_done = true);
    }

    pub(crate) fn pending(&self) -> usize {
        self.state.borrow().pending()
    }

    /// Returns once nothing this process knows of waits to be indexed and
    /// every chunk has a vector of the current embedder (where it can).
    pub(crate) async fn wait_idle(&self) {
        let mut changes = self.state.subscribe();
        let _ = changes
            .wait_for(|state| state.pending() == 0 && state.vectors_done)
            .await;
    }
}

/// One event's place in the backlog, held by its append until committed;
/// given back when the append is refused or dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    backlog: Option<Arc<Backlog>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(backlog) = self.backlog.take() {
            backlog.state.send_modify(|state| {
                state.in_flight = state.in_flight.saturating_sub(1);
            });
        }
    }
}

/// One queued event with its payload (`None` when the event is gone).
struct Queued {
    id: i64,
    session_id: String,
    sequence: i64,
    payload_json: Option<String>,
}

/// What the indexer task works with.
#[derive(Debug)]
pub(crate) struct Indexer {
    pub(crate) pool: Arc<Pool>,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) batch_events: usize,
}

/// The running indexer task, stopped when dropped (what it had not
/// committed stays queued for the next start).
#[derive(Debug)]
pub(crate) struct IndexerTask(JoinHandle<()>);

impl Drop for IndexerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Indexer {
    pub(crate) fn spawn(self: Arc<Self>) -> IndexerTask {
        IndexerTask(tokio::spawn(self.run()))
    }

    async fn run(self: Arc<Self>) {
        let mut failures = 0_u32;
        let mut vectors_complete = false;
        loop {
            let this = Arc::clone(&self);
            let step = off_runtime(async move {
                let indexed = this.index_batch().await?;
                if indexed > 0 || vectors_complete {
                    return Ok((indexed, vectors_complete));
                }
                this.complete_vectors().await?;
                this.backlog.vectors_done();
                Ok::<_, MemoryError>((0, true))
            })
            .await
            .and_then(|step| step);
            match step {
                Ok((indexed, complete)) => {
                    failures = 0;
                    vectors_complete = complete;
                    if indexed == 0 {
                        tokio::select! {
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep(IDLE_POLL) => {}
                        }
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = Duration::from_millis(100)
                        .saturating_mul(1 << failures.min(9))
                        .min(MAX_RETRY_DELAY);
                    tracing::warn!(%error, ?delay, "memory indexing failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Indexes the oldest queued events (up to `batch_events`); returns
    /// how many queue rows it took.
    async fn index_batch(&self) -> Result<usize, MemoryError> {
        let commits_seen = self.backlog.commits();
        let queued = self.read_queue().await?;
        let Some(last) = queued.last().map(|q| q.id) else {
            self.backlog.indexed(0, commits_seen);
            return Ok(0);
        };
        let payloads: Vec<Option<Value>> = queued
            .iter()
            .map(|q| {
                q.payload_json
                    .as_deref()
                    .and_then(|json| serde_json::from_str(json).ok())
            })
            .collect();
        let memory_calls = self.memory_tool_calls(&queued, &payloads).await?;
        let prepared: Vec<Vec<PreparedChunk>> = queued
            .iter()
            .zip(&payloads)
            .map(|(event, payload)| chunks_of(event.sequence, payload.as_ref(), &memory_calls))
            .collect();
        let all: Vec<PreparedChunk> = prepared.iter().flatten().cloned().collect();
        let vectors = embed_or_skip(self.embedder.as_ref(), &all).await;
        let model = self.embedder.model_name();
        let tx = self.pool.begin_write().await?;
        let result = async {
            // Another process sharing the database may have indexed some.
            let mut still_queued = HashSet::new();
            let failed = query_error("taking events off the index queue");
            let mut rows = tx
                .query(
                    "DELETE FROM index_queue WHERE id <= ?1 RETURNING id",
                    [last],
                )
                .await
                .map_err(&failed)?;
            while let Some(row) = rows.next().await.map_err(&failed)? {
                still_queued.insert(row.get::<i64>(0).map_err(&failed)?);
            }
            if vectors.is_none() {
                vectors_incomplete(&tx).await?;
            }
            let mut offset = 0;
            for (event, chunks) in queued.iter().zip(&prepared) {
                let slice = vectors
                    .as_deref()
                    .map(|v| &v[offset..offset + chunks.len()]);
                offset += chunks.len();
                if still_queued.contains(&event.id) {
                    insert_chunks(&tx, &event.session_id, None, chunks, slice, model).await?;
                }
            }
            Ok(())
        }
        .await;
        tx.finish(result).await?;
        self.backlog.indexed(queued.len(), commits_seen);
        self.pool.truncate_large_wal().await?;
        Ok(queued.len())
    }

    /// The ids of memory tools' calls that tool results in the batch
    /// answer. The calling message is usually in the batch; one that is
    /// not (it had no text of its own, so it was never queued) is looked
    /// for among the session's events just before the result.
    async fn memory_tool_calls(
        &self,
        queued: &[Queued],
        payloads: &[Option<Value>],
    ) -> Result<HashSet<String>, MemoryError> {
        let mut memory_calls: HashSet<String> = payloads
            .iter()
            .flatten()
            .flat_map(memory_tool_call_ids)
            .collect();
        let batch_calls: HashSet<String> = payloads.iter().flatten().flat_map(call_ids).collect();
        for (event, payload) in queued.iter().zip(payloads) {
            let Some(answered) = payload.as_ref().and_then(answered_call_id) else {
                continue;
            };
            if batch_calls.contains(&answered) {
                continue;
            }
            for earlier in self
                .events_before(&event.session_id, event.sequence)
                .await?
            {
                if call_ids(&earlier).contains(&answered) {
                    memory_calls.extend(memory_tool_call_ids(&earlier));
                    break;
                }
            }
        }
        Ok(memory_calls)
    }

    /// The session's events just before `sequence`, newest first (a tool
    /// result follows its call within the calls of one message).
    async fn events_before(
        &self,
        session_id: &str,
        sequence: i64,
    ) -> Result<Vec<Value>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("finding the call a tool result answers");
        let mut rows = conn
            .query(
                "SELECT payload_json FROM conversation_events
                 WHERE session_id = ?1 AND sequence < ?2
                 ORDER BY sequence DESC LIMIT ?3",
                (session_id, sequence, CALL_LOOKBACK),
            )
            .await
            .map_err(&failed)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            let json: String = row.get(0).map_err(&failed)?;
            if let Ok(payload) = serde_json::from_str(&json) {
                events.push(payload);
            }
        }
        Ok(events)
    }

    async fn read_queue(&self) -> Result<Vec<Queued>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("reading the index queue");
        let mut rows = conn
            .query(
                "SELECT q.id, q.session_id, q.sequence, e.payload_json
                 FROM index_queue q
                 LEFT JOIN conversation_events e
                   ON e.session_id = q.session_id AND e.sequence = q.sequence
                 ORDER BY q.id LIMIT ?1",
                [i64::try_from(self.batch_events).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(&failed)?;
        let mut queued = Vec::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            queued.push(Queued {
                id: row.get(0).map_err(&failed)?,
                session_id: row.get(1).map_err(&failed)?,
                sequence: row.get(2).map_err(&failed)?,
                payload_json: row.get(3).map_err(&failed)?,
            });
        }
        Ok(queued)
    }

    /// Gives every chunk a vector of the current embedder, in batches;
    /// once none lacks one, deletes other models' vectors. Chunks the
    /// embedder cannot place (a text without features, an endpoint that
    /// fails) are passed over, so this ends.
    async fn complete_vectors(&self) -> Result<(), MemoryError> {
        let model = self.embedder.model_name().to_owned();
        if self.vectors_complete_for().await?.as_deref() == Some(model.as_str()) {
            return Ok(());
        }
        let mut after = 0_i64;
        let mut complete = true;
        loop {
            let missing = self.chunks_without_vector(&model, after).await?;
            let Some(&(last, _, _)) = missing.last() else {
                break;
            };
            after = last;
            let chunks: Vec<PreparedChunk> = missing
                .iter()
                .map(|(_, _, text)| PreparedChunk::text_only(text.clone()))
                .collect();
            let Some(vectors) = embed_or_skip(self.embedder.as_ref(), &chunks).await else {
                complete = false;
                continue;
            };
            let tx = self.pool.begin_write().await?;
            let result = async {
                for ((_, chunk_id, _), vector) in missing.iter().zip(&vectors) {
                    insert_vector(&tx, chunk_id, &model, vector).await?;
                }
                Ok(())
            }
            .await;
            tx.finish(result).await?;
        }
        if complete {
            self.drop_other_models(&model).await?;
            let tx = self.pool.begin_write().await?;
            let result = tx
                .execute(
                    "INSERT INTO memory_meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (VECTORS_COMPLETE, model.as_str()),
                )
                .await
                .map_err(query_error("recording that every chunk has a vector"));
            tx.finish(result).await?;
        }
        Ok(())
    }

    /// The model every chunk has a vector of, as last recorded.
    async fn vectors_complete_for(&self) -> Result<Option<String>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("reading memory_meta");
        let mut rows = conn
            .query(
                "SELECT value FROM memory_meta WHERE key = ?1",
                [VECTORS_COMPLETE],
            )
            .await
            .map_err(&failed)?;
        match rows.next().await.map_err(&failed)? {
            Some(row) => Ok(Some(row.get(0).map_err(&failed)?)),
            None => Ok(None),
        }
    }

    /// Up to a batch of `(id, chunk_id, text)` of chunks after `after`
    /// without a vector of `model`.
    async fn chunks_without_vector(
        &self,
        model: &str,
        after: i64,
    ) -> Result<Vec<(i64, String, String)>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("finding chunks without a vector");
        let mut rows = conn
            .query(
                "SELECT c.id, c.chunk_id, c.chunk_text FROM chunks c
                 WHERE c.id > ?1 AND NOT EXISTS (
                     SELECT 1 FROM chunks_vec v
                     WHERE v.chunk_id = c.chunk_id AND v.embedding_model = ?2)
                 ORDER BY c.id LIMIT ?3",
                (
                    after,
                    model,
                    i64::try_from(self.batch_events).unwrap_or(i64::MAX),
                ),
            )
            .await
            .map_err(&failed)?;
        let mut missing = Vec::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            missing.push((
                row.get(0).map_err(&failed)?,
                row.get(1).map_err(&failed)?,
                row.get(2).map_err(&failed)?,
            ));
        }
        Ok(missing)
    }

    /// Deletes vectors of models other than `model`, a batch per
    /// transaction so appends are not held up.
    async fn drop_other_models(&self, model: &str) -> Result<(), MemoryError> {
        loop {
            let tx = self.pool.begin_write().await?;
            let result = tx
                .execute(
                    // Two ranges, so the model index answers.
                    "DELETE FROM chunks_vec WHERE id IN (
                         SELECT id FROM chunks_vec
                         WHERE embedding_model < ?1 OR embedding_model > ?1 LIMIT ?2)",
                    (model, DROP_BATCH),
                )
                .await
                .map_err(query_error("dropping another model's vectors"));
            let deleted = tx.finish(result).await?;
            if deleted < u64::try_from(DROP_BATCH).unwrap_or(u64::MAX) {
                return Ok(());
            }
        }
    }
}

/// Chunks are being stored without vectors (the embedder failed): the
/// next start looks for them again.
pub(crate) async fn vectors_incomplete(conn: &libsql::Connection) -> Result<(), MemoryError> {
    conn.execute("DELETE FROM memory_meta WHERE key = ?1", [VECTORS_COMPLETE])
        .await
        .map_err(query_error("noting chunks without vectors"))?;
    Ok(())
}

/// The chunks of one queued event (none for an event that is gone, has no
/// text, or answers a call in `memory_calls`).
fn chunks_of(
    sequence: i64,
    payload: Option<&Value>,
    memory_calls: &HashSet<String>,
) -> Vec<PreparedChunk> {
    let Some(payload) = payload else {
        return Vec::new();
    };
    let pieces: Vec<String> = extract_text(payload, |id| memory_calls.contains(id))
        .iter()
        .flat_map(|text| chunk(text))
        .collect();
    prepare(pieces, None, sequence, sequence, &Value::Null)
}

/// Embeds `chunks`; when the embedder fails the chunks are still indexed
/// for full-text search (and their events still stored), so an unreachable
/// embeddings endpoint never loses data.
pub(crate) async fn embed_or_skip(
    embedder: &dyn Embedder,
    chunks: &[PreparedChunk],
) -> Option<Vec<Vec<f32>>> {
    if chunks.is_empty() {
        return Some(Vec::new());
    }
    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    match embedder.embed(&texts).await {
        Ok(vectors) if vectors.len() == texts.len() => Some(vectors),
        Ok(vectors) => {
            tracing::warn!(
                expected = texts.len(),
                got = vectors.len(),
                "embedder returned the wrong number of vectors; indexing text only"
            );
            None
        }
        Err(error) => {
            tracing::warn!(%error, "embedding failed; indexing text only");
            None
        }
    }
}
