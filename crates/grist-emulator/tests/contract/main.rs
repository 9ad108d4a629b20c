//! Contract tests: the emulator, serving the recorded doc folders, must answer every recorded
//! request of a real Grist (grist-core 1.7.17) with the same status, content type and body
//! (CSV byte for byte, JSON as values); plus tests of editing through the handle, fault
//! injection, auth, and the write endpoints used to seed docs.
//!
//! The recordings come from `$ETL_GRIST_RECORDED`, by default `../shared/grist/recorded` beside
//! the workspace. They are required: a missing folder fails the tests.
//!
//! Modules:
//! * `harness` – the recorded folders, serving them, and the HTTP helpers the tests share.
//! * `recorded` – every recorded answer and error of the real Grist, reproduced.
//! * `auth` – API-key checks.
//! * `changes` – the change feed (`/states`, `/compare`, `/records?filter`) against the recorded one.
//! * `reads` – read options (`hidden` columns).
//! * `handle` – editing docs, injecting faults and counting requests through the handle.
//! * `seeding` – the write endpoints used to seed docs.
//! * `errors` – bad requests and bad doc folders.
//! * `seeded_copy` – a recorded doc seeded into an empty emulator renders like the recording.

mod auth;
mod changes;
mod errors;
mod handle;
mod harness;
mod reads;
mod recorded;
mod seeded_copy;
mod seeding;
