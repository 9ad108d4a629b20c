-- The engine's own bookkeeping lives in schema `etl`; data tables stay where Vedana keeps them.
-- Per-table row metadata (`etl."meta__<table>"`) and per-step key tables (`etl."keys__<step>"`)
-- depend on pipelines.toml and are created by the engine at the start of a run.

CREATE SCHEMA IF NOT EXISTS etl;

-- Every insert, update or delete of a managed row takes the next number: a step's watermark
-- says up to which number it has seen its inputs' changes.
CREATE SEQUENCE IF NOT EXISTS etl.change_seq AS bigint;

CREATE TABLE IF NOT EXISTS etl.steps (
    step            text PRIMARY KEY,
    fingerprint     text,
    last_started    timestamptz,
    last_finished   timestamptz,
    last_outcome    text,
    last_error      text,
    last_counters   jsonb,
    last_elapsed_ms bigint
);

CREATE TABLE IF NOT EXISTS etl.step_watermarks (
    step        text NOT NULL,
    input_table text NOT NULL,
    last_seq    bigint NOT NULL,
    PRIMARY KEY (step, input_table)
);
