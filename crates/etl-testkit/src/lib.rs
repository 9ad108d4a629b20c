//! `etl-testkit`: what tests need around the engine. Dev-only.
//!
//! * [`postgres`]: a fresh, migrated database per test on the Postgres that `scripts/services`
//!   starts; a test fails loudly when that Postgres is not running.
//! * [`fake_openai`]: a fake OpenAI-compatible embeddings server that counts every call.
//! * [`graph`]: a fresh graph database per test on the Bolt server (ArcadeDB).
//! * [`steps`]: small in-memory steps (a snapshot source that tests edit between runs, and
//!   transforms with switchable failures) for exercising the engine.

pub mod fake_openai;
pub mod graph;
pub mod postgres;
pub mod steps;
