//! The local provider with the real model (all-MiniLM-L6-v2 from PyPI, installed by
//! `scripts/services start model`): a semantic check, not a mock.

#![cfg(feature = "local")]

use embeddings::local::LocalEmbedder;
use embeddings::Embedder;

fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var("EMBEDDINGS_MODEL_DIR").unwrap_or_default();
    assert!(
        !dir.is_empty() && std::path::Path::new(&dir).join("model.safetensors").exists(),
        "\n\nthe local embedding model is not installed: run `eval \"$(scripts/services start model)\"` \
         (or the README's test command) so that EMBEDDINGS_MODEL_DIR names its folder\n\n"
    );
    dir.into()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn similar_sentences_are_close_and_unrelated_ones_are_not() {
    let model = LocalEmbedder::load(&model_dir()).unwrap();
    assert_eq!(model.id().dims, 384);
    assert_eq!(model.id().provider, "local");
    let texts: Vec<String> = ["river otters", "otters living in rivers", "slide rules"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let v = model.embed(&texts).await.unwrap();
    assert!(v.iter().all(|x| x.len() == 384));
    // Unit vectors, as sentence-transformers normalizes them.
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let close = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    assert!(
        close > 0.8,
        "cosine(river otters, otters living in rivers) = {close}"
    );
    assert!(far < 0.3, "cosine(river otters, slide rules) = {far}");
    // The same text alone gives the same vector as in a batch (padding does not leak in).
    let alone = model.embed(&texts[..1]).await.unwrap();
    assert!(cosine(&alone[0], &v[0]) > 0.9999);
}
