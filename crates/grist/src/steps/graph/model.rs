//! What the graph extract needs from the data model: the anchors with their attributes, the
//! links with theirs, and which Data doc table holds which anchor or link.

use std::collections::{BTreeMap, HashMap};

use etl_core::{Row, Value};

/// A link of the data model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub anchor1: String,
    pub anchor2: String,
    pub sentence: String,
    pub column1: Option<String>,
    pub column2: Option<String>,
    pub directed: bool,
}

/// The data model, as the graph reads it.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub anchors: Vec<String>,
    pub anchor_attributes: HashMap<String, Vec<String>>,
    pub links: Vec<Link>,
    pub link_attributes: HashMap<String, Vec<String>>,
}

fn text(row: &Row, column: &str) -> Option<String> {
    row.text(column)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Model {
    /// The model from the rows of the Data Model doc's tables (as `data_model::read` gives
    /// them, by Grist table).
    pub fn from_rows(tables: &BTreeMap<&'static str, Vec<Row>>) -> Model {
        let mut m = Model::default();
        for r in tables.get("Anchors").into_iter().flatten() {
            if let Some(noun) = text(r, "noun") {
                m.anchors.push(noun);
            }
        }
        for (table, owner, into) in [
            ("Anchor_attributes", "anchor", &mut m.anchor_attributes),
            ("Link_attributes", "link", &mut m.link_attributes),
        ] {
            for r in tables.get(table).into_iter().flatten() {
                if let (Some(o), Some(a)) = (text(r, owner), text(r, "attribute_name")) {
                    into.entry(o).or_default().push(a);
                }
            }
        }
        for r in tables.get("Links").into_iter().flatten() {
            if let (Some(anchor1), Some(anchor2), Some(sentence)) =
                (text(r, "anchor1"), text(r, "anchor2"), text(r, "sentence"))
            {
                m.links.push(Link {
                    anchor1,
                    anchor2,
                    sentence,
                    column1: text(r, "anchor1_link_column_name"),
                    column2: text(r, "anchor2_link_column_name"),
                    directed: !matches!(r.get("has_direction"), Some(Value::Bool(false))),
                });
            }
        }
        m
    }

    /// The anchor an `Anchor_<noun>` table holds, if the model has it.
    pub fn anchor_of_table(&self, table: &str) -> Option<&str> {
        let noun = table.strip_prefix("Anchor_")?;
        self.anchors
            .iter()
            .find(|a| a.as_str() == noun)
            .or_else(|| self.anchors.iter().find(|a| a.eq_ignore_ascii_case(noun)))
            .map(String::as_str)
    }

    /// The link a `Link_<x>` table holds, if the model has it: by sentence or by
    /// `<anchor1>_<anchor2>`, ignoring case; the first such link of the model.
    pub fn link_of_table(&self, table: &str) -> Option<&Link> {
        let x = table.strip_prefix("Link_")?;
        self.links.iter().find(|l| {
            l.sentence.eq_ignore_ascii_case(x)
                || format!("{}_{}", l.anchor1, l.anchor2).eq_ignore_ascii_case(x)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tables_match_by_sentence_or_anchor_pair_ignoring_case() {
        let m = Model {
            anchors: vec!["person".into(), "interest".into()],
            links: vec![Link {
                anchor1: "person".into(),
                anchor2: "interest".into(),
                sentence: "PERSON_has_INTEREST".into(),
                column1: None,
                column2: None,
                directed: false,
            }],
            ..Model::default()
        };
        assert!(m.link_of_table("Link_person_has_interest").is_some());
        assert!(m.link_of_table("Link_Person_Interest").is_some());
        assert!(m.link_of_table("Link_other").is_none());
        assert_eq!(m.anchor_of_table("Anchor_person"), Some("person"));
        assert_eq!(m.anchor_of_table("Anchor_Person"), Some("person"));
        assert_eq!(m.anchor_of_table("Anchor_pet"), None);
        assert_eq!(m.anchor_of_table("Meta_person"), None);
    }
}
