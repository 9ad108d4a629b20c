//! Index and constraint statements, the one place where Memgraph and Neo4j-compatible servers
//! speak differently. Everything else is the same Cypher.
//!
//! * `memgraph` (default): `CREATE INDEX ON :L(id)`, `CREATE CONSTRAINT ON (n:L) ASSERT n.id IS
//!   UNIQUE`, `CREATE EDGE INDEX ON :T`, `SHOW INDEX INFO`; text indexes with `CREATE TEXT INDEX`.
//! * `neo4j`: named, idempotent `CREATE INDEX name IF NOT EXISTS FOR (n:L) ON (n.id)` and
//!   `CREATE CONSTRAINT name IF NOT EXISTS FOR (n:L) REQUIRE n.id IS UNIQUE`, `SHOW INDEXES`.
//!   Neo4j keeps a lookup index of relationship types by itself, so edge types need none.
//!
//! Memgraph refuses index changes inside multi-statement transactions: these run in auto-commit.

use crate::cypher::quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Memgraph,
    Neo4j,
}

impl Dialect {
    pub fn parse(s: &str) -> Option<Dialect> {
        match s {
            "memgraph" => Some(Dialect::Memgraph),
            "neo4j" => Some(Dialect::Neo4j),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Memgraph => "memgraph",
            Dialect::Neo4j => "neo4j",
        }
    }

    /// For an anchor: a uniqueness constraint and a label-property index on `id`.
    pub fn create_anchor_indexes(self, label: &str) -> Vec<String> {
        let l = quote(label);
        match self {
            Dialect::Memgraph => vec![
                format!("CREATE CONSTRAINT ON (n:{l}) ASSERT n.id IS UNIQUE"),
                format!("CREATE INDEX ON :{l}(id)"),
            ],
            Dialect::Neo4j => vec![
                format!(
                    "CREATE CONSTRAINT {} IF NOT EXISTS FOR (n:{l}) REQUIRE n.id IS UNIQUE",
                    quote(&format!("etl_unique_id_{label}"))
                ),
                format!(
                    "CREATE INDEX {} IF NOT EXISTS FOR (n:{l}) ON (n.id)",
                    quote(&format!("etl_id_{label}"))
                ),
            ],
        }
    }

    pub fn drop_anchor_indexes(self, label: &str) -> Vec<String> {
        let l = quote(label);
        match self {
            Dialect::Memgraph => vec![
                format!("DROP CONSTRAINT ON (n:{l}) ASSERT n.id IS UNIQUE"),
                format!("DROP INDEX ON :{l}(id)"),
            ],
            Dialect::Neo4j => vec![
                format!(
                    "DROP CONSTRAINT {} IF EXISTS",
                    quote(&format!("etl_unique_id_{label}"))
                ),
                format!("DROP INDEX {} IF EXISTS", quote(&format!("etl_id_{label}"))),
            ],
        }
    }

    /// For an anchor with text attributes, when text indexes are on (Memgraph only).
    pub fn create_text_index(self, label: &str) -> Option<String> {
        match self {
            Dialect::Memgraph => Some(format!(
                "CREATE TEXT INDEX {} ON :{}",
                quote(&format!("etl_text_{label}")),
                quote(label)
            )),
            Dialect::Neo4j => None,
        }
    }

    pub fn drop_text_index(self, label: &str) -> Option<String> {
        match self {
            Dialect::Memgraph => Some(format!(
                "DROP TEXT INDEX {}",
                quote(&format!("etl_text_{label}"))
            )),
            Dialect::Neo4j => None,
        }
    }

    /// For a link: an edge-type index (Memgraph; Neo4j has its own lookup index).
    pub fn create_link_indexes(self, edge_type: &str) -> Vec<String> {
        match self {
            Dialect::Memgraph => vec![format!("CREATE EDGE INDEX ON :{}", quote(edge_type))],
            Dialect::Neo4j => Vec::new(),
        }
    }

    pub fn drop_link_indexes(self, edge_type: &str) -> Vec<String> {
        match self {
            Dialect::Memgraph => vec![format!("DROP EDGE INDEX ON :{}", quote(edge_type))],
            Dialect::Neo4j => Vec::new(),
        }
    }

    pub fn show_indexes(self) -> &'static str {
        match self {
            Dialect::Memgraph => "SHOW INDEX INFO",
            Dialect::Neo4j => "SHOW INDEXES",
        }
    }

    /// Whether the server's refusal of an index statement only says it was done already:
    /// "already exists" for a create, "does not exist" for a drop, and nothing else. A missing
    /// database is never "done", whatever the statement.
    pub fn is_already_done(self, statement: &str, message: &str) -> bool {
        let m = message.to_ascii_lowercase();
        // A missing database is never "done"; nor is a constraint Neo4j will not make because an
        // index is in the way ("There already exists an index ... cannot be created").
        if m.contains("database") || m.contains("cannot be created") {
            return false;
        }
        let verb = statement
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "CREATE" => m.contains("already exists") || m.contains("equivalent"),
            "DROP" => {
                m.contains("does not exist")
                    || m.contains("doesn't exist")
                    || m.contains("not found")
                    || m.contains("no such")
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_done_means_exists_for_a_create_and_missing_for_a_drop() {
        let d = Dialect::Neo4j;
        let create = "CREATE INDEX x IF NOT EXISTS FOR (n:`a`) ON (n.id)";
        let drop = "DROP INDEX x IF EXISTS";
        assert!(d.is_already_done(create, "An equivalent index already exists"));
        assert!(!d.is_already_done(create, "Index `x` does not exist"));
        assert!(!d.is_already_done(create, "Label not found"));
        assert!(d.is_already_done(drop, "Index `x` does not exist"));
        assert!(!d.is_already_done(drop, "Index `x` already exists"));
        assert!(!d.is_already_done(create, "Database `nope` not found"));
        assert!(!d.is_already_done(drop, "Database does not exist: nope"));
        assert!(!d.is_already_done("SHOW INDEXES", "already exists"));
        assert!(!d.is_already_done(
            "CREATE CONSTRAINT x IF NOT EXISTS FOR (n:`a`) REQUIRE n.id IS UNIQUE",
            "There already exists an index (:a {id}). A constraint cannot be created until the index has been dropped."
        ));
    }

    #[test]
    fn memgraph_statements() {
        let d = Dialect::Memgraph;
        assert_eq!(
            d.create_anchor_indexes("person"),
            vec![
                "CREATE CONSTRAINT ON (n:`person`) ASSERT n.id IS UNIQUE",
                "CREATE INDEX ON :`person`(id)"
            ]
        );
        assert_eq!(
            d.drop_anchor_indexes("person"),
            vec![
                "DROP CONSTRAINT ON (n:`person`) ASSERT n.id IS UNIQUE",
                "DROP INDEX ON :`person`(id)"
            ]
        );
        assert_eq!(
            d.create_link_indexes("LIKES"),
            vec!["CREATE EDGE INDEX ON :`LIKES`"]
        );
        assert_eq!(
            d.drop_link_indexes("LIKES"),
            vec!["DROP EDGE INDEX ON :`LIKES`"]
        );
        assert_eq!(d.show_indexes(), "SHOW INDEX INFO");
        assert_eq!(
            d.create_text_index("person").as_deref(),
            Some("CREATE TEXT INDEX `etl_text_person` ON :`person`")
        );
    }

    #[test]
    fn neo4j_statements() {
        let d = Dialect::Neo4j;
        assert_eq!(
            d.create_anchor_indexes("person"),
            vec![
                "CREATE CONSTRAINT `etl_unique_id_person` IF NOT EXISTS FOR (n:`person`) REQUIRE n.id IS UNIQUE",
                "CREATE INDEX `etl_id_person` IF NOT EXISTS FOR (n:`person`) ON (n.id)"
            ]
        );
        assert_eq!(d.show_indexes(), "SHOW INDEXES");
        assert!(d.create_link_indexes("LIKES").is_empty());
    }

    #[test]
    fn hostile_labels_stay_inside_their_quotes() {
        for s in Dialect::Memgraph
            .create_anchor_indexes("x`) DETACH DELETE (m")
            .into_iter()
            .chain(Dialect::Neo4j.create_anchor_indexes("x`) DETACH DELETE (m"))
        {
            assert!(s.contains("`x``) DETACH DELETE (m`"), "{s}");
        }
    }
}
