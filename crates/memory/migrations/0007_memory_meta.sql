-- Facts memory keeps about itself. `vectors_complete` names the embedding
-- model every chunk has a vector of (where the text has features), so a
-- restart with the same model skips the pass that looks for chunks
-- without one; an embedding failure removes it.
CREATE TABLE memory_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
