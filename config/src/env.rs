//! `${VAR}` / `${VAR:-default}` substitution, done on the text before YAML parsing.
//!
//! Substitution works line by line, so line numbers stay true; a [`ColumnMap`] maps
//! columns of the substituted text back to the file, so every later diagnostic points at
//! what the user wrote (a problem inside a substituted value points at its `${`).
//! `$${` is a literal `${`. Comments (a `#` at the start of a line or after a space,
//! outside quotes) are left alone. A value holding a line break is refused (it would
//! move every line below it).

use crate::diagnostic::Pos;

/// One `${...}` (or `$${`) replaced on a line, in 1-based character columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Replacement {
    /// Where the replacement text starts and ends (exclusive) in the new line.
    out_start: usize,
    out_end: usize,
    /// Where `${...}` started and ended (exclusive) in the file.
    in_start: usize,
    in_end: usize,
}

/// Maps positions in the substituted text back to the file.
#[derive(Clone, Debug, Default)]
pub(crate) struct ColumnMap {
    /// Index = line - 1.
    lines: Vec<Vec<Replacement>>,
}

impl ColumnMap {
    /// The position in the file of `pos` in the substituted text.
    pub(crate) fn original(&self, pos: Pos) -> Pos {
        let Some(replacements) = pos.line.checked_sub(1).and_then(|i| self.lines.get(i)) else {
            return pos;
        };
        let mut shift: isize = 0;
        for r in replacements {
            if pos.column < r.out_start {
                break;
            }
            // An empty value's position is its `${` too.
            if pos.column < r.out_end || pos.column == r.out_start {
                return Pos::new(pos.line, r.in_start);
            }
            shift += (r.out_end as isize - r.out_start as isize)
                - (r.in_end as isize - r.in_start as isize);
        }
        let column = (pos.column as isize - shift).max(1) as usize;
        Pos::new(pos.line, column)
    }
}

impl ColumnMap {
    /// The position in the substituted text of `pos` in the file (a position inside a
    /// `${...}` maps to the start of its value).
    pub(crate) fn substituted(&self, pos: Pos) -> Pos {
        let Some(replacements) = pos.line.checked_sub(1).and_then(|i| self.lines.get(i)) else {
            return pos;
        };
        let mut shift: isize = 0;
        for r in replacements {
            if pos.column < r.in_start {
                break;
            }
            if pos.column < r.in_end {
                return Pos::new(pos.line, r.out_start);
            }
            shift += (r.out_end as isize - r.out_start as isize)
                - (r.in_end as isize - r.in_start as isize);
        }
        Pos::new(pos.line, (pos.column as isize + shift).max(1) as usize)
    }
}

/// The text with variables replaced, the column map, and every problem found (an unset
/// variable is replaced by nothing so parsing can still go on).
pub(crate) fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, ColumnMap, Vec<(Pos, String)>) {
    let mut out = String::with_capacity(text.len());
    let mut map = ColumnMap::default();
    let mut problems = Vec::new();
    let mut quotes = Quotes::default();
    for (index, line) in lines_inclusive(text).enumerate() {
        let (new_line, replacements) =
            substitute_line(index + 1, line, env, &mut quotes, &mut problems);
        out.push_str(&new_line);
        map.lines.push(replacements);
    }
    (out, map, problems)
}

/// The lines of `text`, each with its line break, broken where YAML breaks them: at
/// `\r\n`, `\n`, and a `\r` alone (so line numbers here are the parser's).
fn lines_inclusive(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\r', '\n']) {
            Some(at) if rest[at..].starts_with("\r\n") => at + 2,
            Some(at) => at + 1,
            None => rest.len(),
        };
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
}

/// Whether we are inside a quoted scalar (kept across lines for multi-line strings).
#[derive(Debug, Default)]
struct Quotes {
    single: bool,
    double: bool,
}

fn substitute_line(
    line_no: usize,
    line: &str,
    env: &dyn Fn(&str) -> Option<String>,
    quotes: &mut Quotes,
    problems: &mut Vec<(Pos, String)>,
) -> (String, Vec<Replacement>) {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut out_col = 1;
    let mut replacements = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = if i == 0 { None } else { Some(chars[i - 1]) };
        let opens = prev.is_none_or(|p| p.is_whitespace() || "[{,:".contains(p));
        let in_quotes = quotes.single || quotes.double;
        match c {
            '#' if !in_quotes && prev.is_none_or(char::is_whitespace) => {
                out.extend(&chars[i..]);
                break;
            }
            '\\' if quotes.double => {
                out.extend(&chars[i..(i + 2).min(chars.len())]);
                out_col += (i + 2).min(chars.len()) - i;
                i += 2;
                continue;
            }
            '"' if !quotes.single && (quotes.double || opens) => quotes.double = !quotes.double,
            '\'' if !quotes.double && (quotes.single || opens) => quotes.single = !quotes.single,
            '$' if chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') => {
                out.push_str("${");
                replacements.push(Replacement {
                    out_start: out_col,
                    out_end: out_col + 2,
                    in_start: i + 1,
                    in_end: i + 4,
                });
                out_col += 2;
                i += 3;
                continue;
            }
            '$' if chars.get(i + 1) == Some(&'{') => {
                let at = Pos::new(line_no, i + 1);
                let Some(close) = chars[i + 2..].iter().position(|&c| c == '}') else {
                    problems.push((
                        at,
                        "unterminated \"${\" (close it with \"}\", or write \"$${\" for a literal \"${\")"
                            .to_string(),
                    ));
                    out.extend(&chars[i..]);
                    break;
                };
                let inner: String = chars[i + 2..i + 2 + close].iter().collect();
                let value = match resolve(&inner, env) {
                    Ok(v) => v,
                    Err(message) => {
                        problems.push((at, message));
                        String::new()
                    }
                };
                let len = value.chars().count();
                out.push_str(&value);
                replacements.push(Replacement {
                    out_start: out_col,
                    out_end: out_col + len,
                    in_start: i + 1,
                    in_end: i + 3 + close + 1,
                });
                out_col += len;
                i += close + 3;
                continue;
            }
            _ => {}
        }
        out.push(c);
        out_col += 1;
        i += 1;
    }
    (out, replacements)
}

/// The value of `NAME` or `NAME:-default` (the default is used when the variable is
/// unset or empty, as in a shell).
fn resolve(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "\"${{{inner}}}\" is not a variable reference (expected ${{NAME}} or ${{NAME:-default}}, NAME made of letters, digits and _)"
        ));
    }
    let value = match (env(name), default) {
        (Some(v), Some(d)) if v.is_empty() => d.to_string(),
        (Some(v), _) => v,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(format!(
                "environment variable {name} is not set (set it, or write ${{{name}:-default}})"
            ));
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable {name} holds a line break, which a config value cannot"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_where_yaml_breaks_them() {
        let lines: Vec<&str> = lines_inclusive("a\r\nb\rc\nd").collect();
        assert_eq!(lines, ["a\r\n", "b\r", "c\n", "d"]);
        // A lone CR ends a line: a problem after it is on the next line, as the parser says.
        let (_, _, problems) = substitute("a: 1\rb: ${", &|_| None);
        assert_eq!(problems[0].0, Pos::new(2, 4));
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".to_string()),
            "EMPTY" => Some(String::new()),
            "LONG" => Some("a-much-longer-value".to_string()),
            "NL" => Some("a\nb".to_string()),
            _ => None,
        }
    }

    fn sub(text: &str) -> (String, Vec<(Pos, String)>) {
        let (out, _, problems) = substitute(text, &env);
        (out, problems)
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        assert_eq!(sub("a: ${PORT}\n").0, "a: 8080\n");
        assert_eq!(sub("a: ${NOPE:-9}\n").0, "a: 9\n");
        assert_eq!(sub("a: ${PORT:-9}\n").0, "a: 8080\n");
        assert_eq!(sub("a: ${EMPTY:-x}\n").0, "a: x\n");
        assert_eq!(sub("a: ${EMPTY}\n").0, "a: \n");
        assert_eq!(sub("a: ${NOPE:-}\n").0, "a: \n");
        assert_eq!(sub("a: x${PORT}y${PORT}\n").0, "a: x8080y8080\n");
    }

    #[test]
    fn double_dollar_escapes() {
        let (out, problems) = sub("a: $${NOPE} and $5\n");
        assert_eq!(out, "a: ${NOPE} and $5\n");
        assert!(problems.is_empty());
    }

    #[test]
    fn a_missing_variable_names_itself_and_where() {
        let (_, problems) = sub("a: 1\nb: \"x ${NOPE}\"\n");
        assert_eq!(
            problems,
            vec![(
                Pos::new(2, 7),
                "environment variable NOPE is not set (set it, or write ${NOPE:-default})"
                    .to_string()
            )]
        );
    }

    #[test]
    fn malformed_references_are_reported() {
        assert!(sub("a: ${PORT\n").1[0].1.starts_with("unterminated"));
        assert!(
            sub("a: ${1X}\n").1[0]
                .1
                .contains("not a variable reference")
        );
        assert!(sub("a: ${NL}\n").1[0].1.contains("line break"));
    }

    #[test]
    fn comments_are_left_alone() {
        let (out, problems) = sub("a: 1 # ${NOPE}\n# ${NOPE}\nb: \"#${PORT}\"\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out, "a: 1 # ${NOPE}\n# ${NOPE}\nb: \"#8080\"\n");
    }

    #[test]
    fn columns_map_back_to_the_file() {
        let (out, map, _) = substitute("a: ${LONG} x\nb: $${y} z\n", &env);
        assert_eq!(out, "a: a-much-longer-value x\nb: ${y} z\n");
        // Inside the value -> the `${`.
        assert_eq!(map.original(Pos::new(1, 10)), Pos::new(1, 4));
        // After it -> where it was written.
        assert_eq!(map.original(Pos::new(1, 24)), Pos::new(1, 12));
        // Before it -> unchanged.
        assert_eq!(map.original(Pos::new(1, 1)), Pos::new(1, 1));
        assert_eq!(map.original(Pos::new(2, 9)), Pos::new(2, 10));
        // And the other way.
        assert_eq!(map.substituted(Pos::new(1, 4)), Pos::new(1, 4));
        assert_eq!(map.substituted(Pos::new(1, 12)), Pos::new(1, 24));
        assert_eq!(map.substituted(Pos::new(2, 10)), Pos::new(2, 9));
    }
}
