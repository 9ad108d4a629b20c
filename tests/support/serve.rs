//! `etl serve` as a child process of a test, on a free port.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{root, Setup};

/// `etl serve` on a free port, for as long as the value lives.
pub struct Served {
    child: tokio::process::Child,
    pub url: String,
}

impl Served {
    pub async fn start(s: &Setup, extra: &[&str]) -> Served {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"));
        cmd.current_dir(root())
            .args(["serve", "--port", &port.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in &s.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{url}/healthz")).await {
                assert_eq!(r.status(), 200, "/healthz");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "etl serve did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Served { child, url }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// SIGTERM, then the exit code.
    pub async fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("etl serve stops on SIGTERM")
            .unwrap();
        status.code()
    }
}
