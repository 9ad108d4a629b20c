//! Seeding a doc through the write endpoints (tables, columns, records, `/apply`).

use grist_emulator::Emulator;
use serde_json::{json, Value};

use crate::harness::{client, get_text, localhost, send_json};

#[tokio::test]
async fn seeding_a_doc_through_the_write_endpoints() {
    let running = Emulator::new().serve(localhost()).await.expect("serve");
    let http = client();
    let base = running.url();
    use reqwest::Method;

    let workspaces: Value = http
        .get(format!("{base}/api/orgs/current/workspaces"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let ws = workspaces[0]["id"].as_i64().expect("workspace id");
    assert_eq!(ws, 1);

    let (status, doc) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/workspaces/{ws}/docs"),
        json!({"name": "Seeded"}),
    )
    .await;
    assert_eq!(status, 200);
    let doc = doc.as_str().expect("doc id as a JSON string").to_string();

    let (status, tables) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/tables"),
        json!({"tables": [
            {"id": "Anchors", "columns": [
                {"id": "noun", "fields": {"label": "noun", "type": "Text"}},
                {"id": "weight", "fields": {"label": "Weight", "type": "Numeric"}},
            ]},
            {"id": "Attributes", "columns": [
                {"id": "name", "fields": {"type": "Text"}},
                {"id": "anchor", "fields": {"type": "Ref:Anchors", "visibleCol": "noun"}},
                {"id": "raw", "fields": {"type": "Ref:Anchors"}},
                {"id": "others", "fields": {"type": "RefList:Anchors"}},
                {"id": "on", "fields": {"type": "Bool"}},
                {"id": "since", "fields": {"type": "Date"}},
                {"id": "nounCopy", "fields": {"type": "Any", "isFormula": true, "formula": "$anchor.noun"}},
            ]},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{tables}");
    assert_eq!(
        tables,
        json!({"tables": [{"id": "Anchors"}, {"id": "Attributes"}]})
    );

    let (status, ids) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/tables/Anchors/records"),
        json!({"records": [{"fields": {"noun": "person", "weight": 0.5}}, {"fields": {"noun": "interest, hobby"}}]}),
    )
    .await;
    assert_eq!(
        (status, ids),
        (200, json!({"records": [{"id": 1}, {"id": 2}]}))
    );
    let (status, ids) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/tables/Attributes/records"),
        json!({"records": [
            {"fields": {"name": "person_id", "anchor": 1, "raw": 1, "others": ["L", 1, 2], "on": true, "since": 1705276800}},
            {"fields": {"name": "blank"}},
        ]}),
    )
    .await;
    assert_eq!(
        (status, ids),
        (200, json!({"records": [{"id": 1}, {"id": 2}]}))
    );

    // RefList shows display values once it has a display formula (the real-Grist way).
    let columns: Value = http
        .get(format!(
            "{base}/api/docs/{doc}/tables/Attributes/columns?hidden=true"
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let col = |id: &str| {
        columns["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(columns["columns"][0]["id"], "manualSort");
    let helper = col("gristHelper_Display");
    assert_eq!(helper["fields"]["formula"], "$anchor.noun");
    assert_eq!(
        col("anchor")["fields"]["displayCol"],
        helper["fields"]["colRef"]
    );
    let noun_ref = {
        let anchors: Value = http
            .get(format!("{base}/api/docs/{doc}/tables/Anchors/columns"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        anchors["columns"][0]["fields"]["colRef"].clone()
    };
    assert_eq!(col("anchor")["fields"]["visibleCol"], noun_ref);
    let others_ref = col("others")["fields"]["colRef"].clone();
    let others_table_ref = col("others")["fields"]["parentId"].clone();
    let (status, _) = send_json(
        &http,
        Method::POST,
        format!("{base}/api/docs/{doc}/apply"),
        json!([
            ["UpdateRecord", "_grist_Tables_column", others_ref, {"visibleCol": noun_ref}],
            ["SetDisplayFormula", "Attributes", null, others_ref, "$others.noun"],
        ]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(others_table_ref.as_i64().is_some_and(|r| r > 0));

    let csv =
        |header: &str| format!("{base}/api/docs/{doc}/download/csv?tableId=Attributes{header}");
    let (status, labels) = get_text(&http, csv("")).await;
    assert_eq!(status, 200);
    assert_eq!(
        labels,
        "name,anchor,raw,others,on,since,nounCopy\n\
         person_id,person,Anchors[1],\"person, \"\"interest, hobby\"\"\",true,2024-01-15,person\n\
         blank,,,,false,,\n"
    );
    let (_, col_ids) = get_text(&http, csv("&header=colId")).await;
    assert_eq!(
        col_ids.lines().next(),
        Some("name,gristHelper_Display,raw,gristHelper_Display2,on,since,nounCopy")
    );
    let (_, anchors) = get_text(
        &http,
        format!("{base}/api/docs/{doc}/download/csv?tableId=Anchors"),
    )
    .await;
    assert_eq!(anchors, "noun,Weight\nperson,0.5\n\"interest, hobby\",0\n");

    // Update and read back as records.
    let (status, _) = send_json(
        &http,
        Method::PATCH,
        format!("{base}/api/docs/{doc}/tables/Anchors/records"),
        json!({"records": [{"id": 2, "fields": {"noun": "interest"}}]}),
    )
    .await;
    assert_eq!(status, 200);
    let recs: Value = http
        .get(format!("{base}/api/docs/{doc}/tables/Attributes/records"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(recs["records"][0]["fields"]["nounCopy"], "person");
    assert_eq!(recs["records"][0]["fields"]["others"], json!(["L", 1, 2]));
    assert!(recs["records"][0]["fields"]
        .get("gristHelper_Display")
        .is_none());

    // The tables listing has both tables.
    let tables: Value = http
        .get(format!("{base}/api/docs/{doc}/tables"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(tables["tables"].as_array().map(Vec::len), Some(2));
    running.shutdown().await;
}
