//! `/lineage?node=<id>`: a node id's lineage as a page. Per table that holds it: the row (its
//! columns, vectors left out), when it was created and last changed and by which run (linked),
//! and, for an extract's table, where in the source it was read; then its edges both ways,
//! each linking to the node at its other end; and whether the graph holds it.

use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::layout::{page as frame, run_link, ticks};
use crate::lineage::{lineage, StoredRow, TableRows};
use crate::{Site, WebError};

pub async fn page(site: &Site, node: &str) -> Result<Markup, WebError> {
    if node.is_empty() {
        return Ok(frame(
            "lineage",
            html! {
                h1 { "Lineage" }
                p { "Type a node id in the box above: every row the pipeline holds of it, and where it came from." }
            },
        ));
    }
    let l = lineage(
        &site.pool,
        &site.pipeline,
        &site.lineage,
        site.graph.as_deref(),
        node,
    )
    .await?;
    Ok(frame(
        &format!("lineage of {node}"),
        html! {
            h1 { "Lineage of " code #node-id { (node) } }
            @if l.is_empty() {
                p #not-found { "No table of the pipeline holds node id " code { (node) } ", now or as a deleted row." }
            } @else {
                @if !l.in_graph.is_empty() {
                    h2 { "In the graph" }
                    ul #in-graph {
                        @for (label, held) in &l.in_graph {
                            li {
                                code { (label) } ": "
                                @match held {
                                    Ok(true) => span.outcome.succeeded { "yes" },
                                    Ok(false) => span.outcome.failed { "no" },
                                    Err(e) => span.muted { "cannot say (" (e) ")" },
                                }
                            }
                        }
                    }
                }
                h2 { "Rows" }
                @for t in l.nodes.iter().filter(|t| !t.rows.is_empty()) {
                    (table_section(t, None))
                }
                @let edges: Vec<&TableRows> = l.edges.iter().filter(|t| !t.rows.is_empty()).collect();
                @if !edges.is_empty() {
                    h2 { "Edges" }
                    @for t in edges { (table_section(t, Some(node))) }
                }
            }
        },
    ))
}

/// One table's rows. For edges, `node` is the page's node: the other end is linked.
fn table_section(t: &TableRows, node: Option<&str>) -> Markup {
    html! {
        section.table data-table=(t.table) {
            h3 {
                "table " code { (t.table) }
                @if let Some(w) = &t.writer { span.muted { " written by step " code { (w) } } }
            }
            table {
                thead { tr {
                    th { "key" } th { "created" } th { "last changed" } th { "row" }
                } }
                tbody { @for r in &t.rows { (row(r, node)) } }
            }
            @if t.truncated { p.muted { "More rows than shown." } }
        }
    }
}

fn row(r: &StoredRow, node: Option<&str>) -> Markup {
    html! {
        tr.row {
            td {
                @for (i, part) in r.key.iter().enumerate() {
                    @if i > 0 { " · " }
                    @if node.is_some() && i < 2 && Some(part.as_str()) != node {
                        a href={"/lineage?node=" (urlencode(part))} { code { (part) } }
                    } @else {
                        code { (part) }
                    }
                }
                @if let Some(o) = &r.origin {
                    div.origin {
                        "from " (ticks(&o.source)) ", table "
                        @if o.table.contains('`') { (ticks(&o.table)) } @else { code { (o.table) } }
                        ", " (ticks(&o.row))
                        @if let Some(url) = &o.url { " (" a href=(url) { "open" } ")" }
                    }
                }
            }
            td.created { (r.created) br; (run_link(r.created_by)) }
            td.changed { (r.changed) br; (run_link(r.changed_by)) }
            td {
                @match &r.row {
                    Some(m) => pre { (pretty(&Value::Object(m.clone()))) },
                    None => span.outcome.failed { "deleted " (r.deleted.as_deref().unwrap_or("")) },
                }
            }
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved characters.
fn urlencode(s: &str) -> String {
    const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}
