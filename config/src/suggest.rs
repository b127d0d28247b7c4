//! "Did you mean" hints: the closest expected name by edit distance.

/// The candidate closest to `got`, if it is close enough to be a likely typo: at most
/// half the longer name's length in edits (and at least 1 allowed), ignoring case. Ties
/// go to the longest common prefix (typos are rarer at the start of a word).
pub(crate) fn closest<'a>(got: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let got_lower = got.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&got_lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| {
            let longer = got.chars().count().max(c.chars().count());
            *d <= (longer / 2).max(1)
        })
        .min_by_key(|(d, c)| (*d, std::cmp::Reverse(common_prefix(&got_lower, c))))
        .map(|(_, c)| c)
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars()
        .zip(b.to_ascii_lowercase().chars())
        .take_while(|(x, y)| x == y)
        .count()
}

/// `unknown field "retires", did you mean "retry"?`, or the whole list when nothing is
/// close: `unknown field "foo", expected one of: name, match, ...`.
pub(crate) fn unknown(what: &str, got: &str, expected: &[&str]) -> String {
    match closest(got, expected) {
        Some(c) => format!("unknown {what} {got:?}, did you mean {c:?}?"),
        None if expected.is_empty() => format!("unknown {what} {got:?}, none are allowed here"),
        None => format!(
            "unknown {what} {got:?}, expected one of: {}",
            expected.join(", ")
        ),
    }
}

/// Edits (insert, delete, substitute) to turn `a` into `b`.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &[&str] = &[
        "name",
        "match",
        "backends",
        "direct_response",
        "redirect",
        "timeout",
        "retry",
        "fault",
        "rewrite",
        "request_headers",
        "response_headers",
        "rate_limit",
        "mirror",
    ];

    #[test]
    fn edit_distance_counts_inserts_deletes_and_substitutions() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(levenshtein("retires", "retry"), 3);
    }

    #[test]
    fn suggests_the_closest_field() {
        assert_eq!(closest("retires", ROUTE), Some("retry"));
        assert_eq!(closest("timout", ROUTE), Some("timeout"));
        assert_eq!(closest("backend", ROUTE), Some("backends"));
        assert_eq!(closest("Name", ROUTE), Some("name"));
    }

    #[test]
    fn suggests_nothing_when_nothing_is_close() {
        assert_eq!(closest("zzzzzz", ROUTE), None);
        assert_eq!(closest("tls", &["name", "address"]), None);
    }

    #[test]
    fn unknown_message_lists_expected_names_without_a_close_match() {
        assert_eq!(
            unknown("field", "retires", ROUTE),
            r#"unknown field "retires", did you mean "retry"?"#
        );
        assert_eq!(
            unknown("field", "qqq", &["id", "labels"]),
            r#"unknown field "qqq", expected one of: id, labels"#
        );
    }
}
