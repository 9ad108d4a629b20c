//! A fresh database per test, cloned from a migrated template.
//!
//! The server is found through `ETL_TEST_DATABASE_URL`, else `DB_CONN_URI`, else the default of
//! `scripts/services start postgres` (127.0.0.1:55432). If nothing answers there the test panics
//! with what to run: a test that needs Postgres never skips.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";

/// The embedding dimension of test databases (small, so that vectors are cheap).
pub const TEST_EMBEDDINGS_DIM: u32 = 8;

fn server_url() -> String {
    std::env::var("ETL_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DB_CONN_URI"))
        .unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// Replaces the database name of a URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// A database that exists for one test and is dropped after it.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// Creates a migrated database (embedding dimension [`TEST_EMBEDDINGS_DIM`]).
    pub async fn new() -> TestDb {
        Self::with_dim(TEST_EMBEDDINGS_DIM).await
    }

    pub async fn with_dim(dim: u32) -> TestDb {
        let admin_url = server_url();
        let mut admin = connect_or_explain(&admin_url).await;
        let template = format!("etl_tmpl_{}_{dim}", etl_postgres::migrations_digest());
        ensure_template(&mut admin, &admin_url, &template, dim).await;
        let name = format!(
            "etl_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        let mut attempt = 0;
        loop {
            let r = sqlx::query(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
            ))
            .execute(&mut admin)
            .await;
            match r {
                Ok(_) => break,
                // Another test may be cloning the template at this very moment.
                Err(e)
                    if attempt < 50 && e.to_string().contains("being accessed by other users") =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot create test database {name}: {e}"),
            }
        }
        admin.close().await.ok();
        TestDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    /// Runs a query returning one i64 (counts in assertions).
    pub async fn scalar(&self, sql: &str) -> i64 {
        let mut c = self.connect().await;
        let v: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.close().await.ok();
        v
    }

    /// Runs a query returning at most one text (NULL or no row: `None`).
    pub async fn text(&self, sql: &str) -> Option<String> {
        let mut c = self.connect().await;
        let v: Option<Option<String>> = sqlx::query_scalar(sql)
            .fetch_optional(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.close().await.ok();
        v.flatten()
    }

    /// Runs a query returning one text per row.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        let mut c = self.connect().await;
        let v: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.close().await.ok();
        v
    }

    pub async fn execute(&self, sql: &str) {
        let mut c = self.connect().await;
        sqlx::query(sql)
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.close().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop on a thread of its own: Drop cannot await, and the test's runtime may be gone.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut c)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

async fn connect_or_explain(url: &str) -> PgConnection {
    match PgConnection::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "\n\nPostgres is not reachable for tests ({e}).\n\
             Start it with `scripts/services start postgres` (or run the README's test command, \
             which does), or point ETL_TEST_DATABASE_URL at a Postgres 16 with pgvector.\n\n"
        ),
    }
}

async fn ensure_template(admin: &mut PgConnection, admin_url: &str, template: &str, dim: u32) {
    // One creator at a time across test processes.
    sqlx::query("SELECT pg_advisory_lock(764012)")
        .execute(&mut *admin)
        .await
        .expect("template lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(template)
            .fetch_one(&mut *admin)
            .await
            .expect("look up template");
    if !exists {
        let building = format!("{template}_building");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        ))
        .execute(&mut *admin)
        .await
        .expect("drop stale template");
        sqlx::query(&format!("CREATE DATABASE \"{building}\""))
            .execute(&mut *admin)
            .await
            .expect("create template");
        etl_postgres::migrate(&with_database(admin_url, &building), dim)
            .await
            .unwrap_or_else(|e| panic!("migrating the test template: {e}"));
        sqlx::query(&format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        ))
        .execute(&mut *admin)
        .await
        .expect("publish template");
    }
    sqlx::query("SELECT pg_advisory_unlock(764012)")
        .execute(&mut *admin)
        .await
        .expect("template unlock");
}

impl TestDb {
    /// A database with nothing in it (not even migrations), for testing `etl migrate`.
    pub async fn empty() -> TestDb {
        let admin_url = server_url();
        let mut admin = connect_or_explain(&admin_url).await;
        let name = format!(
            "etl_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        admin.close().await.ok();
        TestDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }
}
