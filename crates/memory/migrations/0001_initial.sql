-- Sessions, their events and state, indexed files and text chunks with
-- their vectors. Timestamps are milliseconds since the Unix epoch.

CREATE TABLE sessions (
    session_id     TEXT PRIMARY KEY NOT NULL,
    agent_identity TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
-- Session list, most recently updated first.
CREATE INDEX sessions_recency ON sessions (updated_at DESC);

CREATE TABLE conversation_events (
    session_id   TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    sequence     INTEGER NOT NULL,
    payload_json TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    -- The key is also the restore-order index.
    PRIMARY KEY (session_id, sequence)
);

-- `state_json` holds `last_sequence` and `summary_state`.
CREATE TABLE session_state (
    session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    state_json TEXT NOT NULL DEFAULT '{}',
    updated_at INTEGER NOT NULL
);

CREATE TABLE files (
    file_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id    TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    source_uri    TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL
);
-- File lookup by source.
CREATE UNIQUE INDEX files_source ON files (session_id, source_uri);

-- `id` is an explicit integer key so the FTS rowids stay stable across
-- VACUUM; `chunk_id` is the public identifier.
CREATE TABLE chunks (
    id             INTEGER PRIMARY KEY,
    chunk_id       TEXT NOT NULL UNIQUE,
    session_id     TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    file_id        INTEGER REFERENCES files (file_id) ON DELETE CASCADE,
    chunk_text     TEXT NOT NULL,
    content_hash   TEXT NOT NULL,
    sequence_start INTEGER NOT NULL,
    sequence_end   INTEGER NOT NULL,
    metadata_json  TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL
);
-- Dedupe by content hash within a session.
CREATE UNIQUE INDEX chunks_dedupe ON chunks (session_id, content_hash);
-- Recency within a session.
CREATE INDEX chunks_recency ON chunks (session_id, sequence_end DESC);
CREATE INDEX chunks_file ON chunks (file_id);

-- Vectors in libSQL's native F32 type (little-endian f32), one per chunk
-- and embedding model, so vectors of different models never mix.
CREATE TABLE chunks_vec (
    id              INTEGER PRIMARY KEY,
    chunk_id        TEXT NOT NULL REFERENCES chunks (chunk_id) ON DELETE CASCADE,
    embedding_model TEXT NOT NULL,
    embedding       F32_BLOB(384) NOT NULL,
    UNIQUE (chunk_id, embedding_model)
);
CREATE INDEX chunks_vec_model ON chunks_vec (embedding_model);
