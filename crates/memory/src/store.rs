//! `LibsqlMemory`: opening, the storage pipeline (`Memory::store`), recall,
//! forget, session listing and restore.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Notify;
use types::config::{Durability, IndexingConfig, MemoryConfig, RetrievalConfig, RetrievalScope};
use types::{Memory, MemoryError, MemoryRecord, Message};

use crate::append::{Append, GroupCommit};
use crate::db::{Location, Pool, query_error};
use crate::embed::Embedder;
use crate::indexer::{Backlog, Indexer, IndexerTask};
use crate::migrations::{self, MIGRATIONS};
use crate::notes::{KNOWLEDGE_SESSION, NOTES_SESSION, is_reserved};
use crate::text::extract_text;

/// How a `LibsqlMemory` is opened and ranks results.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryOptions {
    pub location: Location,
    /// Weight of vector similarity in the merged score.
    pub vector_weight: f64,
    /// Weight of full-text relevance in the merged score.
    pub fts_weight: f64,
    pub scope: RetrievalScope,
    /// Stored on sessions this instance creates.
    pub agent_identity: Option<String>,
    /// The background indexer's backlog limit and batch size.
    pub indexing: IndexingConfig,
    /// What an acknowledged message survives (a local file only; a server
    /// decides for itself).
    pub durability: Durability,
}

impl MemoryOptions {
    /// A local file with the default retrieval settings.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        let retrieval = RetrievalConfig::default();
        Self {
            location: Location::Local(path.into()),
            vector_weight: retrieval.vector_weight,
            fts_weight: retrieval.fts_weight,
            scope: retrieval.scope,
            agent_identity: None,
            indexing: IndexingConfig::default(),
            durability: Durability::default(),
        }
    }

    /// From the validated configuration: the libSQL server when both
    /// `remote_url` and `auth_token` are set, else the local file.
    pub fn from_config(config: &MemoryConfig) -> Self {
        let location = match (&config.remote_url, &config.auth_token) {
            (Some(url), Some(token)) => Location::Remote {
                url: url.clone(),
                auth_token: token.clone(),
            },
            _ => Location::Local(config.db_path.clone()),
        };
        Self {
            location,
            vector_weight: config.retrieval.vector_weight,
            fts_weight: config.retrieval.fts_weight,
            scope: config.retrieval.scope,
            agent_identity: None,
            indexing: config.indexing.clone(),
            durability: config.durability,
        }
    }
}

/// A session as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: String,
    pub agent_identity: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub last_sequence: i64,
}

/// Memory in a libSQL database. Cheap to share (`Arc`), safe with
/// concurrent callers: writes of this instance are serialised on one
/// connection (concurrent appends share a transaction), writers in other
/// processes wait on the database lock. Stored events are indexed by a
/// background task, which stops when this is dropped.
#[derive(Debug)]
pub struct LibsqlMemory {
    pub(crate) pool: Arc<Pool>,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) options: MemoryOptions,
    appender: Arc<GroupCommit>,
    backlog: Arc<Backlog>,
    _indexer: IndexerTask,
}

impl LibsqlMemory {
    /// Opens (creating when missing) and migrates the database, and starts
    /// indexing whatever was stored but not yet indexed.
    pub async fn open(
        options: MemoryOptions,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Self, MemoryError> {
        let pool = Arc::new(Pool::open(options.location.clone(), options.durability).await?);
        let queued = {
            let conn = pool.reader().await?;
            migrations::apply(&conn, MIGRATIONS).await?;
            queued_events(&conn).await?
        };
        let wake = Arc::new(Notify::new());
        let backlog = Arc::new(Backlog::new(queued, options.indexing.max_backlog));
        let indexer = Arc::new(Indexer {
            pool: Arc::clone(&pool),
            embedder: Arc::clone(&embedder),
            backlog: Arc::clone(&backlog),
            wake: Arc::clone(&wake),
            batch_events: options.indexing.batch_events.max(1),
        })
        .spawn();
        let appender = Arc::new(GroupCommit::new(
            Arc::clone(&pool),
            options.agent_identity.clone(),
            Arc::clone(&backlog),
            wake,
        ));
        Ok(Self {
            pool,
            embedder,
            options,
            appender,
            backlog,
            _indexer: indexer,
        })
    }

    /// The embedder's stored model name.
    pub fn embedding_model(&self) -> &str {
        self.embedder.model_name()
    }

    /// Events stored and not yet indexed (by this process's count).
    pub fn index_backlog(&self) -> usize {
        self.backlog.pending()
    }

    /// Returns once every event stored so far is indexed — searchable by
    /// `hybrid_query` — and, after a change of embedder, every chunk has
    /// the new model's vector. Retrieval otherwise lags the newest events
    /// by at most `memory.indexing.max_backlog` of them.
    pub async fn wait_indexed(&self) {
        self.backlog.wait_idle().await;
    }

    /// Every session, most recently updated first.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, MemoryError> {
        self.query_sessions(
            "WHERE s.session_id NOT IN (?1, ?2) ORDER BY s.updated_at DESC, s.session_id",
            (NOTES_SESSION, KNOWLEDGE_SESSION),
        )
        .await
    }

    /// The most recently updated conversation, if any.
    pub async fn latest_session(&self) -> Result<Option<SessionInfo>, MemoryError> {
        let mut sessions = self
            .query_sessions(
                "WHERE s.session_id NOT IN (?1, ?2)
                 ORDER BY s.updated_at DESC, s.session_id LIMIT 1",
                (NOTES_SESSION, KNOWLEDGE_SESSION),
            )
            .await?;
        Ok(sessions.pop())
    }

    /// Sessions selected by `tail` (a `WHERE` and/or `ORDER BY` clause over
    /// `sessions s`).
    pub(crate) async fn query_sessions(
        &self,
        tail: &str,
        params: impl libsql::params::IntoParams,
    ) -> Result<Vec<SessionInfo>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("listing sessions");
        let sql = format!(
            "SELECT s.session_id, s.agent_identity, s.created_at, s.updated_at,
                    COALESCE(json_extract(st.state_json, '$.last_sequence'), 0)
             FROM sessions s LEFT JOIN session_state st ON st.session_id = s.session_id {tail}"
        );
        let mut rows = conn.query(&sql, params).await.map_err(&failed)?;
        let mut sessions = Vec::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            sessions.push(SessionInfo {
                session_id: row.get(0).map_err(&failed)?,
                agent_identity: row.get(1).map_err(&failed)?,
                created_at: row.get(2).map_err(&failed)?,
                updated_at: row.get(3).map_err(&failed)?,
                last_sequence: row.get(4).map_err(&failed)?,
            });
        }
        Ok(sessions)
    }

    /// A session's events as messages, in sequence order (the runtime
    /// applies its token budget afterwards). Unknown sessions are an error.
    pub async fn restore(&self, session_id: &str) -> Result<Vec<Message>, MemoryError> {
        if !self.session_exists(session_id).await? {
            return Err(MemoryError::SessionNotFound(session_id.to_owned()));
        }
        self.recall(session_id, None)
            .await?
            .into_iter()
            .map(|record| {
                serde_json::from_value(record.payload).map_err(|e| {
                    MemoryError::Serialization(format!(
                        "event {} of session '{session_id}' is not a message: {e}",
                        record.sequence
                    ))
                })
            })
            .collect()
    }

    async fn session_exists(&self, session_id: &str) -> Result<bool, MemoryError> {
        let conn = self.pool.reader().await?;
        let mut rows = conn
            .query("SELECT 1 FROM sessions WHERE session_id = ?1", [session_id])
            .await
            .map_err(query_error("looking up the session"))?;
        Ok(rows
            .next()
            .await
            .map_err(query_error("looking up the session"))?
            .is_some())
    }

    /// `PRAGMA integrity_check`: `"ok"` for a healthy database.
    pub async fn integrity_check(&self) -> Result<String, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("checking integrity");
        let mut rows = conn
            .query("PRAGMA integrity_check", ())
            .await
            .map_err(&failed)?;
        let mut lines = Vec::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            lines.push(row.get::<String>(0).map_err(&failed)?);
        }
        Ok(lines.join("\n"))
    }
}

/// Rows in the index queue.
async fn queued_events(conn: &libsql::Connection) -> Result<usize, MemoryError> {
    let failed = query_error("counting events waiting to be indexed");
    let mut rows = conn
        .query("SELECT COUNT(*) FROM index_queue", ())
        .await
        .map_err(&failed)?;
    let count: i64 = match rows.next().await.map_err(&failed)? {
        Some(row) => row.get(0).map_err(&failed)?,
        None => 0,
    };
    Ok(usize::try_from(count).unwrap_or(0))
}

pub(crate) fn check_session_id(session_id: &str) -> Result<(), MemoryError> {
    if session_id.trim().is_empty() {
        return Err(MemoryError::Query(
            "the session id is empty; every stored item belongs to a session".into(),
        ));
    }
    Ok(())
}

/// A conversation's id: not empty, and not one of memory's own sessions.
pub(crate) fn check_conversation_id(session_id: &str) -> Result<(), MemoryError> {
    check_session_id(session_id)?;
    if is_reserved(session_id) {
        return Err(MemoryError::Invalid(format!(
            "session id '{session_id}' is reserved for memory's notes and documents; a conversation cannot use it"
        )));
    }
    Ok(())
}

#[async_trait]
impl Memory for LibsqlMemory {
    /// Steps 1–4 of spec 05 and the event's place in the index queue, in
    /// one transaction shared with concurrent stores: returns once the
    /// event is durable. Indexing (steps 5–9) follows in the background;
    /// a store waits only while the indexer's backlog is full.
    async fn store(
        &self,
        session_id: &str,
        sequence: i64,
        payload: Value,
    ) -> Result<(), MemoryError> {
        check_conversation_id(session_id)?;
        let payload_json = serde_json::to_string(&payload)
            .map_err(|e| MemoryError::Serialization(format!("event payload: {e}")))?;
        // Whether a tool result answers a memory tool is the indexer's
        // question; here any text means the event is queued.
        let admission = match extract_text(&payload, |_| false).is_empty() {
            true => None,
            false => Some(self.backlog.admit().await),
        };
        self.appender
            .append(Append {
                session_id: session_id.to_owned(),
                sequence,
                payload_json,
                admission,
            })
            .await?;
        Ok(())
    }

    async fn recall(
        &self,
        session_id: &str,
        limit: Option<usize>,
    ) -> Result<Vec<MemoryRecord>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("reading events");
        let mut rows = match limit {
            None => conn
                .query(
                    "SELECT sequence, payload_json FROM conversation_events
                     WHERE session_id = ?1 ORDER BY sequence",
                    [session_id],
                )
                .await
                .map_err(&failed)?,
            Some(limit) => conn
                .query(
                    "SELECT sequence, payload_json FROM (
                         SELECT sequence, payload_json FROM conversation_events
                         WHERE session_id = ?1 ORDER BY sequence DESC LIMIT ?2
                     ) ORDER BY sequence",
                    (session_id, i64::try_from(limit).unwrap_or(i64::MAX)),
                )
                .await
                .map_err(&failed)?,
        };
        let mut records = Vec::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            let sequence: i64 = row.get(0).map_err(&failed)?;
            let json: String = row.get(1).map_err(&failed)?;
            let payload = serde_json::from_str(&json).map_err(|e| {
                MemoryError::Serialization(format!(
                    "event {sequence} of session '{session_id}' is not valid JSON: {e}"
                ))
            })?;
            records.push(MemoryRecord {
                session_id: session_id.to_owned(),
                sequence,
                payload,
            });
        }
        Ok(records)
    }

    /// Deletes the session; foreign keys cascade to its events, state,
    /// files, chunks, vectors and (through triggers) FTS rows. Forgetting
    /// an unknown session does nothing.
    async fn forget(&self, session_id: &str) -> Result<(), MemoryError> {
        let tx = self.pool.begin_write().await?;
        let result = tx
            .execute("DELETE FROM sessions WHERE session_id = ?1", [session_id])
            .await
            .map(|_| ())
            .map_err(query_error("deleting the session"));
        tx.finish(result).await
    }
}
