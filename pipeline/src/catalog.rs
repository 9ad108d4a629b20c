//! The catalog: which implementation each `uses = "..."` names, and how its settings are read.
//!
//! | uses | kind | what |
//! | --- | --- | --- |
//! | `csv.files` | extract | local CSV files, one per output table |
//! | `grist.data_model` | extract | the Data Model doc into the `dm_*` tables |
//! | `grist.graph` | extract | the Data doc into `grist_nodes`/`grist_edges` |
//! | `grist.test_set` | extract | the Test Set doc into `eval_gds` |
//! | `kg.normalize_nodes` | transform | `grist_nodes` into `nodes` |
//! | `kg.normalize_edges` | transform | `grist_edges` into `edges` |
//! | `kg.embed_nodes` | transform | embeddable node attributes into `rag_anchor_embeddings` |
//! | `kg.embed_edges` | transform | embeddable edge attributes into `rag_edge_embeddings` |
//! | `kg.graph_anchor_indexes` | transform | graph indexes per anchor, recorded in `memgraph_anchor_indexes` |
//! | `kg.graph_link_indexes` | transform | graph indexes per link, recorded in `memgraph_link_indexes` |
//! | `kg.graph_nodes` | sink | `nodes` into the graph |
//! | `kg.graph_edges` | sink | `edges` into the graph |

use std::sync::Arc;

use etl_core::config::{Settings, StepConfig};
use etl_core::dag::{Built, Catalog};
use etl_core::step::{BuiltStep, StepImpl};
use graph::steps::{Elements, GraphSink, IndexStep};

use crate::steps::{csv_files, normalize};
use embeddings::steps::{EmbedStep, Target};
use etl_core::step::roles::ROWS;
use grist::steps::connection::{self as grist_connection, Remembering};
use grist::steps::{data_model, graph as grist_graph, test_set};

/// The catalog. Steps that keep state of their own in the database (the embedding cache) get its
/// URL from here.
#[derive(Debug, Default)]
pub struct EtlCatalog {
    pub database_url: Option<String>,
}

fn extract(x: impl etl_core::Extract + 'static, version: u32) -> Built {
    Built::Step(BuiltStep {
        implementation: StepImpl::Extract(Arc::new(x)),
        version,
    })
}

fn transform(t: impl etl_core::Transform + 'static, version: u32) -> Built {
    Built::Step(BuiltStep {
        implementation: StepImpl::Transform(Arc::new(t)),
        version,
    })
}

/// The table the config binds to `role` (by name, or the first of a list for the first role);
/// compiling the pipeline reports a missing binding.
pub fn bound_table(step: &StepConfig, role: &str) -> String {
    step.inputs
        .iter()
        .find(|i| i.role.as_deref() == Some(role))
        .or_else(|| step.inputs.first().filter(|i| i.role.is_none()))
        .map(|i| i.table.clone())
        .unwrap_or_default()
}

/// Builds one implementation from its step's configuration.
type Build = fn(&EtlCatalog, &StepConfig, &mut Settings) -> Built;

/// Every implementation, registered once: its name (`uses = "..."`) and how it is built.
const IMPLEMENTATIONS: &[(&str, Build)] = &[
    ("csv.files", |_, step, settings| {
        extract(
            csv_files::CsvFiles::from_settings(&step.outputs, settings),
            1,
        )
    }),
    ("grist.data_model", build_data_model),
    ("grist.graph", build_graph),
    ("grist.test_set", build_test_set),
    ("kg.normalize_nodes", |_, _, _| {
        transform(normalize::Normalize::NODES, 1)
    }),
    ("kg.normalize_edges", |_, _, _| {
        transform(normalize::Normalize::EDGES, 1)
    }),
    ("kg.embed_nodes", |c, step, settings| {
        build_embed(c, step, settings, Target::Nodes)
    }),
    ("kg.embed_edges", |c, step, settings| {
        build_embed(c, step, settings, Target::Edges)
    }),
    ("kg.graph_anchor_indexes", |_, _, settings| {
        build_indexes(settings, true)
    }),
    ("kg.graph_link_indexes", |_, _, settings| {
        build_indexes(settings, false)
    }),
    ("kg.graph_nodes", |_, step, settings| {
        let rows = bound_table(step, ROWS);
        transform(GraphSink::from_settings(Elements::Nodes, rows, settings), 1)
    }),
    ("kg.graph_edges", |_, step, settings| {
        let rows = bound_table(step, ROWS);
        transform(GraphSink::from_settings(Elements::Edges, rows, settings), 1)
    }),
];

fn build_data_model(_: &EtlCatalog, _: &StepConfig, settings: &mut Settings) -> Built {
    let client = grist_connection::client(settings);
    let doc = settings.string("doc_id").unwrap_or_default();
    let top_n = settings.string_or("embed_top_n_default", "");
    let embed_top_n_default = match top_n.trim() {
        "" => None,
        t => match t.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                settings.step_error(
                    "settings.embed_top_n_default",
                    "expected a whole number (EMBEDDINGS_TOP_N)",
                );
                return Built::Invalid;
            }
        },
    };
    extract(
        Remembering(data_model::DataModelExtract {
            client,
            doc,
            embed_top_n_default,
        }),
        2,
    )
}

fn build_graph(_: &EtlCatalog, _: &StepConfig, settings: &mut Settings) -> Built {
    let client = grist_connection::client(settings);
    let data_model_doc = settings.string("data_model_doc_id").unwrap_or_default();
    let data_doc = settings.string("data_doc_id").unwrap_or_default();
    extract(
        Remembering(grist_graph::GraphExtract {
            client,
            data_model_doc,
            data_doc,
        }),
        // 2: one typing of cells, link rows win over reference columns. A new version forgets
        // the remembered reads, so an unchanged source is read again with the new rules.
        2,
    )
}

fn build_test_set(_: &EtlCatalog, _: &StepConfig, settings: &mut Settings) -> Built {
    let client = grist_connection::client(settings);
    let doc = settings.string("doc_id").unwrap_or_default();
    let table = settings.string_or("table", "Gds");
    extract(
        Remembering(test_set::TestSetExtract { client, doc, table }),
        2,
    )
}

fn build_embed(
    c: &EtlCatalog,
    step: &StepConfig,
    settings: &mut Settings,
    target: Target,
) -> Built {
    let output = step.outputs.first().cloned().unwrap_or_default();
    let embed = EmbedStep::from_settings(target, output, settings, c.database_url.clone());
    transform(embed, 1)
}

fn build_indexes(settings: &mut Settings, anchors: bool) -> Built {
    transform(IndexStep::from_settings(anchors, settings), 1)
}

impl Catalog for EtlCatalog {
    fn build(&self, step: &StepConfig, settings: &mut Settings) -> Built {
        match IMPLEMENTATIONS.iter().find(|(name, _)| *name == step.uses) {
            Some((_, build)) => build(self, step, settings),
            None => Built::Unknown,
        }
    }

    fn names(&self) -> Vec<String> {
        IMPLEMENTATIONS
            .iter()
            .map(|(name, _)| name.to_string())
            .collect()
    }
}
