//! Mistakes in the data model that do not stop a run but leave nodes, attributes or edges out:
//! an anchor with no `Anchor_<noun>` table, an attribute with no column, a link to an unknown
//! anchor or column. Each names the doc, the table and the row to fix; the graph extract warns
//! of each once per full read, and `etl check` lists them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::model::Model;

/// One mistake, located in the Data Model doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelProblem {
    pub doc: String,
    pub table: &'static str,
    pub row: String,
    pub message: String,
}

impl fmt::Display for ModelProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Data Model doc `{}`, table `{}`, {}: {}",
            self.doc, self.table, self.row, self.message
        )
    }
}

/// The mistakes of `model` against the Data doc: its tables, and the columns of each anchor
/// table (by noun) that could be read.
pub fn problems(
    model: &Model,
    docs: (&str, &str),
    data_tables: &[String],
    anchor_columns: &HashMap<String, Vec<String>>,
) -> Vec<ModelProblem> {
    let (model_doc, data_doc) = docs;
    let mut out = Vec::new();
    let mut problem = |table: &'static str, row: String, message: String| {
        out.push(ModelProblem {
            doc: model_doc.to_string(),
            table,
            row,
            message,
        })
    };
    let table_of: BTreeMap<&str, &str> = data_tables
        .iter()
        .filter_map(|t| model.anchor_of_table(t).map(|noun| (noun, t.as_str())))
        .collect();
    let is_anchor = |noun: &str| model.anchors.iter().any(|a| a == noun);
    for noun in &model.anchors {
        if !table_of.contains_key(noun.as_str()) {
            problem(
                "Anchors",
                format!("the row of noun `{noun}`"),
                format!("the Data doc `{data_doc}` has no table `Anchor_{noun}`, so anchor `{noun}` gives no nodes"),
            );
        }
    }
    let mut owners: Vec<&String> = model.anchor_attributes.keys().collect();
    owners.sort();
    for anchor in owners {
        for attribute in &model.anchor_attributes[anchor] {
            let row = format!("the row of anchor `{anchor}`, attribute `{attribute}`");
            if !is_anchor(anchor) {
                problem(
                    "Anchor_attributes",
                    row,
                    format!("`{anchor}` is not an anchor of the table Anchors"),
                );
                continue;
            }
            let Some(columns) = anchor_columns.get(anchor) else {
                continue;
            };
            if *attribute != format!("{anchor}_id") && !columns.contains(attribute) {
                let table = table_of.get(anchor.as_str()).copied().unwrap_or_default();
                problem(
                    "Anchor_attributes",
                    row,
                    format!("table `{table}` of the Data doc has no column `{attribute}`, so its nodes lack the attribute"),
                );
            }
        }
    }
    for link in &model.links {
        let row = format!("the row of sentence `{}`", link.sentence);
        for (anchor, column, which) in [
            (&link.anchor1, &link.column1, "anchor1"),
            (&link.anchor2, &link.column2, "anchor2"),
        ] {
            if !is_anchor(anchor) {
                problem(
                    "Links",
                    row.clone(),
                    format!("{which} `{anchor}` is not an anchor of the table Anchors, so the link gives no edges"),
                );
                continue;
            }
            let (Some(column), Some(columns)) = (column, anchor_columns.get(anchor)) else {
                continue;
            };
            if !columns.contains(column) {
                let table = table_of.get(anchor.as_str()).copied().unwrap_or_default();
                problem(
                    "Links",
                    row.clone(),
                    format!("{which}_link_column_name `{column}` is not a column of table `{table}`, so it gives no edges"),
                );
            }
        }
    }
    let mut links: Vec<&String> = model.link_attributes.keys().collect();
    links.sort();
    for sentence in links {
        if !model.links.iter().any(|l| &l.sentence == sentence) {
            for attribute in &model.link_attributes[sentence] {
                problem(
                    "Link_attributes",
                    format!("the row of link `{sentence}`, attribute `{attribute}`"),
                    format!("`{sentence}` is not the sentence of a row of the table Links"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::Link;
    use super::*;

    #[test]
    fn each_mistake_names_its_doc_table_and_row() {
        let model = Model {
            anchors: vec!["person".into(), "pet".into()],
            anchor_attributes: HashMap::from([
                ("person".into(), vec!["person_name".into(), "age".into()]),
                ("ghost".into(), vec!["boo".into()]),
            ]),
            links: vec![Link {
                anchor1: "person".into(),
                anchor2: "city".into(),
                sentence: "PERSON_lives_in_CITY".into(),
                column1: Some("home".into()),
                column2: None,
                directed: true,
            }],
            link_attributes: HashMap::from([("NOPE".into(), vec!["since".into()])]),
        };
        let columns = HashMap::from([("person".to_string(), vec!["person_name".to_string()])]);
        let found: Vec<String> =
            problems(&model, ("dm", "data"), &["Anchor_person".into()], &columns)
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(
            found,
            [
                "Data Model doc `dm`, table `Anchors`, the row of noun `pet`: the Data doc `data` has no table `Anchor_pet`, so anchor `pet` gives no nodes",
                "Data Model doc `dm`, table `Anchor_attributes`, the row of anchor `ghost`, attribute `boo`: `ghost` is not an anchor of the table Anchors",
                "Data Model doc `dm`, table `Anchor_attributes`, the row of anchor `person`, attribute `age`: table `Anchor_person` of the Data doc has no column `age`, so its nodes lack the attribute",
                "Data Model doc `dm`, table `Links`, the row of sentence `PERSON_lives_in_CITY`: anchor1_link_column_name `home` is not a column of table `Anchor_person`, so it gives no edges",
                "Data Model doc `dm`, table `Links`, the row of sentence `PERSON_lives_in_CITY`: anchor2 `city` is not an anchor of the table Anchors, so the link gives no edges",
                "Data Model doc `dm`, table `Link_attributes`, the row of link `NOPE`, attribute `since`: `NOPE` is not the sentence of a row of the table Links",
            ]
        );
    }
}
