-- The work queue: the batches of a run's transforms, published for any worker to take
-- (`etl worker`, `etl run --workers N`), leased with a heartbeat, and kept with the worker that
-- completed each and what it did (for the run's report and `etl history`). Pruned with their run.

CREATE TABLE IF NOT EXISTS etl.batches (
    batch_id     bigserial PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES etl.runs ON DELETE CASCADE,
    step         text NOT NULL,
    fingerprint  text NOT NULL,
    -- The batch's keys: one JSON array of key parts per key (emptied once done or closed).
    keys         jsonb NOT NULL,
    -- ready (waiting), leased (a worker holds it until lease_until), done, or closed (the run
    -- stopped or failed before it was done: its keys stay pending for the next run).
    state        text NOT NULL DEFAULT 'ready',
    worker       text,
    lease_until  timestamptz,
    claims       integer NOT NULL DEFAULT 0,
    result       jsonb,
    done_at      timestamptz
);

CREATE INDEX IF NOT EXISTS batches_open ON etl.batches (run_id, step, batch_id) WHERE state <> 'done';
CREATE INDEX IF NOT EXISTS batches_of_run ON etl.batches (run_id, step);

-- A run that shares its batches renews this while it works; workers claim batches only of a
-- run that is alive.
ALTER TABLE etl.runs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;

-- Workers alive (`etl worker`): each renews its row with its leases.
CREATE TABLE IF NOT EXISTS etl.workers (
    worker      text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
