//! `etl-postgres`: the engine's state store on Postgres, its migrations and its step locks.

pub mod deletions;
pub mod error;
pub mod ident;
pub mod lock;
pub mod migrate;
pub mod reads;
pub mod schema;
pub mod store;

pub use migrate::{migrate, migrations_digest, MigrateError};
pub use store::PgStore;
