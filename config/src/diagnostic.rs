//! Diagnostics: one problem in a config file, with where it is and how to render it.

use std::fmt;

/// A position in a file: 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const fn new(line: usize, column: usize) -> Self {
        Pos { line, column }
    }
}

/// One problem found in a config file, with where it is.
///
/// Renders as `file:line:col: field.path: message`. `line`/`column` are 1-based and point
/// at the offending value (at the key for unknown or unsupported fields). Problems that
/// are not about one place (a file that cannot be read) have line and column 0; problems
/// that are not about one field (YAML syntax) have an empty `path`, and render without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `pos` in `file`.
    pub fn new(
        file: impl Into<String>,
        pos: Pos,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line: pos.line,
            column: pos.column,
            path: path.into(),
            message: message.into(),
        }
    }

    /// Where in the file this problem is.
    pub fn pos(&self) -> Pos {
        Pos::new(self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a file (never empty when returned as an error), sorted by
/// position; `Display` renders one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts by position (then path, then message) and drops exact duplicates.
    pub fn new(mut list: Vec<Diagnostic>) -> Self {
        list.sort_by(|a, b| {
            (a.line, a.column, &a.path, &a.message).cmp(&(b.line, b.column, &b.path, &b.message))
        });
        list.dedup();
        Diagnostics(list)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one file while a pass runs; never aborts.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    list: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn push(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.list
            .push(Diagnostic::new(String::new(), pos, path, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a problem was already reported at `pos`.
    pub(crate) fn has_at(&self, pos: Pos) -> bool {
        self.list.iter().any(|d| d.pos() == pos)
    }

    /// The collected problems, stamped with the file name.
    pub(crate) fn into_vec(self, file: &str) -> Vec<Diagnostic> {
        self.list
            .into_iter()
            .map(|mut d| {
                d.file = file.to_string();
                d
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_path_and_message() {
        let d = Diagnostic::new(
            "routes.yaml",
            Pos::new(14, 9),
            "route_tables.edge[2].retry.backoff.base",
            r#""25" is not a duration (try "25ms")"#,
        );
        assert_eq!(
            d.to_string(),
            r#"routes.yaml:14:9: route_tables.edge[2].retry.backoff.base: "25" is not a duration (try "25ms")"#
        );
    }

    #[test]
    fn renders_without_a_path_when_there_is_none() {
        let d = Diagnostic::new("a.yaml", Pos::new(3, 1), "", "bad YAML");
        assert_eq!(d.to_string(), "a.yaml:3:1: bad YAML");
    }

    #[test]
    fn diagnostics_are_sorted_by_position_and_deduplicated() {
        let at = |l, c| Diagnostic::new("f", Pos::new(l, c), "p", "m");
        let all = Diagnostics::new(vec![at(5, 1), at(2, 7), at(2, 3), at(5, 1)]);
        let positions: Vec<_> = all.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(positions, vec![(2, 3), (2, 7), (5, 1)]);
        assert_eq!(all.to_string().lines().count(), 3);
    }
}
