//! Embedding throughput against the fake OpenAI-compatible server with 50 ms of latency per
//! request, at the default settings (256 texts a request, 4 requests in flight):
//! `cargo bench -p etl-testkit --bench embed_throughput` (`TEXTS=...` to change the count).

use std::time::{Duration, Instant};

use embeddings::batching::SendStats;
use embeddings::openai::{OpenAiConfig, OpenAiEmbedder};
use embeddings::{embed_all, BatchLimits};
use etl_testkit::fake_openai::FakeOpenAi;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("TEXTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fake = FakeOpenAi::start(0).await;
    fake.set_latency(Duration::from_millis(50));
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        base_url: fake.base_url(),
        api_key: Some("bench".into()),
        model: "fake".into(),
        dims: 1024,
        timeout: Duration::from_secs(60),
    })
    .unwrap();
    let texts: Vec<String> = (0..n)
        .map(|i| format!("person {i} likes interest {}", i % 997))
        .collect();
    let limits = BatchLimits::default();
    let stats = SendStats::default();
    let started = Instant::now();
    let out = embed_all(&embedder, &texts, &limits, &stats).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(out
        .iter()
        .all(|r| r.as_ref().is_ok_and(|v| v.len() == 1024)));
    println!(
        "texts: {n}, dims 1024, 50 ms a request, {} texts a request, {} in flight",
        limits.max_texts, limits.max_in_flight
    );
    println!("requests: {}", fake.requests());
    println!("throughput: {:.0} texts/s ({secs:.2} s)", n as f64 / secs);
}
