-- A step's memo: what it remembered at the end of its last complete run (an extract's
-- description of the source it read, a sink's view of its target), valid only under the
-- fingerprint it was recorded with.
ALTER TABLE etl.steps ADD COLUMN IF NOT EXISTS memo text;
ALTER TABLE etl.steps ADD COLUMN IF NOT EXISTS memo_fingerprint text;
