//! `RecordingMemory`: an in-memory `Memory` + `MemoryRetrieval` (and
//! `AuditLog`) for tests.
//! It keeps the contract of the real store (strictly increasing sequences,
//! compare-and-swap summaries) and records every operation so tests can
//! assert what was stored, in which order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::Value;
use types::{
    AuditLog, AuditRecord, ChunkInput, Memory, MemoryError, MemoryRecord, MemoryRetrieval,
    MemorySummaryState, Message, RetrievalResult, SummaryWriteOutcome, UpsertOutcome,
};

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub enum MemoryOp {
    Store {
        session_id: String,
        sequence: i64,
    },
    Recall {
        session_id: String,
    },
    Forget {
        session_id: String,
    },
    Query {
        session_id: String,
        query: String,
    },
    Upsert {
        session_id: String,
        chunks: usize,
    },
    ReadSummary {
        session_id: String,
    },
    WriteSummary {
        session_id: String,
        expected_epoch: u64,
        applied: bool,
    },
}

#[derive(Debug, Default)]
struct Inner {
    events: BTreeMap<String, BTreeMap<i64, Value>>,
    chunks: Vec<(String, ChunkInput)>,
    summaries: HashMap<String, MemorySummaryState>,
    /// Summaries another writer stores just before the next write.
    interlopers: HashMap<String, MemorySummaryState>,
    audit: Vec<AuditRecord>,
    ops: Vec<MemoryOp>,
}

/// In-memory storage that records what it was asked to do.
#[derive(Debug, Default)]
pub struct RecordingMemory {
    inner: Mutex<Inner>,
}

impl RecordingMemory {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every operation so far, in order.
    pub fn operations(&self) -> Vec<MemoryOp> {
        self.lock().ops.clone()
    }

    /// A session's stored events: (sequence, payload), in order.
    pub fn events(&self, session_id: &str) -> Vec<(i64, Value)> {
        self.lock()
            .events
            .get(session_id)
            .map(|events| events.iter().map(|(s, v)| (*s, v.clone())).collect())
            .unwrap_or_default()
    }

    /// A session's stored events as messages (payloads that are not
    /// messages are skipped).
    pub fn messages(&self, session_id: &str) -> Vec<Message> {
        self.events(session_id)
            .into_iter()
            .filter_map(|(_, payload)| serde_json::from_value(payload).ok())
            .collect()
    }

    /// The stored summary of a session.
    pub fn summary(&self, session_id: &str) -> Option<MemorySummaryState> {
        self.lock().summaries.get(session_id).cloned()
    }

    /// The audit records appended so far, in order.
    pub fn audit_records(&self) -> Vec<AuditRecord> {
        self.lock().audit.clone()
    }

    /// Makes "another writer" store `state` right before the next summary
    /// write of `session_id`, so that write loses the compare-and-swap.
    pub fn race_next_summary_write(&self, session_id: &str, state: MemorySummaryState) {
        self.lock().interlopers.insert(session_id.to_owned(), state);
    }
}

#[async_trait]
impl AuditLog for RecordingMemory {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), MemoryError> {
        self.lock().audit.push(record.clone());
        Ok(())
    }
}

#[async_trait]
impl Memory for RecordingMemory {
    async fn store(
        &self,
        session_id: &str,
        sequence: i64,
        payload: Value,
    ) -> Result<(), MemoryError> {
        let mut inner = self.lock();
        inner.ops.push(MemoryOp::Store {
            session_id: session_id.to_owned(),
            sequence,
        });
        let events = inner.events.entry(session_id.to_owned()).or_default();
        let last_sequence = events.keys().next_back().copied().unwrap_or(0);
        if sequence <= last_sequence {
            return Err(MemoryError::NonMonotonicSequence {
                session_id: session_id.to_owned(),
                sequence,
                last_sequence,
            });
        }
        events.insert(sequence, payload);
        Ok(())
    }

    async fn recall(
        &self,
        session_id: &str,
        limit: Option<usize>,
    ) -> Result<Vec<MemoryRecord>, MemoryError> {
        let mut inner = self.lock();
        inner.ops.push(MemoryOp::Recall {
            session_id: session_id.to_owned(),
        });
        let records: Vec<MemoryRecord> = inner
            .events
            .get(session_id)
            .map(|events| {
                events
                    .iter()
                    .map(|(sequence, payload)| MemoryRecord {
                        session_id: session_id.to_owned(),
                        sequence: *sequence,
                        payload: payload.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let skip = limit.map_or(0, |limit| records.len().saturating_sub(limit));
        Ok(records.into_iter().skip(skip).collect())
    }

    async fn forget(&self, session_id: &str) -> Result<(), MemoryError> {
        let mut inner = self.lock();
        inner.ops.push(MemoryOp::Forget {
            session_id: session_id.to_owned(),
        });
        inner.events.remove(session_id);
        inner.summaries.remove(session_id);
        inner.chunks.retain(|(session, _)| session != session_id);
        Ok(())
    }
}

#[async_trait]
impl MemoryRetrieval for RecordingMemory {
    /// Ranks stored chunks by the share of query words they contain (a
    /// stand-in for the real hybrid ranking, good enough to test injection).
    async fn hybrid_query(
        &self,
        session_id: &str,
        query: &str,
        max_results: usize,
    ) -> Result<Vec<RetrievalResult>, MemoryError> {
        let mut inner = self.lock();
        inner.ops.push(MemoryOp::Query {
            session_id: session_id.to_owned(),
            query: query.to_owned(),
        });
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 2)
            .map(str::to_lowercase)
            .collect();
        let mut results: Vec<RetrievalResult> = inner
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, (session, _))| session == session_id)
            .filter_map(|(i, (session, chunk))| {
                let text = chunk.text.to_lowercase();
                let hits = words.iter().filter(|w| text.contains(w.as_str())).count();
                (hits > 0).then(|| {
                    let score = hits as f64 / words.len().max(1) as f64;
                    RetrievalResult {
                        chunk_id: format!("chunk-{i}"),
                        session_id: session.clone(),
                        text: chunk.text.clone(),
                        score,
                        vector_score: score,
                        fts_score: score,
                        sequence_start: chunk.sequence_start,
                        sequence_end: chunk.sequence_end,
                        source_uri: chunk.source_uri.clone(),
                        indexed_at: 0,
                    }
                })
            })
            .collect();
        results.sort_by(|a, b| b.score.total_cmp(&a.score));
        results.truncate(max_results);
        Ok(results)
    }

    async fn upsert_chunks(
        &self,
        session_id: &str,
        chunks: Vec<ChunkInput>,
    ) -> Result<UpsertOutcome, MemoryError> {
        let mut inner = self.lock();
        inner.ops.push(MemoryOp::Upsert {
            session_id: session_id.to_owned(),
            chunks: chunks.len(),
        });
        let mut outcome = UpsertOutcome::default();
        for chunk in chunks {
            if inner
                .chunks
                .iter()
                .any(|(s, c)| s == session_id && c.text == chunk.text)
            {
                outcome.deduplicated += 1;
            } else {
                inner.chunks.push((session_id.to_owned(), chunk));
                outcome.inserted += 1;
            }
        }
        Ok(outcome)
    }

    async fn read_summary_state(
        &self,
        session_id: &str,
    ) -> Result<Option<MemorySummaryState>, MemoryError> {
        let mut inner = self.lock();
        inner.ops.push(MemoryOp::ReadSummary {
            session_id: session_id.to_owned(),
        });
        Ok(inner.summaries.get(session_id).cloned())
    }

    async fn write_summary_state(
        &self,
        session_id: &str,
        state: &MemorySummaryState,
        expected_epoch: u64,
    ) -> Result<SummaryWriteOutcome, MemoryError> {
        let mut inner = self.lock();
        if let Some(interloper) = inner.interlopers.remove(session_id) {
            inner.summaries.insert(session_id.to_owned(), interloper);
        }
        let current_epoch = inner.summaries.get(session_id).map_or(0, |s| s.epoch);
        let applied = current_epoch == expected_epoch;
        inner.ops.push(MemoryOp::WriteSummary {
            session_id: session_id.to_owned(),
            expected_epoch,
            applied,
        });
        if !applied {
            return Ok(SummaryWriteOutcome::Stale { current_epoch });
        }
        let new_epoch = expected_epoch + 1;
        inner.summaries.insert(
            session_id.to_owned(),
            MemorySummaryState {
                epoch: new_epoch,
                ..state.clone()
            },
        );
        Ok(SummaryWriteOutcome::Applied { new_epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sequences_must_increase_and_summaries_swap_by_epoch() {
        let memory = RecordingMemory::new();
        memory.store("s", 1, Value::from(1)).await.unwrap();
        let err = memory.store("s", 1, Value::from(2)).await.unwrap_err();
        assert!(matches!(
            err,
            MemoryError::NonMonotonicSequence {
                last_sequence: 1,
                ..
            }
        ));
        let state = MemorySummaryState {
            summary_text: "x".into(),
            upper_sequence: 1,
            epoch: 1,
        };
        assert_eq!(
            memory.write_summary_state("s", &state, 0).await.unwrap(),
            SummaryWriteOutcome::Applied { new_epoch: 1 }
        );
        assert_eq!(
            memory.write_summary_state("s", &state, 0).await.unwrap(),
            SummaryWriteOutcome::Stale { current_epoch: 1 }
        );
        assert_eq!(memory.recall("s", Some(5)).await.unwrap().len(), 1);
    }
}
