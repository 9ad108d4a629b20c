//! The graph as cypherl (one Cypher statement per line, as Memgraph's own dumps are): index
//! statements, then nodes, then edges; and loading such a file back. Export streams the graph
//! page by page (flat in memory, whatever its size). Every name goes through
//! [`crate::cypher::quote`]; every value is written as a Cypher literal by [`literal`], which
//! escapes whatever a string holds, so a file line is exactly one statement.

use std::io::{BufRead, Write};

use serde_json::Value as J;

use crate::bolt;
use crate::client::{GraphClient, GraphError, Statement};
use crate::cypher::{check_name, quote};

/// Nodes read per round trip, and per line of the file.
const PAGE: usize = 2_000;

/// Edges per line of the file.
const EDGES_PER_LINE: usize = 1_000;

/// What an export or a restore went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DumpCounts {
    pub indexes: u64,
    pub nodes: u64,
    pub edges: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("writing the dump: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the graph is not empty: restore loads into an empty graph (use --force to load on top)"
    )]
    NotEmpty,
    #[error("line {line}: {why}")]
    BadLine { line: usize, why: String },
    #[error("the file holds {} nodes and {} edges, but the graph now holds {nodes} and {edges}: some lines made nothing", promised.0, promised.1)]
    Short {
        nodes: i64,
        edges: i64,
        promised: (u64, u64),
    },
    #[error("the file does not end with the line a complete export ends with: it was cut short (use --force to load what it has)")]
    Incomplete,
}

/// A JSON value as a Cypher literal. Strings are single-quoted with `\\`, `\'` and every
/// control character escaped; map keys are quoted names.
pub fn literal(v: &J) -> String {
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            let text = f.to_string();
            if text.contains(['.', 'e', 'E']) {
                text
            } else {
                format!("{text}.0")
            }
        }
        J::Number(n) => n.to_string(),
        J::String(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
        J::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        J::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{}: {}", quote(k), literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Writes the graph to `out`: the index statements `indexes` gives for its labels and edge
/// types; then the nodes, a page of one label per line (`UNWIND [...] CREATE`); then the
/// edges, per page of source nodes one line per edge type and end label (`UNWIND [...]
/// MATCH` both ends by id, `CREATE`); then a last line saying the file is complete.
pub async fn export(
    graph: &GraphClient,
    indexes: impl Fn(Element<'_>) -> Vec<String>,
    out: &mut impl Write,
) -> Result<DumpCounts, DumpError> {
    let mut counts = DumpCounts::default();
    let labels: Vec<String> = graph.node_counts().await?.into_keys().collect();
    let types: Vec<String> = graph.edge_counts().await?.into_keys().collect();
    for statement in labels
        .iter()
        .flat_map(|l| indexes(Element::Label(l)))
        .chain(types.iter().flat_map(|t| indexes(Element::EdgeType(t))))
    {
        writeln!(out, "{statement};")?;
        counts.indexes += 1;
    }
    // Every node first, then every edge: an edge's line finds both its ends already loaded.
    let labels: Vec<&String> = labels
        .iter()
        .filter(|l| check_name(l, "label").is_ok())
        .collect();
    for label in &labels {
        let mut after = String::new();
        loop {
            let page = node_page(graph, label, &after, true).await?;
            if !page.is_empty() {
                let props: Vec<String> = page.iter().map(|row| literal(&row[1])).collect();
                writeln!(
                    out,
                    "UNWIND [{}] AS p CREATE (n:{}) SET n = p;",
                    props.join(", "),
                    quote(label)
                )?;
                counts.nodes += page.len() as u64;
            }
            match next_after(&page) {
                Some(last) => after = last,
                None => break,
            }
        }
    }
    for label in &labels {
        let mut after = String::new();
        loop {
            let page = node_page(graph, label, &after, false).await?;
            let ids: Vec<J> = page.iter().map(|r| r[0].clone()).collect();
            counts.edges += export_edges(graph, label, &ids, out).await?;
            match next_after(&page) {
                Some(last) => after = last,
                None => break,
            }
        }
    }
    // The last line says the file is complete, and what it holds (restore checks both).
    writeln!(
        out,
        "{TRAILER} {} nodes, {} edges",
        counts.nodes, counts.edges
    )?;
    Ok(counts)
}

/// The first words of a complete export's last line.
const TRAILER: &str = "// etl graph export complete:";

/// One page of the nodes of `label` with an id after `after`, in id order: `[id]`, or
/// `[id, properties]` when `props`.
async fn node_page(
    graph: &GraphClient,
    label: &str,
    after: &str,
    props: bool,
) -> Result<Vec<Vec<J>>, DumpError> {
    let (ret, columns): (&str, &[&str]) = if props {
        (", properties(n) AS props", &["id", "props"])
    } else {
        ("", &["id"])
    };
    Ok(graph
        .rows_with(
            &format!(
                "MATCH (n:{}) WHERE n.id > $after RETURN n.id AS id{ret} ORDER BY n.id LIMIT {PAGE}",
                quote(label)
            ),
            vec![("after", bolt::string(after))],
            columns,
        )
        .await?)
}

/// The id to page on from, when `page` was full.
fn next_after(page: &[Vec<J>]) -> Option<String> {
    match page.last().and_then(|r| r[0].as_str()) {
        Some(last) if page.len() == PAGE => Some(last.to_string()),
        _ => None,
    }
}

/// A label or an edge type, to ask for its index statements.
#[derive(Debug, Clone, Copy)]
pub enum Element<'a> {
    Label(&'a str),
    EdgeType(&'a str),
}

/// The edges leaving the nodes `ids` of `label`, one line each.
async fn export_edges(
    graph: &GraphClient,
    label: &str,
    ids: &[J],
    out: &mut impl Write,
) -> Result<u64, DumpError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let rows = graph
        .rows_with(
            &format!(
                "UNWIND $ids AS id MATCH (a:{} {{id: id}})-[r]->(b)
                 RETURN a.id AS from, type(r) AS type, labels(b) AS to_labels, b.id AS to,
                        properties(r) AS props",
                quote(label)
            ),
            vec![("ids", bolt::list(ids.iter().map(bolt::from_json).collect()))],
            &["from", "type", "to_labels", "to", "props"],
        )
        .await?;
    // One line per edge type and end label: the ends matched by id, the properties set.
    let mut groups: std::collections::BTreeMap<(String, String), Vec<String>> =
        std::collections::BTreeMap::new();
    for r in rows {
        let (Some(edge_type), Some(to_label)) = (
            r[1].as_str(),
            r[2].as_array()
                .and_then(|l| l.first())
                .and_then(|l| l.as_str()),
        ) else {
            continue;
        };
        groups
            .entry((edge_type.to_string(), to_label.to_string()))
            .or_default()
            .push(format!(
                "{{`f`: {}, `t`: {}, `p`: {}}}",
                literal(&r[0]),
                literal(&r[3]),
                literal(&r[4])
            ));
    }
    let mut n = 0;
    for ((edge_type, to_label), edges) in groups {
        for line in edges.chunks(EDGES_PER_LINE) {
            writeln!(
                out,
                "UNWIND [{}] AS e MATCH (a:{} {{id: e.f}}), (b:{} {{id: e.t}}) CREATE (a)-[r:{}]->(b) SET r = e.p;",
                line.join(", "),
                quote(label),
                quote(&to_label),
                quote(&edge_type)
            )?;
            n += line.len() as u64;
        }
    }
    Ok(n)
}

/// Loads a cypherl file into the graph, a few lines per transaction: index statements one by
/// one in auto-commit (servers refuse them in a transaction), then nodes before edges as the
/// file has them. Refuses a non-empty graph, and checks that the graph then holds what the
/// file's last line says, unless `force`.
pub async fn restore(
    graph: &GraphClient,
    input: impl BufRead,
    force: bool,
) -> Result<DumpCounts, DumpError> {
    if !force && graph.has_nodes().await? {
        return Err(DumpError::NotEmpty);
    }
    let mut counts = DumpCounts::default();
    let mut promised: Option<(u64, u64)> = None;
    let mut batch: Vec<Statement> = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if let Some(rest) = line.strip_prefix(TRAILER) {
            promised = parse_trailer(rest);
            continue;
        }
        let statement = line.trim().trim_end_matches(';').trim();
        if statement.is_empty() || statement.starts_with("//") {
            continue;
        }
        if promised.is_some() {
            return Err(DumpError::BadLine {
                line: i + 1,
                why: "a statement after the line that ends the export".into(),
            });
        }
        if [
            "CREATE INDEX",
            "CREATE EDGE INDEX",
            "CREATE CONSTRAINT",
            "CREATE TEXT INDEX",
        ]
        .iter()
        .any(|p| statement.starts_with(p))
        {
            graph.ddl(statement).await?;
            counts.indexes += 1;
        } else if statement.starts_with("UNWIND [")
            || statement.starts_with("CREATE (")
            || statement.starts_with("MATCH (")
        {
            batch.push((statement.to_string(), Vec::new()));
        } else {
            return Err(DumpError::BadLine {
                line: i + 1,
                why: "not a statement `etl graph export` writes (index, nodes or edges)".into(),
            });
        }
        // Lines hold up to a page of elements each: a few lines per transaction.
        if batch.len() >= 4 {
            graph.write("restoring the graph", &batch).await?;
            batch.clear();
        }
    }
    graph.write("restoring the graph", &batch).await?;
    let nodes: i64 = graph.node_counts().await?.values().sum();
    let edges: i64 = graph.edge_counts().await?.values().sum();
    counts.nodes = nodes as u64;
    counts.edges = edges as u64;
    match promised {
        None if !force => Err(DumpError::Incomplete),
        // Into an empty graph, every element of the file is there: an edge whose end was
        // missing would have made nothing, silently.
        Some((n, e)) if !force && (n, e) != (counts.nodes, counts.edges) => Err(DumpError::Short {
            nodes,
            edges,
            promised: (n, e),
        }),
        _ => Ok(counts),
    }
}

/// `N nodes, M edges` from a complete export's last line.
fn parse_trailer(rest: &str) -> Option<(u64, u64)> {
    let mut words = rest.split_whitespace();
    let nodes = words.next()?.parse().ok()?;
    words.next();
    let edges = words.next()?.parse().ok()?;
    Some((nodes, edges))
}

/// Empties the graph, `PAGE` nodes (and their edges) per transaction.
pub async fn empty(graph: &GraphClient) -> Result<(), DumpError> {
    while graph.has_nodes().await? {
        graph
            .write(
                "emptying the graph",
                &[(
                    format!("MATCH (n) WITH n LIMIT {PAGE} DETACH DELETE n"),
                    Vec::new(),
                )],
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_escape_whatever_a_string_holds() {
        assert_eq!(literal(&json!("it's")), r"'it\'s'");
        assert_eq!(literal(&json!("a\\b")), r"'a\\b'");
        assert_eq!(literal(&json!("line\nnext\u{1}")), r"'line\nnext\u0001'");
        assert_eq!(literal(&json!(3)), "3");
        assert_eq!(literal(&json!(2.0)), "2.0");
        assert_eq!(literal(&json!(true)), "true");
        assert_eq!(
            literal(&json!({"we`ird": [1, "x"], "gone": null})),
            "{`we``ird`: [1, 'x']}"
        );
    }
}
