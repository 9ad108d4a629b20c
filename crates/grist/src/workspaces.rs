//! Which workspace docs are created in: the first one the key's user can write to.

/// The first workspace of a `/workspaces` answer that its user can write to (owner or editor).
pub fn writable_workspace(list: &serde_json::Value) -> Option<i64> {
    list.as_array()?
        .iter()
        .filter(|w| {
            matches!(
                w.get("access").and_then(serde_json::Value::as_str),
                Some("owners" | "editors") | None
            )
        })
        .find_map(|w| w.get("id").and_then(serde_json::Value::as_i64))
}

#[cfg(test)]
mod workspace_tests {
    use super::writable_workspace;
    use serde_json::json;

    #[test]
    fn the_first_workspace_the_key_can_write_to() {
        let list = json!([
            {"id": 3, "name": "Shared", "access": "viewers"},
            {"id": 5, "name": "Team", "access": "editors"},
            {"id": 1, "name": "Home", "access": "owners"},
        ]);
        assert_eq!(writable_workspace(&list), Some(5));
        assert_eq!(
            writable_workspace(&json!([{"id": 3, "access": "viewers"}])),
            None
        );
        assert_eq!(writable_workspace(&json!([])), None);
    }
}
