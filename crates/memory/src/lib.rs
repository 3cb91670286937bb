//! Oxydra's memory: durable conversation storage, hybrid retrieval
//! (vector similarity + full-text search) and rolling-summary state, in a
//! libSQL database — an embedded file by default, a libSQL server (sqld /
//! Turso) when configured. [`LibsqlMemory`] implements the `Memory` and
//! `MemoryRetrieval` traits of `types`; the runtime knows only those.
//!
//! This crate owns the schema (numbered SQL migrations), the storage
//! pipeline (event, then text extraction, chunking, embedding, dedupe and
//! indexing, all in one transaction) and the embedders. It must never know
//! about providers, tools, sessions' transport or how the runtime builds a
//! prompt; libSQL and candle stay inside it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), types::MemoryError> {
//! use std::sync::Arc;
//! use memory::{LexicalEmbedder, LibsqlMemory, MemoryOptions};
//! use types::{Memory, MemoryRetrieval};
//!
//! let memory = LibsqlMemory::open(
//!     MemoryOptions::local("oxydra_memory.db"),
//!     Arc::new(LexicalEmbedder::new()),
//! )
//! .await?;
//! memory
//!     .store("s1", 1, serde_json::json!({"role": "user", "content": "deploy on friday"}))
//!     .await?;
//! let hits = memory.hybrid_query("s1", "when do we deploy?", 3).await?;
//! # Ok(()) }
//! ```

mod append;
mod audit;
mod db;
pub mod embed;
mod fts;
mod indexer;
pub mod migrations;
mod notes;
mod retrieval;
mod sessions;
mod state;
mod store;
pub mod text;

pub use db::{BUSY_TIMEOUT, Location};
#[cfg(feature = "semantic")]
pub use embed::SemanticEmbedder;
pub use embed::{
    DIMENSIONS, Embedder, EndpointAccess, LexicalEmbedder, OpenAiEmbedder, build_embedder,
};
pub use fts::match_expression;
pub use notes::{KNOWLEDGE_SESSION, MAX_NOTE_CHARS, NOTE_ID_PREFIX, NOTES_SESSION, is_reserved};
pub use store::{LibsqlMemory, MemoryOptions, SessionInfo};
