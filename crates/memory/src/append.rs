//! Durable appends, group-committed. Storing an event is steps 1–4 of
//! spec 05 (session, monotonic sequence, event, `last_sequence`) plus its
//! row in the index queue, in one short write transaction; indexing is the
//! background indexer's business (`indexer`).
//!
//! Appends of concurrent callers share a transaction: each caller queues
//! its event and waits; whoever finds no commit under way starts one task
//! that takes everything queued, writes it in one transaction (each event
//! in a savepoint of its own, so one refused event fails alone) and
//! answers every caller, then takes whatever queued meanwhile. One commit
//! (one fsync) then acknowledges many sessions' events. The task runs on
//! the blocking pool (libSQL's local calls block, and a commit syncs the
//! file), and a caller that gives up waiting does not abandon the
//! transaction of the others.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};
use types::MemoryError;

use crate::db::{Pool, WriteTx, now_ms, query_error};
use crate::indexer::{Admission, Backlog};
use crate::state::{read_state, touch_session, write_state};

/// The most events one transaction commits; more wait for the next one.
const MAX_GROUP: usize = 256;

/// One event to store.
#[derive(Debug)]
pub(crate) struct Append {
    pub session_id: String,
    pub sequence: i64,
    pub payload_json: String,
    /// For an event with text to index: its place in the indexer's
    /// backlog (the event is queued for the indexer).
    pub admission: Option<Admission>,
}

type Reply = oneshot::Sender<Result<(), MemoryError>>;

#[derive(Default)]
struct Queue {
    waiting: Vec<(Append, Reply)>,
    /// A commit task is running (it takes whatever is queued).
    committing: bool,
}

/// The appender of one `LibsqlMemory`.
pub(crate) struct GroupCommit {
    pool: Arc<Pool>,
    agent_identity: Option<String>,
    queue: Mutex<Queue>,
    backlog: Arc<Backlog>,
    /// Woken after a commit that queued events for indexing.
    indexer: Arc<Notify>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    pub(crate) fn new(
        pool: Arc<Pool>,
        agent_identity: Option<String>,
        backlog: Arc<Backlog>,
        indexer: Arc<Notify>,
    ) -> Self {
        Self {
            pool,
            agent_identity,
            queue: Mutex::new(Queue::default()),
            backlog,
            indexer,
        }
    }

    /// Stores `append`; returns once it is committed (or refused).
    pub(crate) async fn append(self: &Arc<Self>, append: Append) -> Result<(), MemoryError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push((append, reply));
            !std::mem::replace(&mut queue.committing, true)
        };
        if start {
            let this = Arc::clone(self);
            let handle = tokio::runtime::Handle::current();
            // Not awaited: the task answers through the replies. Should it
            // never run (the runtime shutting down), the replies are
            // dropped and each caller reports it.
            drop(tokio::task::spawn_blocking(move || {
                handle.block_on(this.commit_until_empty());
            }));
        }
        answer.await.map_err(|_| {
            MemoryError::Query("storing the event: the commit task ended before answering".into())
        })?
    }

    async fn commit_until_empty(&self) {
        loop {
            let batch: Vec<(Append, Reply)> = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.committing = false;
                    return;
                }
                let take = queue.waiting.len().min(MAX_GROUP);
                queue.waiting.drain(..take).collect()
            };
            let (mut appends, replies): (Vec<Append>, Vec<Reply>) = batch.into_iter().unzip();
            match self.commit(&appends).await {
                Ok(results) => {
                    let queued: Vec<Admission> = appends
                        .iter_mut()
                        .zip(&results)
                        .filter(|(_, result)| result.is_ok())
                        .filter_map(|(append, _)| append.admission.take())
                        .collect();
                    if !queued.is_empty() {
                        self.backlog.committed(queued);
                        self.indexer.notify_one();
                    }
                    for (reply, result) in replies.into_iter().zip(results) {
                        // A caller that stopped waiting needs no answer.
                        let _ = reply.send(result);
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(MemoryError::Query(message.clone())));
                    }
                }
            }
        }
    }

    /// One transaction for `appends`; the outer result is the commit's,
    /// the inner ones each event's.
    async fn commit(
        &self,
        appends: &[Append],
    ) -> Result<Vec<Result<(), MemoryError>>, MemoryError> {
        let tx = self.pool.begin_write().await?;
        let result = async {
            let mut results = Vec::with_capacity(appends.len());
            for append in appends {
                results.push(self.append_in_savepoint(&tx, append).await?);
            }
            Ok(results)
        }
        .await;
        tx.finish(result).await
    }

    /// The outer error is one the transaction cannot survive; the inner
    /// one is this event's refusal, rolled back to its savepoint.
    async fn append_in_savepoint(
        &self,
        tx: &WriteTx<'_>,
        append: &Append,
    ) -> Result<Result<(), MemoryError>, MemoryError> {
        tx.execute("SAVEPOINT append", ())
            .await
            .map_err(query_error("starting an append"))?;
        let result = self.append_one(tx, append).await;
        if result.is_err() {
            tx.execute("ROLLBACK TO append", ())
                .await
                .map_err(query_error("undoing a refused append"))?;
        }
        tx.execute("RELEASE append", ())
            .await
            .map_err(query_error("finishing an append"))?;
        Ok(result)
    }

    async fn append_one(&self, tx: &WriteTx<'_>, append: &Append) -> Result<(), MemoryError> {
        let session_id = append.session_id.as_str();
        touch_session(tx, session_id, self.agent_identity.as_deref()).await?;
        let mut state = read_state(tx, session_id).await?;
        if append.sequence <= state.last_sequence {
            return Err(MemoryError::NonMonotonicSequence {
                session_id: session_id.to_owned(),
                sequence: append.sequence,
                last_sequence: state.last_sequence,
            });
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO conversation_events (session_id, sequence, payload_json, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            (
                session_id,
                append.sequence,
                append.payload_json.as_str(),
                now,
            ),
        )
        .await
        .map_err(query_error("inserting the event"))?;
        state.last_sequence = append.sequence;
        write_state(tx, session_id, &state).await?;
        if append.admission.is_some() {
            tx.execute(
                "INSERT INTO index_queue (session_id, sequence, queued_at) VALUES (?1, ?2, ?3)",
                (session_id, append.sequence, now),
            )
            .await
            .map_err(query_error("queueing the event for indexing"))?;
        }
        Ok(())
    }
}
