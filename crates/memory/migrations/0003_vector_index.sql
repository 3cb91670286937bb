-- libSQL's approximate nearest-neighbour index (DiskANN) over the vectors,
-- cosine metric; built from the vectors already stored. Each graph node is
-- one block holding its own vector and its neighbours' vectors: with the
-- defaults (60 full-precision neighbours) that is ~94 KB per chunk. Edge
-- vectors compressed to 8 bits and 16 neighbours bring it to ~8 KB; the
-- query re-ranks candidates by the exact distance to the stored vector.

CREATE INDEX chunks_vec_idx ON chunks_vec (
    libsql_vector_idx(embedding, 'metric=cosine', 'compress_neighbors=float8', 'max_neighbors=16')
);
