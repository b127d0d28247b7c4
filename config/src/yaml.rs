//! The YAML library, kept behind one function: text -> our own small tree with positions.
//!
//! [`parse`] drives `saphyr-parser` (YAML 1.2) and builds a [`Node`] tree where every
//! node, map keys included, knows where it starts. Scalars keep their source text and
//! their YAML 1.2 core-schema value. Things a config file should not use are reported and
//! the tree is still built, so the later passes can report everything else too:
//! aliases (`*name`) become null, duplicate keys keep the first value, custom tags and
//! extra documents are refused.

use std::borrow::Cow;

use saphyr::ScalarOwned;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver, Tag};

use crate::diagnostic::Pos;

/// One YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in the order written; keys are unique (duplicates were reported).
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub key: Node,
    pub value: Node,
}

/// A scalar's text as written (without quotes) and its core-schema value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

impl Node {
    pub(crate) fn null(pos: Pos) -> Self {
        Node {
            pos,
            kind: Kind::Scalar(Scalar {
                text: String::new(),
                value: Value::Null,
            }),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.value == Value::Null)
    }

    /// The scalar's text, if this is a non-null scalar.
    pub(crate) fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) if s.value != Value::Null => Some(&s.text),
            _ => None,
        }
    }

    /// Says what this node is, for "expected X, got Y" messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Scalar(s) => match s.value {
                Value::Null => "nothing (null)".to_string(),
                Value::Bool(b) => format!("a boolean {b}"),
                Value::Int(_) => format!("an integer {}", s.text),
                Value::Float(_) => format!("a number {}", s.text),
                Value::Str => format!("a string {:?}", s.text),
            },
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A problem found while building the tree: where, the field path, the message.
pub(crate) type Problem = (Pos, String, String);

/// Parses one YAML document. `Ok(None)` for a file with no document (empty or only
/// comments). `Err` holds a syntax error (the tree cannot be trusted then); otherwise
/// the tree comes with the problems found in it.
pub(crate) fn parse(text: &str) -> Result<(Option<Node>, Vec<Problem>), (Pos, String)> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err((inside(text, pos(m)), format!("invalid YAML: {}", e.info())));
    }
    let problems = builder
        .problems
        .into_iter()
        .map(|(at, path, message)| (inside(text, at), path, message))
        .collect();
    Ok((builder.root, problems))
}

/// `pos`, moved to the end of `text` when past it: the scanner reports a problem at the
/// end of the stream as if a line break followed the last line, even when none does, and
/// a diagnostic must point at a place an editor can show.
pub(crate) fn inside(text: &str, pos: Pos) -> Pos {
    let lines = lines(text);
    let last = lines.len();
    if pos.line > last {
        return Pos::new(last, lines[last - 1].chars().count() + 1);
    }
    let width = lines[pos.line.max(1) - 1].chars().count();
    Pos::new(pos.line.max(1), pos.column.clamp(1, width + 1))
}

/// The lines of `text` as YAML breaks them: at `\r\n`, `\r` or `\n` (at least one).
fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        out.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    out.push(rest);
    out
}

fn pos(m: &saphyr_parser::Marker) -> Pos {
    Pos::new(m.line().max(1), m.col() + 1)
}

/// Deepest nesting of lists and mappings kept; deeper content is reported and dropped
/// (real configs are under 10 deep; this bounds recursion in later passes).
pub(crate) const MAX_DEPTH: usize = 64;

/// A collection being built, with its field path.
enum Frame {
    Seq(Pos, String, Vec<Node>),
    Map(Pos, String, Vec<Entry>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    problems: Vec<Problem>,
    /// Collections opened beyond `MAX_DEPTH` and not yet closed (their content is dropped).
    too_deep: usize,
}

impl Builder {
    /// The field path of the next node to be inserted.
    fn next_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq(_, path, items)) => crate::path::index(path, items.len()),
            Some(Frame::Map(_, path, _, None)) => path.clone(),
            Some(Frame::Map(_, path, _, Some(key))) => {
                crate::path::field(path, key.text().unwrap_or("?"))
            }
        }
    }

    fn problem(&mut self, at: Pos, message: String) {
        let path = self.next_path();
        self.problems.push((at, path, message));
    }

    fn check_tag(&mut self, at: Pos, tag: Option<&Cow<'_, Tag>>) {
        if let Some(tag) = tag {
            if !tag.is_yaml_core_schema() {
                let message = format!("YAML tag {}{} is not supported", tag.handle, tag.suffix);
                self.problem(at, message);
            }
        }
    }

    fn insert(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.documents == 1 {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, path, entries, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let first = entries
                        .iter()
                        .find(|e| e.key.kind == key.kind)
                        .map(|e| e.key.pos);
                    match first {
                        Some(first) => {
                            let path = crate::path::field(path, key.text().unwrap_or("?"));
                            let message = format!(
                                "duplicate key {} (first at line {})",
                                key_name(&key),
                                first.line
                            );
                            self.problems.push((key.pos, path, message));
                        }
                        None => entries.push(Entry { key, value: node }),
                    }
                }
            },
        }
    }
}

fn key_name(key: &Node) -> String {
    match key.text() {
        Some(t) => format!("{t:?}"),
        None => key.describe(),
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        let at = pos(&span.start);
        if self.too_deep > 0 {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.too_deep += 1,
                Event::SequenceEnd | Event::MappingEnd => self.too_deep -= 1,
                _ => {}
            }
            if self.too_deep > 0 {
                return;
            }
            // The collection that was too deep just closed: it stands as null.
            self.insert(Node::null(at));
            return;
        }
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..))
            && self.stack.len() >= MAX_DEPTH
        {
            self.too_deep = 1;
            self.problem(
                at,
                format!("lists and mappings are nested more than {MAX_DEPTH} deep"),
            );
            return;
        }
        match ev {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents == 2 {
                    self.problems.push((
                        at,
                        String::new(),
                        "a config file holds one YAML document; remove this one or put it in its own file"
                            .to_string(),
                    ));
                }
            }
            Event::Scalar(text, style, _anchor, tag) => {
                self.check_tag(at, tag.as_ref());
                let value = match ScalarOwned::parse_from_cow_and_metadata(
                    text.clone(),
                    style,
                    tag.as_ref(),
                ) {
                    _ if style != ScalarStyle::Plain => Value::Str,
                    Some(ScalarOwned::Null) => Value::Null,
                    Some(ScalarOwned::Boolean(b)) => Value::Bool(b),
                    Some(ScalarOwned::Integer(i)) => Value::Int(i),
                    Some(ScalarOwned::FloatingPoint(f)) => Value::Float(f.into_inner()),
                    Some(ScalarOwned::String(_)) | None => Value::Str,
                };
                self.insert(Node {
                    pos: at,
                    kind: Kind::Scalar(Scalar {
                        text: text.into_owned(),
                        value,
                    }),
                });
            }
            Event::SequenceStart(_anchor, tag) => {
                self.check_tag(at, tag.as_ref());
                let path = self.next_path();
                self.stack.push(Frame::Seq(at, path, Vec::new()));
            }
            Event::MappingStart(_anchor, tag) => {
                self.check_tag(at, tag.as_ref());
                let path = self.next_path();
                self.stack.push(Frame::Map(at, path, Vec::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(p, _, items)) => Node {
                        pos: p,
                        kind: Kind::Seq(items),
                    },
                    Some(Frame::Map(p, _, entries, _)) => Node {
                        pos: p,
                        kind: Kind::Map(entries),
                    },
                    None => return,
                };
                self.insert(node);
            }
            Event::Alias(_) => {
                self.problem(
                    at,
                    "YAML aliases (*name) are not supported; write the value out".to_string(),
                );
                self.insert(Node::null(at));
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// The field path (`a.b[2].c`) of the scalar that covers `at` (the last one starting on
/// that line at or before that column), for problems found before parsing.
pub(crate) fn path_at(root: &Node, at: Pos) -> Option<String> {
    let mut best: Option<(Pos, String)> = None;
    walk(root, String::new(), &mut |node, path| {
        if node.pos.line == at.line
            && node.pos.column <= at.column
            && matches!(node.kind, Kind::Scalar(_))
            && best
                .as_ref()
                .is_none_or(|(p, _)| node.pos.column >= p.column)
        {
            best = Some((node.pos, path.to_string()));
        }
    });
    best.map(|(_, p)| p)
}

fn walk(node: &Node, path: String, f: &mut dyn FnMut(&Node, &str)) {
    f(node, &path);
    match &node.kind {
        Kind::Scalar(_) => {}
        Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, crate::path::index(&path, i), f);
            }
        }
        Kind::Map(entries) => {
            for e in entries {
                let key = e.key.text().unwrap_or("?");
                walk(&e.value, crate::path::field(&path, key), f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let (root, problems) = parse(text).expect("valid YAML");
        assert!(problems.is_empty(), "{problems:?}");
        root.expect("a document")
    }

    #[test]
    fn positions_are_one_based_and_point_at_values() {
        let r = root("a: 1\nb:\n  - x\n  - 'y'\n");
        let Kind::Map(entries) = &r.kind else {
            panic!("map")
        };
        assert_eq!(entries[0].key.pos, Pos::new(1, 1));
        assert_eq!(entries[0].value.pos, Pos::new(1, 4));
        let Kind::Seq(items) = &entries[1].value.kind else {
            panic!("seq")
        };
        assert_eq!(items[1].pos, Pos::new(4, 5));
        assert_eq!(items[1].text(), Some("y"));
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let r = root("[on, yes, true, 25, 1.5, '25', ~, 25ms]");
        let Kind::Seq(items) = &r.kind else {
            panic!("seq")
        };
        let values: Vec<_> = items
            .iter()
            .map(|n| match &n.kind {
                Kind::Scalar(s) => s.value,
                _ => panic!("scalar"),
            })
            .collect();
        assert_eq!(
            values,
            vec![
                Value::Str,
                Value::Str,
                Value::Bool(true),
                Value::Int(25),
                Value::Float(1.5),
                Value::Str,
                Value::Null,
                Value::Str
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_reported_and_the_first_kept() {
        let (r, problems) = parse("a: 1\nb: 2\na: 3\n").expect("valid YAML");
        assert_eq!(
            problems,
            vec![(
                Pos::new(3, 1),
                "a".to_string(),
                "duplicate key \"a\" (first at line 1)".to_string()
            )]
        );
        let Kind::Map(entries) = r.expect("doc").kind else {
            panic!("map")
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].value.text(), Some("1"));
    }

    #[test]
    fn aliases_tags_and_second_documents_are_refused() {
        let (_, problems) = parse("a: &x 1\nb: *x\nc: !custom 3\n---\nd: 1\n").expect("valid");
        let lines: Vec<_> = problems.iter().map(|(p, _, _)| p.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (at, message) = parse("a: [1, 2\nb: 3\n").expect_err("invalid");
        assert!(
            at.line >= 1 && message.starts_with("invalid YAML"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_file_has_no_document() {
        assert_eq!(parse("# nothing\n").expect("valid").0, None);
    }

    #[test]
    fn path_at_finds_the_scalar_on_a_line() {
        let r = root("a:\n  b: [x, y]\n");
        assert_eq!(path_at(&r, Pos::new(2, 10)).as_deref(), Some("a.b[1]"));
        assert_eq!(path_at(&r, Pos::new(2, 7)).as_deref(), Some("a.b[0]"));
    }
}
