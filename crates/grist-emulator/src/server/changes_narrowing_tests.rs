//! The narrowed comparison ([`rows_that_can_differ`]) against the whole one. Over random
//! edits of the recorded `edge-cases` doc (cells that formulas and display helpers read, rows
//! added, rows removed with the references to them cleared, a formula changed, a column added
//! and removed; in half the runs, formulas that read a table back through another one),
//! comparing every state of the history with HEAD must give the same answer both ways, capped
//! or not; and the narrowed way must really have been taken.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{changes_with, Narrowing};
use crate::docs::Docs;
use crate::history::State;
use crate::server::narrowing::rows_that_can_differ;

const DOC: &str = "edge-cases";

fn edge_cases() -> Docs {
    let dir = match std::env::var_os("ETL_GRIST_RECORDED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/grist/recorded"),
    };
    let docs = crate::load::load_dirs(&[dir.join(DOC)]).expect("the recorded edge-cases doc");
    Docs::new(docs)
}

fn ids(docs: &Docs, table: &str) -> Vec<i64> {
    docs.records(DOC, table)
        .expect("records")
        .iter()
        .map(|r| r.id)
        .collect()
}

/// Formulas that read People back through Projects: People.ProjLeadAge is `$Proj.LeadAge`, and
/// Projects.LeadAge is `$Lead.Age`, so a person's cell can change when another person's age does.
fn reading_back() -> Value {
    json!([
        ["AddColumn", "Projects", "LeadAge", {"type": "Any", "isFormula": true, "formula": "$Lead.Age"}],
        ["AddColumn", "People", "Proj", {"type": "Ref:Projects"}],
        ["AddColumn", "People", "ProjLeadAge", {"type": "Any", "isFormula": true, "formula": "$Proj.LeadAge"}],
    ])
}

fn edit(docs: &Docs, actions: &Value) {
    docs.with_doc_mut(DOC, |d| crate::seed::apply_actions(d, actions))
        .unwrap_or_else(|e| panic!("{actions}: {e}"));
}

fn pick(rng: &mut StdRng, ids: &[i64]) -> i64 {
    ids[rng.gen_range(0..ids.len())]
}

/// One random edit, as `/apply` actions.
fn random_edit(rng: &mut StdRng, docs: &Docs, step: usize, back: bool) -> Value {
    let people = ids(docs, "People");
    let person = pick(rng, &people);
    let word = format!("w{step}");
    match rng.gen_range(0..11) {
        10 if back => {
            json!([["UpdateRecord", "People", person, {"Proj": pick(rng, &ids(docs, "Projects"))}]])
        }
        // Read by Projects.LeadName and by Tasks' display helpers.
        0 => json!([["UpdateRecord", "People", person, {"Name": word}]]),
        1 => json!([["UpdateRecord", "People", person, {"Age": step}]]),
        2 => json!([["AddRecord", "People", null, {"Name": word}]]),
        // Clears the references to it in Projects and Tasks.
        3 if people.len() > 2 => json!([["RemoveRecord", "People", person]]),
        4 => {
            json!([["UpdateRecord", "Projects", pick(rng, &ids(docs, "Projects")), {"Lead": person}]])
        }
        5 => {
            json!([["UpdateRecord", "Tasks", pick(rng, &ids(docs, "Tasks")), {"OwnerDisp": person}]])
        }
        6 => json!([["AddRecord", "Tasks", null, {"What": word, "HelpersDisp": ["L", person]}]]),
        7 => {
            json!([["BulkUpdateRecord", "Projects", ids(docs, "Projects"), {"Budget": ids(docs, "Projects").iter().map(|i| i * step as i64).collect::<Vec<_>>()}]])
        }
        8 => {
            let projects = docs.table(DOC, "Projects").expect("Projects");
            let col = projects.column("LeadName").expect("LeadName");
            let formula = ["$Lead.Name", "$Lead.Email"][step % 2];
            json!([["UpdateRecord", "_grist_Tables_column", col.col_ref(), {"formula": formula}]])
        }
        _ if step % 2 == 0 => json!([["AddColumn", "People", "Extra", {"type": "Text"}]]),
        _ => json!([["RemoveColumn", "People", "Extra"]]),
    }
}

fn states(docs: &Docs) -> (Vec<State>, State) {
    docs.with_history(DOC, |h| {
        let all: Vec<State> = h
            .newest_first()
            .iter()
            .filter_map(|(_, hash)| h.find(hash).cloned())
            .collect();
        (all, h.head().clone())
    })
    .expect("history")
}

#[test]
fn a_narrowed_comparison_answers_as_the_whole_one_over_random_edits() {
    let mut narrowed_tables = 0;
    for seed in 0..6u64 {
        let docs = edge_cases();
        let back = seed % 2 == 1;
        if back {
            // Every person reads the first project's lead's age.
            edit(&docs, &reading_back());
            let (people, projects) = (ids(&docs, "People"), ids(&docs, "Projects"));
            let proj: Vec<i64> = people.iter().map(|_| projects[0]).collect();
            edit(
                &docs,
                &json!([
                    ["UpdateRecord", "Projects", projects[0], {"Lead": people[0]}],
                    ["BulkUpdateRecord", "People", people, {"Proj": proj}],
                ]),
            );
        }
        let mut rng = StdRng::seed_from_u64(seed);
        for step in 0..16 {
            let edit = random_edit(&mut rng, &docs, step, back);
            let applied = docs.with_doc_mut(DOC, |d| crate::seed::apply_actions(d, &edit));
            // Only a column added twice, or removed when gone, is refused (and changes nothing).
            let column_edit = edit[0][0] == "AddColumn" || edit[0][0] == "RemoveColumn";
            assert!(applied.is_ok() || column_edit, "{edit}: {applied:?}");
            let (all, head) = states(&docs);
            for left in &all {
                for cap in [None, Some(2)] {
                    assert_eq!(
                        changes_with(&left.doc, &head.doc, cap, Narrowing::ByStoredRecords),
                        changes_with(&left.doc, &head.doc, cap, Narrowing::EveryRow),
                        "seed {seed}, edit {step} ({edit}): state {} against HEAD, maxRows {cap:?}",
                        left.n
                    );
                }
                for rt in &head.doc.tables {
                    if let Some(lt) = left.doc.table(&rt.id) {
                        let narrowed = rows_that_can_differ(&left.doc, lt, &head.doc, rt);
                        narrowed_tables += usize::from(narrowed.is_some() && left.n != head.n);
                    }
                }
            }
        }
    }
    assert!(
        narrowed_tables > 20,
        "the narrowed way was taken for only {narrowed_tables} tables"
    );
}

#[test]
fn a_row_stored_alike_is_not_computed_when_nothing_it_reads_changed() {
    let docs = edge_cases();
    let tasks = ids(&docs, "Tasks");
    edit(
        &docs,
        &json!([["UpdateRecord", "Tasks", tasks[0], {"What": "changed"}]]),
    );
    let (all, head) = states(&docs);
    let first = all.last().expect("the loaded state");
    let lt = first.doc.table("Tasks").expect("Tasks");
    let rt = head.doc.table("Tasks").expect("Tasks");
    assert_eq!(
        rows_that_can_differ(&first.doc, lt, &head.doc, rt),
        Some([tasks[0]].into_iter().collect())
    );
    // A cell Tasks' display helpers read changes: every row may differ.
    let people = ids(&docs, "People");
    edit(
        &docs,
        &json!([["UpdateRecord", "People", people[0], {"Name": "renamed"}]]),
    );
    let (_, head) = states(&docs);
    let rt = head.doc.table("Tasks").expect("Tasks");
    assert_eq!(rows_that_can_differ(&first.doc, lt, &head.doc, rt), None);
}

#[test]
fn a_cell_reading_its_table_back_through_another_changed_though_its_row_did_not() {
    let docs = edge_cases();
    edit(&docs, &reading_back());
    let (people, projects) = (ids(&docs, "People"), ids(&docs, "Projects"));
    let (reader, lead) = (people[0], people[1]);
    edit(
        &docs,
        &json!([
            ["UpdateRecord", "Projects", projects[0], {"Lead": lead}],
            ["UpdateRecord", "People", reader, {"Proj": projects[0]}],
        ]),
    );
    let (_, before) = states(&docs);
    edit(
        &docs,
        &json!([["UpdateRecord", "People", lead, {"Age": 99}]]),
    );
    let (_, head) = states(&docs);
    let answer = changes_with(&before.doc, &head.doc, None, Narrowing::ByStoredRecords);
    let people_delta = &answer["tableDeltas"]["People"];
    assert_eq!(
        people_delta["updateRows"],
        json!([reader, lead]),
        "the reader's ProjLeadAge changed with the lead's age: {people_delta}"
    );
    assert_eq!(
        people_delta["columnDeltas"]["ProjLeadAge"][reader.to_string()][1],
        json!([99])
    );
}
