//! `etl search TEXT`: a semantic search over `rag_anchor_embeddings`, with the model and settings
//! of the `kg.embed_nodes` step: the nearest texts by cosine distance, best first.

use std::path::Path;

use sqlx::Row as _;

use crate::exit::Exit;
use embeddings::steps::{EmbedStep, Target};

pub async fn search(config: &Path, text: &str, limit: u32) -> Exit {
    // The query must be embedded exactly like the stored texts: same step settings.
    let pipeline = match crate::load::load(config) {
        Ok(p) => p,
        Err(e) => {
            eprint!("error: {e}");
            return Exit::Config;
        }
    };
    let Some(url) = crate::load::database_url(&pipeline) else {
        eprintln!("error: no database: set DB_CONN_URI (or [database] url in the configuration)");
        return Exit::Config;
    };
    let Some((step, mut settings)) = crate::load::step_settings(config, &["kg.embed_nodes"])
        .into_iter()
        .next()
    else {
        eprintln!(
            "error: {} has no step using kg.embed_nodes: nothing to search",
            config.display()
        );
        return Exit::Config;
    };
    let output = step.outputs.first().cloned().unwrap_or_default();
    let embed = EmbedStep::from_settings(
        Target::Nodes,
        output.clone(),
        &mut settings,
        Some(url.clone()),
    );
    let query = match embed.embed_query(text).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            return Exit::Service;
        }
    };
    let literal = format!(
        "[{}]",
        query
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let pool = match etl_postgres::namespace::pool_options().connect(&url).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: connecting to Postgres (check DB_CONN_URI): {e}");
            return Exit::Service;
        }
    };
    let sql = format!(
        "SELECT node_type, node_id, attribute_name, attribute_value, 1 - (embedding <=> $1::vector) AS similarity
           FROM {} ORDER BY embedding <=> $1::vector LIMIT $2",
        etl_postgres::ident::quote_ident(&output)
    );
    let rows = sqlx::query(&sql)
        .bind(&literal)
        .bind(i64::from(limit))
        .fetch_all(&pool)
        .await;
    match rows {
        Ok(rows) => {
            println!(
                "{:>10}  {:<10} {:<14} {:<16} text",
                "similarity", "type", "node", "attribute"
            );
            for r in rows {
                println!(
                    "{:>10.3}  {:<10} {:<14} {:<16} {}",
                    r.get::<f64, _>("similarity"),
                    r.get::<String, _>("node_type"),
                    r.get::<String, _>("node_id"),
                    r.get::<String, _>("attribute_name"),
                    r.get::<Option<String>, _>("attribute_value")
                        .unwrap_or_default()
                );
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: searching {output}: {e}");
            Exit::Service
        }
    }
}
