-- The full-text index learns each chunk's session, so a session-scoped
-- query is answered inside FTS5 (`fts_session : "<hex>" AND (...)`)
-- instead of ranking every matching chunk of every session and filtering
-- afterwards. The key is the session id in upper-case hex: one token for
-- any id, whatever its characters. It is a virtual generated column, so
-- it takes no space in `chunks`; the external-content table reads it
-- on 'rebuild'.

ALTER TABLE chunks ADD COLUMN fts_session TEXT GENERATED ALWAYS AS (hex(session_id)) VIRTUAL;

DROP TRIGGER chunks_fts_insert;
DROP TRIGGER chunks_fts_delete;
DROP TRIGGER chunks_fts_update;
DROP TABLE chunks_fts;

CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    chunk_text,
    fts_session,
    content = 'chunks',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

-- The 'delete' rows must repeat exactly what was indexed.
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, chunk_text, fts_session)
    VALUES (new.id, new.chunk_text, hex(new.session_id));
END;

CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, chunk_text, fts_session)
    VALUES ('delete', old.id, old.chunk_text, hex(old.session_id));
END;

CREATE TRIGGER chunks_fts_update AFTER UPDATE OF chunk_text, session_id ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, chunk_text, fts_session)
    VALUES ('delete', old.id, old.chunk_text, hex(old.session_id));
    INSERT INTO chunks_fts (rowid, chunk_text, fts_session)
    VALUES (new.id, new.chunk_text, hex(new.session_id));
END;

INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild');
