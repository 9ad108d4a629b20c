//! CI against a seeded Grist container, checked as far as it can be without Docker: the wiring
//! of `docker-compose.yml` and its CI overlay `docker-compose.ci.yml`, parsed as YAML, and the
//! seeding path they use, run end to end against the Grist emulator (`etl grist seed
//! --workspace`, then `etl run` on the seeded docs).

mod support;

use std::collections::BTreeMap;

use serde_yaml::Value;

use grist_emulator::Emulator;
use support::{root, Setup};

fn compose(file: &str) -> Value {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The services of the base file with the overlay's keys laid over them, as compose merges them
/// (mappings merged key by key, scalars and sequences replaced).
fn merged(base: &Value, overlay: &Value) -> Value {
    match (base, overlay) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(old) => merged(old, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Mapping(out)
        }
        (_, o) => o.clone(),
    }
}

fn services(v: &Value) -> BTreeMap<String, Value> {
    v["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// A service's environment as a map, whether written as a mapping (or a YAML anchor's) or a list.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_string(),
                };
                (k.as_str().unwrap().to_string(), v)
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn depends_on(service: &Value) -> Vec<(String, String)> {
    match &service["depends_on"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_string(),
                    v["condition"]
                        .as_str()
                        .unwrap_or("service_started")
                        .to_string(),
                )
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| (i.as_str().unwrap().to_string(), "service_started".into()))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_compose_files_are_wired_for_a_job_with_no_manual_step() {
    let base = compose("docker-compose.yml");
    let overlay = compose("docker-compose.ci.yml");
    for (name, file) in [("base", base.clone()), ("ci", merged(&base, &overlay))] {
        let all = services(&file);
        for (service, def) in &all {
            for (dependency, condition) in depends_on(def) {
                let target = all
                    .get(&dependency)
                    .unwrap_or_else(|| panic!("{name}: {service} depends on unknown {dependency}"));
                assert!(
                    !target["healthcheck"].is_null(),
                    "{name}: {service} depends on {dependency}, which has no healthcheck"
                );
                assert!(
                    matches!(
                        condition.as_str(),
                        "service_healthy" | "service_completed_successfully"
                    ),
                    "{name}: {service} waits for {dependency} only to start ({condition})"
                );
            }
        }
        // seed and etl talk to the same Grist and database.
        let (seed, etl) = (environment(&all["seed"]), environment(&all["etl"]));
        for (k, v) in &etl {
            if k.starts_with("GRIST_") || k == "DB_CONN_URI" {
                assert_eq!(seed.get(k), Some(v), "{name}: seed and etl differ on {k}");
            }
        }
        assert!(etl.contains_key("DB_CONN_URI") && etl.contains_key("GRIST_SERVER_URL"));
        // Memgraph as Vedana runs it.
        let memgraph = serde_yaml::to_string(&all["memgraph"]["command"]).unwrap();
        assert!(
            memgraph.contains("--storage-mode=IN_MEMORY_ANALYTICAL"),
            "{name}: {memgraph}"
        );
    }

    // The overlay: the support user gets the job's key, the server counts as configured, and
    // etl waits for seed to have written the doc ids.
    let ci = services(&merged(&base, &overlay));
    let grist = environment(&ci["grist"]);
    assert_eq!(grist.get("GRIST_TEST_LOGIN").map(String::as_str), Some("1"));
    assert!(grist["TEST_SUPPORT_API_KEY"].starts_with("${GRIST_API_KEY"));
    assert_eq!(
        grist.get("GRIST_IN_SERVICE").map(String::as_str),
        Some("true")
    );
    assert!(depends_on(&ci["etl"]).contains(&(
        "seed".to_string(),
        "service_completed_successfully".to_string()
    )));
    let etl_command = serde_yaml::to_string(&ci["etl"]["command"]).unwrap();
    for part in ["/state/grist.env", "etl migrate", "etl run", "etl verify"] {
        assert!(etl_command.contains(part), "{etl_command}");
    }
    let seed_command = serde_yaml::to_string(&ci["seed"]["command"]).unwrap();
    assert!(
        seed_command.contains("--env-out /state/grist.env"),
        "{seed_command}"
    );
    // The base file stays for a real Grist: no test login there.
    assert!(!environment(&services(&base)["grist"]).contains_key("GRIST_TEST_LOGIN"));
    let text = std::fs::read_to_string(root().join("docker-compose.ci.yml")).unwrap();
    assert!(text.contains("CI only") && text.contains("unauthenticated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_a_workspace_then_running_builds_the_graph() {
    // An empty Grist, as the CI container starts.
    let grist = Emulator::new()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let env_file = state.path().join("grist.env");
    let fixtures = root().join("fixtures/grist");
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args([
            "grist",
            "seed",
            "--server",
            &grist.url(),
            "--workspace",
            "1",
        ])
        .args(["demo-data-model", "demo-data", "demo-test-set"].map(|n| fixtures.join(n)))
        .arg("--env-out")
        .arg(&env_file)
        .env_remove("GRIST_API_KEY")
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids: BTreeMap<String, String> = std::fs::read_to_string(&env_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    for k in [
        "GRIST_DATA_MODEL_DOC_ID",
        "GRIST_DATA_DOC_ID",
        "GRIST_TEST_SET_DOC_ID",
    ] {
        assert!(ids.contains_key(k), "{ids:?}");
    }

    // etl reads the ids the way the etl service does, and builds the graph.
    let s = Setup::with_running(
        grist,
        [
            &ids["GRIST_DATA_MODEL_DOC_ID"],
            &ids["GRIST_DATA_DOC_ID"],
            &ids["GRIST_TEST_SET_DOC_ID"],
        ],
    )
    .await;
    let r = s.run().await;
    assert!(s.count("SELECT count(*) FROM nodes").await > 30, "{r}");
    assert!(s.count("SELECT count(*) FROM eval_gds").await > 0);
    assert_eq!(s.graph_nodes().await, s.table_nodes().await);
    assert_eq!(s.graph_edges().await, s.table_edges().await);
    let verify = s.etl(&["verify"], &[]).await;
    assert_eq!(verify.code, Some(0), "{verify}");

    // A workspace that does not exist is an error that says so.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args([
            "grist",
            "seed",
            "--server",
            &s.grist.url(),
            "--workspace",
            "99",
        ])
        .arg(fixtures.join("demo-test-set"))
        .env_remove("GRIST_API_KEY")
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("workspace"), "{err}");
}
