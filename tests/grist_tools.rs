//! `etl grist export / serve / seed` around the one folder format: export then serve answers
//! like the source server (CSV byte for byte, JSON equal); seed into the fake then export back
//! gives the same folder.

mod support;

use std::path::Path;

use grist::{GristClient, GristConfig};
use grist_emulator::{Emulator, RunningEmulator};
use serde_json::Value;
use support::{recorded, root};

async fn etl(args: &[&str]) {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env_remove("GRIST_API_KEY")
        .output()
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "etl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn client(g: &RunningEmulator) -> GristClient {
    GristClient::new(GristConfig::new(&g.url(), None)).unwrap()
}

async fn json(c: &GristClient, doc: &str, suffix: &str) -> Value {
    serde_json::from_slice(&c.raw(doc, None, suffix).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_serve_answers_like_the_source() {
    let source = Emulator::from_dirs(&[recorded()])
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let docs = [
        "vedana-demo-data-model",
        "vedana-demo-data",
        "vedana-demo-gds",
        "edge-cases",
    ];
    for doc in docs {
        etl(&[
            "grist",
            "export",
            "--doc",
            doc,
            "--out",
            &out.path().join(doc).display().to_string(),
            "--server",
            &source.url(),
        ])
        .await;
    }
    let copy = Emulator::from_dirs(&docs.map(|d| out.path().join(d)))
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (a, b) = (client(&source), client(&copy));
    let mut compared = 0;
    for doc in docs {
        assert_eq!(
            json(&a, doc, "/tables").await,
            json(&b, doc, "/tables").await,
            "{doc} /tables"
        );
        for table in a.tables(doc).await.unwrap() {
            for suffix in [
                format!("/tables/{table}/columns?hidden=true"),
                format!("/tables/{table}/columns"),
                format!("/tables/{table}/records"),
            ] {
                assert_eq!(
                    json(&a, doc, &suffix).await,
                    json(&b, doc, &suffix).await,
                    "{doc}{suffix}"
                );
            }
            for header in ["", "&header=colId"] {
                let suffix = format!("/download/csv?tableId={table}{header}");
                assert_eq!(
                    a.raw(doc, None, &suffix).await.unwrap(),
                    b.raw(doc, None, &suffix).await.unwrap(),
                    "{doc}{suffix}"
                );
            }
            compared += 1;
        }
    }
    assert!(compared >= 14, "{compared} tables compared");
}

/// A folder's tables, comparable across servers: columns by (id, type, label, formula, shown
/// column id, display formula) and records by (id, fields), colRefs resolved to column ids.
fn comparable(dir: &Path) -> Vec<(String, Value, Value)> {
    let folder = grist::folder::DocFolder::read(dir).unwrap();
    folder
        .tables
        .iter()
        .map(|t| {
            let all: Vec<&grist::Column> = folder
                .tables
                .iter()
                .flat_map(|x| x.columns.iter())
                .collect();
            let id_of = |r: i64| {
                all.iter()
                    .find(|c| c.fields.col_ref == r && r != 0)
                    .map(|c| c.id.clone())
            };
            let formula_of = |r: i64| {
                all.iter()
                    .find(|c| c.fields.col_ref == r && r != 0)
                    .map(|c| c.fields.formula.clone())
            };
            let columns: Vec<Value> = t
                .columns
                .iter()
                .filter(|c| !c.is_internal())
                .map(|c| {
                    serde_json::json!([
                        c.id,
                        c.fields.col_type,
                        c.fields.label,
                        c.fields.formula,
                        id_of(c.fields.visible_col),
                        formula_of(c.fields.display_col)
                    ])
                })
                .collect();
            (
                t.id.clone(),
                Value::Array(columns),
                Value::Array(t.records.clone()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_into_the_fake_then_export_gives_the_same_folder() {
    let fake = Emulator::new()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let fixtures = root().join("fixtures/grist");
    let names = ["demo-data-model", "demo-data", "demo-test-set"];
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["grist", "seed", "--server", &fake.url()])
        .args(names.map(|n| fixtures.join(n)))
        .env_remove("GRIST_API_KEY")
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let out = tempfile::tempdir().unwrap();
    for name in names {
        let id = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .to_string();
        let dir = out.path().join(name);
        etl(&[
            "grist",
            "export",
            "--doc",
            &id,
            "--out",
            &dir.display().to_string(),
            "--server",
            &fake.url(),
        ])
        .await;
        assert_eq!(comparable(&dir), comparable(&fixtures.join(name)), "{name}");
    }
}
