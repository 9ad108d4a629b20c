//! `etl serve` in a real browser: headless Chromium driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`, installed by `scripts/services start browser`) on the demo docs. It
//! opens the run list, follows a run, searches a node and reads what the pages show; it saves
//! screenshots in `target/screenshots/` (the README's come from there).

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use support::serve::Served;
use support::{root, Setup};

/// chromedriver on a free port, for as long as the value lives.
struct Driver {
    _child: tokio::process::Child,
    url: String,
}

/// The path of a tool: `$var`, else `name` found on PATH (chromedriver wants a path).
fn tool(var: &str, name: &str) -> String {
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .map(|p| p.display().to_string())
        })
    };
    let path = std::env::var(var)
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(on_path)
        .unwrap_or_else(|| name.to_string());
    let found = std::process::Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} is missing (looked for `{path}`; set {var}): install it with `scripts/services start browser`"
    );
    path
}

impl Driver {
    async fn start() -> Driver {
        let driver = tool("CHROMEDRIVER", "chromedriver");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { _child: child, url }
    }

    async fn browser(&self) -> Client {
        let chromium = tool("CHROMIUM", "chromium");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        // chromedriver listens on plain HTTP on 127.0.0.1: no TLS.
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a headless chromium session")
    }
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = root().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_follows_a_run_and_searches_a_node() {
    let s = Setup::demo().await;
    s.run().await;
    s.docs()
        .update_record(
            "demo-data",
            "Anchor_person",
            3,
            json!({"person_name": "Chloe Renamed"}),
        )
        .unwrap();
    s.run().await;
    let served = Served::start(&s, &[]).await;
    let driver = Driver::start().await;
    let c = driver.browser().await;

    // The run list: two runs, newest first.
    c.goto(&served.url).await.unwrap();
    let rows = c.find_all(Locator::Css("#runs tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2);
    let first = text_of(&c, "#runs tbody tr:first-child").await;
    assert!(first.contains("succeeded"), "{first}");
    assert!(first.contains("1 text embedded"), "{first}");
    screenshot(&c, "runs").await;

    // Follow the newest run: its steps and what they did.
    click(&c, "#runs tbody tr:first-child a").await;
    let heading = text_of(&c, "h1").await;
    assert!(
        heading.starts_with("Run ") && heading.contains("succeeded"),
        "{heading}"
    );
    let steps = c.find_all(Locator::Css("#steps tr.step")).await.unwrap();
    assert_eq!(steps.len(), 11);
    let embed = text_of(&c, "#steps tr[data-step=embed_nodes]").await;
    assert!(embed.contains("texts_embedded: 1"), "{embed}");
    screenshot(&c, "run").await;

    // Search a node from the header's form: its lineage.
    let input = c.find(Locator::Css("#node")).await.unwrap();
    input.send_keys("person:3").await.unwrap();
    click(&c, "#search button").await;
    assert_eq!(text_of(&c, "#node-id").await, "person:3");
    let graph = text_of(&c, "#in-graph").await;
    assert!(graph.contains("person: yes"), "{graph}");
    let nodes = text_of(&c, "section[data-table=nodes]").await;
    assert!(nodes.contains("Chloe Renamed"), "{nodes}");
    assert!(
        nodes.contains("run 1") && nodes.contains("run 2"),
        "{nodes}"
    );
    let source = text_of(&c, "section[data-table=grist_nodes] .origin").await;
    assert!(source.contains("Anchor_person"), "{source}");
    screenshot(&c, "lineage").await;

    // An edge's other end is a link to its own lineage.
    click(&c, "a[href='/lineage?node=city%3A1']").await;
    assert_eq!(text_of(&c, "#node-id").await, "city:1");
    c.close().await.unwrap();
}
