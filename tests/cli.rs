//! End-to-end tests of the `etl` binary: configuration errors, migrations, runs, plans, status,
//! locks and exit codes, against real Postgres.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use etl_testkit::postgres::TestDb;
use sqlx::Connection;

fn etl(dir: &Path, db: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etl"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("DB_CONN_URI")
        .env("RUST_LOG", "warn");
    if let Some(url) = db {
        cmd.env("DB_CONN_URI", url);
    }
    cmd.output().expect("run etl")
}

fn text(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

const CSV_PIPELINE: &str = r#"
version = 1
[tables.regions]
primary_key = ["code"]
[tables.cities]
primary_key = ["name", "region"]
[steps.load_regions]
kind = "extract"
uses = "csv.files"
outputs = ["regions"]
labels = { source = "files" }
settings = { regions = "regions.csv" }
[steps.load_cities]
kind = "extract"
uses = "csv.files"
outputs = ["cities"]
labels = { source = "files" }
max_delete_fraction = 0.5
settings = { cities = "cities.csv" }
"#;

async fn csv_fixture() -> (TestDb, tempfile::TempDir) {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE regions (code text PRIMARY KEY, label text)")
        .await;
    db.execute(
        "CREATE TABLE cities (name text, region text, people text, PRIMARY KEY (name, region))",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pipelines.toml", CSV_PIPELINE);
    write(dir.path(), "regions.csv", "code,label\nN,North\nS,South\n");
    write(
        dir.path(),
        "cities.csv",
        "name,region,people\nAa,N,10\nBb,N,\nCc,S,30\nDd,S,40\n",
    );
    (db, dir)
}

#[test]
fn check_reports_every_configuration_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pipelines.toml",
        r#"
colour = "blue"
[tables.a]
primary_key = ["id"]
[tables.b]
primary_key = ["id"]
[tables.c]
primary_key = []
[steps.one]
kind = "extract"
uses = "csv.files"
outputs = ["a"]
settings = { a = "a.csv", typo = 1 }
[steps.two]
kind = "extract"
uses = "csv.files"
outputs = ["a"]
settings = { a = "a2.csv" }
[steps.loop_x]
kind = "transform"
uses = "nope.nothing"
inputs = ["b"]
outputs = ["b"]
batch_size = 0
[steps.three]
kind = "sideways"
uses = "csv.files"
[steps.four]
kind = "transform"
uses = "csv.files"
inputs = ["ghost"]
outputs = ["a"]
settings = { a = "x.csv" }
"#,
    );
    let o = etl(dir.path(), None, &["check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}");
    for expected in [
        "colour: unknown key",
        "version: is required",
        "tables.c.primary_key: needs at least one column",
        "steps.one.settings.typo: unknown setting",
        "tables.a: is written by 3 steps (four, one, two)",
        "steps.loop_x.uses: unknown implementation `nope.nothing`",
        "steps.loop_x.batch_size: must be between 1 and 1000000, found 0",
        "steps: the steps form a cycle: loop_x -> loop_x",
        "steps.three.kind: expected \"extract\", \"transform\" or \"sink\"",
        "steps.four.inputs[0]: unknown table `ghost`",
        "steps.four.kind: `csv.files` is an extract, not a transform",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn missing_environment_variables_are_named_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pipelines.toml",
        r#"
version = 1
[database]
url = "${DB_CONN_URI}"
[tables.a]
primary_key = ["id"]
[steps.one]
kind = "extract"
uses = "csv.files"
outputs = ["a"]
settings = { a = "${ETL_TEST_UNSET_FILE}" }
"#,
    );
    let o = etl(dir.path(), None, &["run"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(
        out.contains("steps.one.settings.a: environment variable ETL_TEST_UNSET_FILE is not set"),
        "{out}"
    );
}

#[tokio::test]
async fn migrate_creates_vedanas_tables_with_the_configured_dimension_once() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etl"));
    let o = cmd
        .current_dir(dir.path())
        .args(["migrate"])
        .env("DB_CONN_URI", &db.url)
        .env("EMBEDDINGS_DIM", "16")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("vector(16)"));
    let mut c = db.connect().await;
    let ty: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'rag_anchor_embeddings'::regclass AND attname = 'embedding'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(ty, "vector(16)");
    let cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
          WHERE attrelid = 'dm_anchor_attributes'::regclass AND attnum > 0 ORDER BY attnum",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let cols: Vec<String> = cols.into_iter().map(|(n, t)| format!("{n} {t}")).collect();
    assert_eq!(
        cols,
        vec![
            "anchor text",
            "attribute_name text",
            "description text",
            "data_example text",
            "embeddable boolean",
            "query text",
            "dtype text",
            "embed_threshold double precision",
            "embed_top_n integer"
        ]
    );
    let hnsw: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%hnsw%vector_cosine_ops%'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(hnsw, 2);
    c.close().await.ok();
    let o = etl(dir.path(), Some(&db.url), &["migrate"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("up to date"));
}

#[tokio::test]
async fn run_then_noop_run_then_edit_with_plan_and_status() {
    let (db, dir) = csv_fixture().await;
    let o = etl(dir.path(), Some(&db.url), &["run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(db.scalar("SELECT count(*) FROM cities").await, 4);
    assert_eq!(
        db.scalar("SELECT count(*) FROM cities WHERE people IS NULL")
            .await,
        1,
        "empty cells are NULL"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM regions").await, 2);

    let seq = db.scalar("SELECT last_value FROM etl.change_seq").await;
    let o = etl(dir.path(), Some(&db.url), &["run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        db.scalar("SELECT last_value FROM etl.change_seq").await,
        seq,
        "a no-op run writes nothing"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("+0 ~0 -0 =4"),
        "{}",
        text(&o)
    );

    let o = etl(dir.path(), Some(&db.url), &["plan"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("load_cities              extract          0        0        0        0"),
        "{}",
        text(&o)
    );

    write(
        dir.path(),
        "cities.csv",
        "name,region,people\nAa,N,11\nBb,N,\nCc,S,30\nDd,S,40\nEe,S,5\n",
    );
    let o = etl(
        dir.path(),
        Some(&db.url),
        &["plan", "--step", "load_cities"],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("load_cities              extract          1        1        0        0"),
        "{}",
        text(&o)
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM cities").await,
        4,
        "plan writes nothing"
    );

    let o = etl(
        dir.path(),
        Some(&db.url),
        &["run", "--label", "source=files"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("+1 ~1 -0 =3"),
        "{}",
        text(&o)
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM cities WHERE name = 'Aa' AND people = '11'")
            .await,
        1
    );

    let o = etl(dir.path(), Some(&db.url), &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("load_cities") && stdout.contains("ok"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn the_mass_delete_guard_exits_2_and_deletes_nothing_unless_allowed() {
    let (db, dir) = csv_fixture().await;
    assert_eq!(
        etl(dir.path(), Some(&db.url), &["run"]).status.code(),
        Some(0)
    );
    write(dir.path(), "cities.csv", "name,region,people\nAa,N,10\n");
    let o = etl(dir.path(), Some(&db.url), &["run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("refusing to delete 3 of the 4 rows of table `cities`"),
        "{}",
        text(&o)
    );
    assert_eq!(db.scalar("SELECT count(*) FROM cities").await, 4);
    let o = etl(dir.path(), Some(&db.url), &["run", "--allow-mass-delete"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(db.scalar("SELECT count(*) FROM cities").await, 1);
}

#[tokio::test]
async fn a_second_run_exits_3_while_another_holds_the_lock_and_waits_with_wait() {
    let (db, dir) = csv_fixture().await;
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(etl_postgres::lock::lock_id("step:load_cities"))
        .execute(&mut holder)
        .await
        .unwrap();
    let o = etl(dir.path(), Some(&db.url), &["run", "--step", "load_cities"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("rerun with --wait"), "{}", text(&o));
    assert_eq!(db.scalar("SELECT count(*) FROM cities").await, 0);

    let mut waiting = Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(dir.path())
        .args(["run", "--step", "load_cities", "--wait"])
        .env("DB_CONN_URI", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "--wait must wait for the lock"
    );
    holder.close().await.unwrap(); // the holder's session ends: its locks go with it
    let status = waiting.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(db.scalar("SELECT count(*) FROM cities").await, 4);
}

#[tokio::test]
async fn the_repository_pipeline_validates_against_the_migrated_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let db = TestDb::new().await;
    // `status` builds every step and checks every table against the database, without calling
    // any service.
    let o = etl(root, Some(&db.url), &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for step in [
        "grist_data_model",
        "grist_graph",
        "grist_test_set",
        "nodes",
        "edges",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{}", text(&o));
    }
}
