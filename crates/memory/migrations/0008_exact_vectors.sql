-- The DiskANN index (0003) goes: keeping it cost ~2 ms of CPU and ~8 KB of
-- graph block per chunk, which made indexing four times the cost of the
-- rest of a turn. Vector search is now an exact scan of the searched
-- scope; a session's chunks are found through this covering index without
-- reading their rows, and a user-wide scan walks `chunks_vec_model`.
DROP INDEX IF EXISTS chunks_vec_idx;
CREATE INDEX chunks_session_ids ON chunks (session_id, chunk_id);
