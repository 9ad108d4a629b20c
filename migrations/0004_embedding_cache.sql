-- The content-addressed embedding cache: a text already embedded by a (provider, model,
-- dimensions) is never sent again. `vector` without a dimension holds any model's vectors.
CREATE TABLE IF NOT EXISTS etl.embedding_cache (
    provider   text NOT NULL,
    model      text NOT NULL,
    dims       integer NOT NULL,
    text_hash  bytea NOT NULL,
    embedding  vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, model, dims, text_hash)
);
