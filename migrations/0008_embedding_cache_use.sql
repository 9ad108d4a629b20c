-- When each cached vector was last used, so that the cache can be bounded by age
-- (EMBEDDINGS_CACHE_MAX_AGE_DAYS): an entry no batch has read or written for that long goes.
-- Existing entries count as used now.
ALTER TABLE etl.embedding_cache ADD COLUMN IF NOT EXISTS used_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS embedding_cache_used_at ON etl.embedding_cache (used_at);
