//! The harness: a fresh test database with the pipeline's tables, a [`PgStore`] on it, the
//! source and transforms seeded, and helpers to run, plan, count rows and dump the whole state.

use std::sync::Arc;

use etl_core::config::parse;
use etl_core::dag::compile;
use etl_core::report::RunReport;
use etl_core::retry::RetryPolicy;
use etl_core::store::Store;
use etl_core::{Key, Pipeline, RunOptions, Runner};
use etl_postgres::PgStore;
use etl_testkit::postgres::TestDb;
use etl_testkit::steps::{FnTransform, MemorySource, TestCatalog};

use crate::pipeline_under_test::{seed, shape, tags, CONFIG, TABLES};

pub struct Harness {
    pub db: TestDb,
    pub store: Arc<PgStore>,
    pub source: MemorySource,
    pub shape: FnTransform,
    pub tags: FnTransform,
    pub catalog: TestCatalog,
}

impl Harness {
    pub async fn new() -> Harness {
        let db = TestDb::new().await;
        for stmt in TABLES.split(';').filter(|s| !s.trim().is_empty()) {
            db.execute(stmt).await;
        }
        let source = MemorySource::new();
        seed(&source, 10);
        let (shape, tags) = (shape(), tags());
        let catalog = TestCatalog::new()
            .extract("source", source.clone())
            .transform("shape", shape.clone())
            .transform("tags", tags.clone());
        let store = Arc::new(PgStore::connect(&db.url, 4).await.unwrap());
        Harness {
            db,
            store,
            source,
            shape,
            tags,
            catalog,
        }
    }

    pub fn pipeline(&self) -> Pipeline {
        self.pipeline_from(CONFIG)
    }

    pub fn pipeline_from(&self, text: &str) -> Pipeline {
        let (config, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        compile(&config.unwrap(), &self.catalog, Arc::new(|_: &str| None)).unwrap()
    }

    pub async fn run_with(&self, opts: RunOptions) -> RunReport {
        self.run_pipeline(self.pipeline(), &opts).await
    }

    /// A run that may delete any share of a target (`--allow-mass-delete`).
    pub async fn run_allowing_mass_delete(&self) -> RunReport {
        self.run_with(RunOptions {
            allow_mass_delete: true,
            ..options()
        })
        .await
    }

    pub async fn run(&self) -> RunReport {
        self.run_with(options()).await
    }

    /// A run of the pipeline `text` configures, instead of the harness's own.
    pub async fn run_config(&self, text: &str) -> RunReport {
        self.run_pipeline(self.pipeline_from(text), &options())
            .await
    }

    async fn run_pipeline(&self, pipeline: Pipeline, opts: &RunOptions) -> RunReport {
        let pipeline = Arc::new(pipeline);
        self.store.prepare(&pipeline).await.unwrap();
        Runner::new(self.store.clone(), pipeline)
            .run(opts)
            .await
            .unwrap()
    }

    pub async fn plan(&self) -> RunReport {
        let pipeline = Arc::new(self.pipeline());
        self.store.prepare(&pipeline).await.unwrap();
        Runner::new(self.store.clone(), pipeline)
            .plan(&options())
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.scalar(sql).await
    }

    /// Every row of every data and meta table, as text, for comparing whole states.
    pub async fn dump(&self) -> Vec<String> {
        let mut c = self.db.connect().await;
        let mut out = Vec::new();
        for t in ["src_nodes", "attrs", "src_tags", "nodes_out", "node_tags"] {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM {t} t ORDER BY 1"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            out.extend(rows.into_iter().map(|r| format!("{t}: {r}")));
            let live: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM etl.\"meta__{t}\" WHERE delete_ts IS NULL"
            ))
            .fetch_one(&mut c)
            .await
            .unwrap();
            out.push(format!("meta {t}: {live} live"));
        }
        for s in ["shape", "tags"] {
            let pending: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM etl.\"keys__{s}\" WHERE pending"
            ))
            .fetch_one(&mut c)
            .await
            .unwrap();
            out.push(format!("keys {s}: {pending} pending"));
        }
        out
    }
}

pub fn options() -> RunOptions {
    RunOptions {
        retry: RetryPolicy::quick(),
        ..RunOptions::default()
    }
}

pub fn pkey(id: &str, ty: &str) -> Key {
    Key::new([id, ty])
}

pub fn step<'a>(r: &'a RunReport, name: &str) -> &'a etl_core::report::StepReport {
    r.steps.iter().find(|s| s.step == name).unwrap()
}
