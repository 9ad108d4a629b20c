-- The run history: one row per run (`etl run`, each round of `etl run --every`), one per step of
-- it, written as the step ends. `etl history`, `etl serve` and its metrics read them. Runs older
-- than the retention (default 90 days) are pruned when a run ends.

CREATE TABLE IF NOT EXISTS etl.runs (
    run_id      bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL while the run goes on, or when its process died before recording its end.
    finished_at timestamptz,
    outcome     text,
    command     text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    worker      text NOT NULL
);

CREATE INDEX IF NOT EXISTS runs_started_at ON etl.runs (started_at);

CREATE TABLE IF NOT EXISTS etl.run_steps (
    run_id         bigint NOT NULL REFERENCES etl.runs ON DELETE CASCADE,
    step           text NOT NULL,
    kind           text NOT NULL,
    -- NULL for a step that never started (skipped, not configured, locked, interrupted).
    started_at     timestamptz,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    outcome        text NOT NULL,
    reason         text,
    error_class    text,
    keys_processed bigint NOT NULL DEFAULT 0,
    keys_failed    bigint NOT NULL DEFAULT 0,
    -- {"<table>": {"inserted": n, "updated": n, "deleted": n, "unchanged": n}}
    tables         jsonb NOT NULL DEFAULT '{}',
    -- The step's counters: texts embedded, cache hits, graph writes, source requests and bytes.
    counters       jsonb NOT NULL DEFAULT '{}',
    -- A few of the keys that failed, with their errors.
    failures       jsonb NOT NULL DEFAULT '[]',
    elapsed_ms     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step)
);

CREATE INDEX IF NOT EXISTS run_steps_step_finished ON etl.run_steps (step, finished_at);
