-- Indexing leaves the append path: storing an event queues it here in the
-- same transaction, and a background indexer chunks, embeds and indexes
-- queued events in batches, deleting their rows in the transaction that
-- writes the chunks. The queue is the persisted watermark: every event
-- acknowledged but not yet indexed has a row, so a restart after a crash
-- indexes exactly those. AUTOINCREMENT ids never repeat, so the indexer
-- takes the queue in order and deletes what it read by id.
CREATE TABLE index_queue (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    sequence   INTEGER NOT NULL,
    queued_at  INTEGER NOT NULL
);
-- Forgetting a session cascades through this index.
CREATE INDEX index_queue_session ON index_queue (session_id);
