//! Field paths as shown in diagnostics: `route_tables.edge[2].retry.backoff.base`.

/// `parent.key`; a key with characters other than letters, digits, `_` and `-` is quoted
/// (`node.labels."app.kubernetes.io/name"`).
pub(crate) fn field(parent: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if simple {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_fields_and_indexes() {
        let p = index(&field(&field("", "route_tables"), "edge"), 2);
        assert_eq!(field(&p, "retry"), "route_tables.edge[2].retry");
    }

    #[test]
    fn unusual_keys_are_quoted() {
        assert_eq!(
            field("node.labels", "app.kubernetes.io/name"),
            r#"node.labels."app.kubernetes.io/name""#
        );
        assert_eq!(field("set", "x-env"), "set.x-env");
    }
}
