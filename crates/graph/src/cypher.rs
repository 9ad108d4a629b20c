//! Cypher text. Labels, relationship types and index names come from people editing Grist: they
//! reach a statement only through [`quote`], which wraps them in backticks and doubles any
//! backtick inside, or are refused by [`check_name`] when no server can hold them. Every value
//! (ids, properties, property names inside maps) is a parameter.

/// Why a name cannot be used as a label or relationship type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` cannot be a graph {what}: {why}")]
pub struct BadName {
    pub name: String,
    pub what: &'static str,
    pub why: &'static str,
}

/// Refuses names a graph server cannot hold: empty, or with a NUL character.
pub fn check_name(name: &str, what: &'static str) -> Result<(), BadName> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.contains('\0') {
        "it contains a NUL character"
    } else {
        return Ok(());
    };
    Err(BadName {
        name: name.escape_debug().to_string(),
        what,
        why,
    })
}

/// Quotes a label, relationship type or index name: `` a`b `` becomes `` `a``b` ``.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Upserts nodes of one label: `$rows` is a list of `{id, props}`; `props` replaces every
/// property, so removed attributes disappear.
pub fn upsert_nodes(label: &str) -> String {
    format!(
        "UNWIND $rows AS row MERGE (n:{} {{id: row.id}}) SET n = row.props",
        quote(label)
    )
}

/// Deletes nodes of one label and their edges: `$ids` is a list of ids.
pub fn delete_nodes(label: &str) -> String {
    format!(
        "UNWIND $ids AS id MATCH (n:{} {{id: id}}) DETACH DELETE n",
        quote(label)
    )
}

/// Upserts edges of one type between nodes of two labels: `$rows` is a list of
/// `{from, to, props}`. MERGE: a rerun never duplicates an edge.
pub fn upsert_edges(from_label: &str, edge_type: &str, to_label: &str) -> String {
    format!(
        "UNWIND $rows AS row MATCH (a:{} {{id: row.from}}) MATCH (b:{} {{id: row.to}}) MERGE (a)-[r:{}]->(b) SET r = row.props",
        quote(from_label),
        quote(to_label),
        quote(edge_type)
    )
}

/// Deletes edges of one type: `$rows` is a list of `{from, to}`.
pub fn delete_edges(from_label: &str, edge_type: &str, to_label: &str) -> String {
    format!(
        "UNWIND $rows AS row MATCH (a:{} {{id: row.from}})-[r:{}]->(b:{} {{id: row.to}}) DELETE r",
        quote(from_label),
        quote(edge_type),
        quote(to_label)
    )
}

/// Node counts per label.
pub const COUNT_NODES_BY_LABEL: &str =
    "MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n";

/// Edge counts per type.
pub const COUNT_EDGES_BY_TYPE: &str = "MATCH ()-[r]->() RETURN type(r) AS edge_type, count(*) AS n";

/// 1 when the graph has any node, nothing otherwise (column `n`).
pub const ANY_NODE: &str = "MATCH (n) RETURN 1 AS n LIMIT 1";

/// The number of nodes with one label (column `n`).
pub fn count_nodes_with_label(label: &str) -> String {
    format!("MATCH (n:{}) RETURN count(n) AS n", quote(label))
}

/// The number of edges of one type (column `n`).
pub fn count_edges_of_type(edge_type: &str) -> String {
    format!("MATCH ()-[r:{}]->() RETURN count(r) AS n", quote(edge_type))
}

/// Which of `$ids` exist with a label.
pub fn existing_ids(label: &str) -> String {
    format!(
        "UNWIND $ids AS id MATCH (n:{} {{id: id}}) RETURN n.id AS id",
        quote(label)
    )
}

/// Which of `$rows` (a list of `{from, to}`) exist as edges of one type.
pub fn existing_edges(from_label: &str, edge_type: &str, to_label: &str) -> String {
    format!(
        "UNWIND $rows AS row MATCH (a:{} {{id: row.from}})-[r:{}]->(b:{} {{id: row.to}}) RETURN a.id AS from, b.id AS to",
        quote(from_label),
        quote(edge_type),
        quote(to_label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_backticks_so_nothing_escapes() {
        assert_eq!(quote("person"), "`person`");
        assert_eq!(quote("x`) DETACH DELETE (m"), "`x``) DETACH DELETE (m`");
        assert_eq!(quote("``"), "``````");
        assert_eq!(
            upsert_nodes("x`) DETACH DELETE (m"),
            "UNWIND $rows AS row MERGE (n:`x``) DETACH DELETE (m` {id: row.id}) SET n = row.props"
        );
    }

    #[test]
    fn statements_keep_values_in_parameters() {
        assert_eq!(
            upsert_edges("person", "LIKES", "interest"),
            "UNWIND $rows AS row MATCH (a:`person` {id: row.from}) MATCH (b:`interest` {id: row.to}) MERGE (a)-[r:`LIKES`]->(b) SET r = row.props"
        );
        assert_eq!(
            delete_nodes("person"),
            "UNWIND $ids AS id MATCH (n:`person` {id: id}) DETACH DELETE n"
        );
        assert_eq!(
            delete_edges("person", "LIKES", "interest"),
            "UNWIND $rows AS row MATCH (a:`person` {id: row.from})-[r:`LIKES`]->(b:`interest` {id: row.to}) DELETE r"
        );
    }

    #[test]
    fn names_no_server_can_hold_are_refused() {
        assert!(check_name("", "label").is_err());
        assert!(check_name("a\0b", "label").is_err());
        assert!(check_name("weird `name` é", "label").is_ok());
    }
}
