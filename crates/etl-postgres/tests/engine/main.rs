//! The engine against real Postgres: every test asserts rows and metadata.
//!
//! Modules:
//! * `pipeline_under_test` – the pipeline the tests run (config, tables, transforms, seed data).
//! * `harness` – a test database with the pipeline's tables, the store, and run helpers.
//! * `extracts` – first and repeated runs, changed, deleted and duplicate source rows.
//! * `transforms` – one-to-many outputs, side tables and fingerprints.
//! * `selection` – running a selection of steps, downstream, by label, and full refreshes.
//! * `failures` – failing keys, the mass-delete guard, sources failing part way, transient
//!   failures.
//! * `prepare` – the catalogue read at a run's start, and the problems it names.
//! * `locks` – a run held off by another run's lock.
//! * `kill_recovery` – a run killed at any point converges on the next run.
//! * `memos` – source memos: an unchanged source is not read again.
//! * `stop` – a run asked to stop: batches in flight finish, the next run converges.

mod extracts;
mod failures;
mod harness;
mod kill_recovery;
mod locks;
mod memos;
mod pipeline_under_test;
mod prepare;
mod selection;
mod stop;
mod transforms;
