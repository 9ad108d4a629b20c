//! Read options: columns without `hidden=true` leave out the helper columns.

use serde_json::Value;

use crate::harness::{client, serve_recorded};

#[tokio::test]
async fn columns_without_hidden_leave_out_helpers() {
    let (running, _, _) = serve_recorded(None).await;
    let http = client();
    let get = |hidden: bool| {
        let url = format!(
            "{}/api/docs/edge-cases/tables/Tasks/columns{}",
            running.url(),
            if hidden { "?hidden=true" } else { "" }
        );
        let http = http.clone();
        async move {
            let v: Value = http
                .get(url)
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            v["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| c["id"].as_str().expect("id").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        get(false).await,
        ["What", "OwnerRaw", "OwnerVis", "OwnerDisp", "HelpersDisp"]
    );
    let all = get(true).await;
    assert_eq!(all.len(), 8);
    assert!(all.contains(&"manualSort".to_string()));
    assert!(all.contains(&"gristHelper_Display2".to_string()));
    running.shutdown().await;
}
