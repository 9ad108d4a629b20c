//! The frame every page shares: title, a header with the way back and the node search, and a
//! few styles (no framework, no script). Values are escaped by maud.

use maud::{html, Markup, DOCTYPE};

const STYLE: &str = "
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 0 1rem 3rem; color: #1d1d1f; }
header { display: flex; gap: 1.5rem; align-items: center; border-bottom: 1px solid #ddd; padding: .6rem 0; margin-bottom: 1rem; }
header a.home { font-weight: 600; text-decoration: none; color: inherit; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.2rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; background: #f6f6f6; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 13px ui-monospace, monospace; }
pre { background: #f6f6f6; padding: .4rem .6rem; margin: 0; white-space: pre-wrap; word-break: break-all; }
.outcome { font-weight: 600; }
.succeeded { color: #137333; } .keys_failed, .interrupted, .locked { color: #a15c00; }
.failed, .skipped, .died { color: #b3261e; }
.muted { color: #666; }
form input[type=text] { width: 16rem; padding: .2rem .4rem; }
";

/// A page: `title` in the tab, `body` under the header.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "etl: " (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.home href="/" { "etl" }
                    a href="/" { "runs" }
                    a href="/metrics" { "metrics" }
                    span.pipeline { "pipeline " strong { (etl_postgres::namespace::current().label()) } }
                    form #search method="get" action="/lineage" {
                        label for="node" { "node id " }
                        input #node type="text" name="node" placeholder="e.g. person:1";
                        " "
                        button type="submit" { "lineage" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An outcome word, coloured by what it means.
pub fn outcome(word: Option<&str>) -> Markup {
    let word = word.unwrap_or("died");
    let text = if word == "died" {
        "running or died"
    } else {
        word
    };
    html! { span class={"outcome " (word)} { (text) } }
}

/// A link to a run's page, or a dash.
pub fn run_link(run: Option<i64>) -> Markup {
    html! {
        @match run {
            Some(id) => a href={"/runs/" (id)} { "run " (id) },
            None => span.muted { "before the history" },
        }
    }
}

/// Text whose `backticked` parts are names: shown as code.
pub fn ticks(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}
