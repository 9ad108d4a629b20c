//! API-key checks: the right key is accepted, and an emulator without a key needs none.

use crate::harness::{client, serve_recorded, API_KEY};

#[tokio::test]
async fn right_key_is_accepted_and_no_key_means_no_auth() {
    let (keyed, _, _) = serve_recorded(Some(API_KEY)).await;
    let http = client();
    let url = format!("{}/api/docs/edge-cases/tables", keyed.url());
    let ok = http
        .get(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status().as_u16(), 200);
    let anon = http
        .get(format!("{}/api/docs/NoSuchDoc/tables", keyed.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(anon.status().as_u16(), 404);
    keyed.shutdown().await;

    let (open, _, _) = serve_recorded(None).await;
    for auth in [None, Some("Bearer whatever"), Some("Basic abc")] {
        let mut req = http.get(format!("{}/api/docs/edge-cases/tables", open.url()));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        assert_eq!(
            req.send().await.expect("request").status().as_u16(),
            200,
            "{auth:?}"
        );
    }
    open.shutdown().await;
}
