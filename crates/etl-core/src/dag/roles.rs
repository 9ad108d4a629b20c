//! Binding a step's configured inputs to the roles its implementation declares
//! ([`InputRole`]): a list binds them in the declared order, a table (`inputs = { rows =
//! "nodes" }`) by name. Every problem is reported at once: a role no table is bound to, a name
//! that is no role, one input too many, and a table whose primary key lacks the columns the
//! role needs.

use std::collections::BTreeMap;

use crate::config::{ConfigError, InputConfig};
use crate::dag::TableDef;
use crate::step::{InputRole, OutputRole};

fn role_list(roles: &[InputRole]) -> String {
    roles
        .iter()
        .map(|r| format!("`{}` ({})", r.name, r.about))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The role of each configured input (in their order), `None` for all when the implementation
/// declares no roles.
pub fn bind(
    place: &str,
    uses: &str,
    roles: &[InputRole],
    inputs: &[InputConfig],
    tables: &BTreeMap<String, TableDef>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Option<String>> {
    if roles.is_empty() {
        return vec![None; inputs.len()];
    }
    let named = inputs.iter().any(|i| i.role.is_some());
    let mut bound: Vec<Option<String>> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let role = if named {
            input
                .role
                .as_deref()
                .and_then(|n| roles.iter().find(|r| r.name == n))
        } else {
            roles.get(i)
        };
        match (role, &input.role) {
            (Some(r), _) => bound.push(Some(r.name.to_string())),
            (None, Some(name)) => {
                errors.push(ConfigError::new(
                    &input.place,
                    format!(
                        "`{uses}` has no input role `{name}` (table `{}`); its roles: {}",
                        input.table,
                        role_list(roles)
                    ),
                ));
                bound.push(None);
            }
            (None, None) => {
                errors.push(ConfigError::new(
                    &input.place,
                    format!(
                        "`{uses}` reads {} input{} ({}); table `{}` has no role to play: remove it",
                        roles.len(),
                        if roles.len() == 1 { "" } else { "s" },
                        role_list(roles),
                        input.table
                    ),
                ));
                bound.push(None);
            }
        }
        if let (Some(r), Some(table)) = (role, tables.get(&input.table)) {
            let lacking: Vec<&str> = r
                .key
                .iter()
                .copied()
                .filter(|k| !table.primary_key.iter().any(|p| p == k))
                .collect();
            if !lacking.is_empty() {
                errors.push(ConfigError::new(
                    &input.place,
                    format!(
                        "table `{}` does not fit role `{}` of `{uses}` ({}): its primary key ({}) lacks {}",
                        table.name,
                        r.name,
                        r.about,
                        table.primary_key.join(", "),
                        lacking.join(", ")
                    ),
                ));
            }
        }
    }
    for r in roles {
        if !bound.iter().any(|b| b.as_deref() == Some(r.name)) {
            errors.push(ConfigError::new(
                format!("{place}.inputs"),
                format!(
                    "role `{}` of `{uses}` ({}) has no table: bind one, e.g. `inputs = {{ {} = \"TABLE\" }}`",
                    r.name, r.about, r.name
                ),
            ));
        }
    }
    bound
}

/// Checks a step's `outputs` against the roles its implementation declares: as many tables, in
/// the declared order, each keyed by the role's key.
pub fn check_outputs(
    place: &str,
    uses: &str,
    roles: &[OutputRole],
    outputs: &[String],
    tables: &BTreeMap<String, TableDef>,
    errors: &mut Vec<ConfigError>,
) {
    if roles.is_empty() {
        return;
    }
    let names = || {
        roles
            .iter()
            .map(|r| format!("`{}` (keyed by {})", r.name, r.key.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if outputs.len() != roles.len() {
        errors.push(ConfigError::new(
            format!("{place}.outputs"),
            format!(
                "`{uses}` writes {} table{}, in this order: {}; {} given",
                roles.len(),
                if roles.len() == 1 { "" } else { "s" },
                names(),
                outputs.len()
            ),
        ));
        return;
    }
    for (i, (role, table)) in roles.iter().zip(outputs).enumerate() {
        let Some(def) = tables.get(table) else {
            continue;
        };
        if def
            .primary_key
            .iter()
            .map(String::as_str)
            .ne(role.key.iter().copied())
        {
            errors.push(ConfigError::new(
                format!("{place}.outputs[{i}]"),
                format!(
                    "table `{table}` does not fit output role `{}` of `{uses}`: its primary key is ({}), the role's ({})",
                    role.name,
                    def.primary_key.join(", "),
                    role.key.join(", ")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &[InputRole] = &[
        InputRole {
            name: "rows",
            key: &["node_id", "node_type"],
            columns: &["attributes"],
            about: "the nodes",
        },
        InputRole {
            name: "attributes",
            key: &["anchor"],
            columns: &[],
            about: "the attributes",
        },
    ];

    fn tables() -> BTreeMap<String, TableDef> {
        [
            ("nodes", vec!["node_id", "node_type"]),
            ("edges", vec!["from_node_id", "to_node_id"]),
            ("attrs", vec!["anchor", "attribute_name"]),
        ]
        .into_iter()
        .map(|(n, pk)| {
            (
                n.to_string(),
                TableDef {
                    name: n.to_string(),
                    primary_key: pk.into_iter().map(String::from).collect(),
                },
            )
        })
        .collect()
    }

    fn input(role: Option<&str>, table: &str, i: usize) -> InputConfig {
        InputConfig {
            role: role.map(String::from),
            table: table.into(),
            on: None,
            place: match role {
                Some(r) => format!("steps.s.inputs.{r}"),
                None => format!("steps.s.inputs[{i}]"),
            },
        }
    }

    fn bind_all(inputs: &[InputConfig]) -> (Vec<Option<String>>, Vec<String>) {
        let mut errors = Vec::new();
        let roles = bind("steps.s", "kg.x", ROLES, inputs, &tables(), &mut errors);
        (roles, errors.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn a_list_binds_in_order_and_a_table_by_name() {
        let (roles, errors) = bind_all(&[input(None, "nodes", 0), input(None, "attrs", 1)]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(roles, vec![Some("rows".into()), Some("attributes".into())]);
        let (roles, errors) = bind_all(&[
            input(Some("attributes"), "attrs", 0),
            input(Some("rows"), "nodes", 1),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(roles, vec![Some("attributes".into()), Some("rows".into())]);
    }

    #[test]
    fn every_mistake_is_reported_with_step_role_and_table() {
        let (_, errors) = bind_all(&[
            input(Some("rows"), "edges", 0),
            input(Some("attrz"), "attrs", 1),
        ]);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("steps.s.inputs.rows: table `edges` does not fit role `rows`"));
        assert!(errors[0].contains("lacks node_id, node_type"));
        assert!(errors[1]
            .contains("steps.s.inputs.attrz: `kg.x` has no input role `attrz` (table `attrs`)"));
        assert!(errors[2].contains("steps.s.inputs: role `attributes` of `kg.x`"));
        let (_, errors) = bind_all(&[
            input(None, "nodes", 0),
            input(None, "attrs", 1),
            input(None, "edges", 2),
        ]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("steps.s.inputs[2]: `kg.x` reads 2 inputs"));
    }
}
