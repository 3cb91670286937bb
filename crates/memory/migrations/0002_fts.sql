-- Full-text search over chunk text (external content: `chunks`), kept in
-- sync by triggers, and filled from the chunks stored before it existed.

CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    chunk_text,
    content = 'chunks',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, chunk_text) VALUES (new.id, new.chunk_text);
END;

CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, chunk_text) VALUES ('delete', old.id, old.chunk_text);
END;

CREATE TRIGGER chunks_fts_update AFTER UPDATE OF chunk_text ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, chunk_text) VALUES ('delete', old.id, old.chunk_text);
    INSERT INTO chunks_fts (rowid, chunk_text) VALUES (new.id, new.chunk_text);
END;

INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild');
