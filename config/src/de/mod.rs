//! A serde `Deserializer` over our YAML tree that records every problem and never stops.
//!
//! serde's own deserializers stop at the first error. This one writes each problem (with
//! position and field path) into a shared list and returns a "recorded" error that the
//! nearest [`Spanned`](crate::spanned::Spanned) swallows, so its parent struct is still
//! built and every other field is still checked. It also knows, in `deserialize_struct`,
//! which field names are expected: an unknown key is reported (with a "did you mean"
//! hint) and skipped. No crate did this for a positioned YAML tree, so it is written here.
//!
//! Rules for the raw types it feeds: every field is a `Field<T>` (`Option<Spanned<T>>`),
//! and list items and map values are `Spanned`, so a bad value never takes its siblings
//! down. Any scalar is accepted where a string is expected (its text as written), so that
//! `timeout: 25` reaches validation as "25" and gets a unit hint.
//! Magic names: [`SPANNED`] (position side channel) and [`SHAPE`] (an enum whose variant
//! is chosen by the node's shape: `scalar`, `seq` or `map`, for either/or fields).

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};

mod access;

use access::{Fields, Items, Position, ShapeAccess};

use crate::diagnostic::Sink;
use crate::suggest;
use crate::yaml::{Kind, Node, Value};

/// Struct name through which `Spanned<T>` asks for its position.
pub(crate) const SPANNED: &str = "$meshwork::Spanned";
pub(crate) const SPANNED_FIELDS: &[&str] = &["line", "column", "path", "value"];
/// Enum name whose variant is the node's shape (`scalar`, `seq`, `map`).
pub(crate) const SHAPE: &str = "$meshwork::Shape";
/// What a recorded error displays as (how `Spanned` recognizes it).
pub(crate) const RECORDED: &str = "$meshwork: problem recorded";

/// Deserializes `T` from `node`, writing every problem into `sink`. `None` when the root
/// itself could not be built (also recorded).
pub(crate) fn from_node<'de, T: de::Deserialize<'de>>(node: &Node, sink: &mut Sink) -> Option<T> {
    let cell = RefCell::new(std::mem::take(sink));
    let result = T::deserialize(De {
        node,
        path: String::new(),
        sink: &cell,
    });
    *sink = cell.into_inner();
    result.ok()
}

/// A problem: either already recorded (it only unwinds to the nearest `Spanned`) or a
/// message from a visitor, which the deserializer records with its own position.
#[derive(Debug)]
pub(crate) struct Error {
    recorded: bool,
    message: String,
}

impl Error {
    fn recorded() -> Self {
        Error {
            recorded: true,
            message: String::new(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.recorded {
            f.write_str(RECORDED)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(message: M) -> Self {
        Error {
            recorded: false,
            message: message.to_string(),
        }
    }
}

/// Deserializes one node at one path.
struct De<'a> {
    node: &'a Node,
    path: String,
    sink: &'a RefCell<Sink>,
}

impl<'a> De<'a> {
    fn child(&self, node: &'a Node, path: String) -> De<'a> {
        De {
            node,
            path,
            sink: self.sink,
        }
    }

    fn report(&self, message: String) -> Error {
        self.sink
            .borrow_mut()
            .push(self.node.pos, &self.path, message);
        Error::recorded()
    }

    fn expected(&self, what: &str) -> Error {
        self.report(format!("expected {what}, got {}", self.node.describe()))
    }

    /// Records a visitor's own error here (where it happened).
    fn finish<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|e| {
            if e.recorded {
                e
            } else {
                self.report(e.message)
            }
        })
    }

    fn integer<T: TryFrom<i64> + fmt::Display>(&self, min: T, max: T) -> Result<T, Error> {
        match &self.node.kind {
            Kind::Scalar(s) => match s.value {
                Value::Int(i) => T::try_from(i).map_err(|_| {
                    self.report(format!(
                        "expected an integer from {min} to {max}, got {}",
                        s.text
                    ))
                }),
                Value::Float(_) => Err(self.expected("a whole number")),
                _ => Err(self.expected("an integer")),
            },
            _ => Err(self.expected("an integer")),
        }
    }
}

macro_rules! integer {
    ($($method:ident $visit:ident $ty:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let n = self.integer::<$ty>(<$ty>::MIN, <$ty>::MAX)?;
            self.finish(visitor.$visit(n))
        }
    )*};
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.kind {
            Kind::Scalar(s) => match s.value {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(b),
                Value::Int(i) => visitor.visit_i64(i),
                Value::Float(f) => visitor.visit_f64(f),
                Value::Str => visitor.visit_str(&s.text),
            },
            Kind::Seq(items) => visitor.visit_seq(Items::new(&self, items)),
            Kind::Map(_) => visitor.visit_map(Fields::new(&self, None)),
        };
        self.finish(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            Kind::Scalar(s) => match s.value {
                Value::Bool(b) => self.finish(visitor.visit_bool(b)),
                _ => Err(self.expected("true or false")),
            },
            _ => Err(self.expected("true or false")),
        }
    }

    integer! {
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64,
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            Kind::Scalar(s) => match s.value {
                Value::Int(i) => self.finish(visitor.visit_f64(i as f64)),
                Value::Float(f) => self.finish(visitor.visit_f64(f)),
                _ => Err(self.expected("a number")),
            },
            _ => Err(self.expected("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.text() {
            Some(text) => self.finish(visitor.visit_str(text)),
            None => Err(self.expected("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            self.finish(visitor.visit_none())
        } else {
            let result = visitor.visit_some(self.child(self.node, self.path.clone()));
            self.finish(result)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            self.finish(visitor.visit_unit())
        } else {
            Err(self.expected("nothing (null)"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = visitor.visit_newtype_struct(self.child(self.node, self.path.clone()));
        self.finish(result)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            Kind::Seq(items) => {
                let result = visitor.visit_seq(Items::new(&self, items));
                self.finish(result)
            }
            Kind::Scalar(_) if !self.node.is_null() => {
                let text = self.node.text().unwrap_or_default();
                Err(self.report(format!(
                    "expected a list, got {} (write [{text}])",
                    self.node.describe()
                )))
            }
            _ => Err(self.expected("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            Kind::Map(_) => {
                let result = visitor.visit_map(Fields::new(&self, None));
                self.finish(result)
            }
            _ => Err(self.expected("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            let result = visitor.visit_map(Position::new(&self));
            return self.finish(result);
        }
        match &self.node.kind {
            Kind::Map(_) => {
                let result = visitor.visit_map(Fields::new(&self, Some(fields)));
                self.finish(result)
            }
            _ => Err(self.expected("a mapping")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SHAPE {
            let shape = match &self.node.kind {
                Kind::Scalar(_) if self.node.is_null() => "null",
                Kind::Scalar(_) => "scalar",
                Kind::Seq(_) => "seq",
                Kind::Map(_) => "map",
            };
            if !variants.contains(&shape) {
                let allowed: Vec<&str> = variants
                    .iter()
                    .map(|v| match *v {
                        "scalar" => "a string",
                        "seq" => "a list",
                        "map" => "a mapping",
                        other => other,
                    })
                    .collect();
                return Err(self.expected(&allowed.join(" or ")));
            }
            let result = visitor.visit_enum(ShapeAccess { de: &self, shape });
            return self.finish(result);
        }
        let text = match &self.node.kind {
            Kind::Scalar(s) if s.value != Value::Null => s.text.as_str(),
            _ => {
                return Err(self.expected(&format!("one of: {}", variants.join(", "))));
            }
        };
        if !variants.contains(&text) {
            return Err(self.report(suggest::unknown("value", text, variants)));
        }
        let access: StrDeserializer<'_, Error> = text.into_deserializer();
        self.finish(visitor.visit_enum(access))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.finish(visitor.visit_unit())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::diagnostic::Pos;
    use crate::spanned::{Entries, Field, List, Spanned};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Field<String>,
        count: Field<u32>,
        inner: Field<Inner>,
        items: List<Inner>,
        kind: Field<Choice>,
        labels: Field<Entries<String>>,
        either: List<Either>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        flag: Field<bool>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Choice {
        Alpha,
        Beta,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename = "$meshwork::Shape")]
    enum Either {
        #[serde(rename = "scalar")]
        Text(Spanned<String>),
        #[serde(rename = "map")]
        Full(Inner),
    }

    fn decode(yaml: &str) -> (Option<Spanned<Outer>>, Vec<String>) {
        let (root, problems) = crate::yaml::parse(yaml).expect("valid YAML");
        assert!(problems.is_empty());
        let mut sink = Sink::default();
        let outer = from_node(&root.expect("document"), &mut sink);
        let messages = sink
            .into_vec("t")
            .iter()
            .map(|d| format!("{}:{} {}: {}", d.line, d.column, d.path, d.message))
            .collect();
        (outer, messages)
    }

    #[test]
    fn a_clean_document_decodes_with_positions_and_paths() {
        let (outer, problems) =
            decode("name: web\ncount: 3\ninner: {flag: true}\nkind: beta\nlabels: {a: 1, b: x}\n");
        assert!(problems.is_empty(), "{problems:?}");
        let outer = outer.expect("root").value.expect("value");
        let name = outer.name.expect("name");
        assert_eq!(name.value.as_deref(), Some("web"));
        assert_eq!((name.pos, name.path.as_str()), (Pos::new(1, 7), "name"));
        assert_eq!(outer.count.and_then(|c| c.value), Some(3));
        let inner = outer.inner.and_then(|i| i.value).expect("inner");
        assert_eq!(inner.flag.expect("flag").path, "inner.flag");
        assert_eq!(outer.kind.and_then(|k| k.value), Some(Choice::Beta));
        let labels = outer.labels.and_then(|l| l.value).expect("labels").0;
        assert_eq!(labels[0].0.value.as_deref(), Some("a"));
        assert_eq!(labels[0].1.value.as_deref(), Some("1"));
        assert_eq!(labels[1].1.path, "labels.b");
    }

    #[test]
    fn every_problem_is_recorded_and_siblings_still_decode() {
        let yaml = "\
name: [x]
count: lots
inner: {flag: yes, extra: 1}
items: [{flag: true}, 5, {flag: false}]
kind: btea
colour: red
";
        let (outer, problems) = decode(yaml);
        assert_eq!(
            problems,
            vec![
                "1:7 name: expected a string, got a list",
                "2:8 count: expected an integer, got a string \"lots\"",
                "3:15 inner.flag: expected true or false, got a string \"yes\"",
                "3:20 inner.extra: unknown field \"extra\", expected one of: flag",
                "4:23 items[1]: expected a mapping, got an integer 5",
                "5:7 kind: unknown value \"btea\", did you mean \"beta\"?",
                "6:1 colour: unknown field \"colour\", expected one of: name, count, inner, items, kind, labels, either",
            ]
        );
        let outer = outer.expect("root").value.expect("the root still decodes");
        assert!(outer.name.expect("present").value.is_none());
        let items = outer.items.and_then(|i| i.value).expect("items");
        let flags: Vec<_> = items
            .iter()
            .map(|i| {
                i.value
                    .as_ref()
                    .map(|v| v.flag.as_ref().and_then(|f| f.value))
            })
            .collect();
        assert_eq!(flags, vec![Some(Some(true)), None, Some(Some(false))]);
    }

    #[test]
    fn any_scalar_is_text_where_a_string_is_expected() {
        let (outer, problems) = decode("name: 25\n");
        assert!(problems.is_empty());
        let name = outer
            .and_then(|o| o.value)
            .and_then(|o| o.name)
            .and_then(|n| n.value);
        assert_eq!(name.as_deref(), Some("25"));
    }

    #[test]
    fn shape_enums_pick_the_variant_by_the_node_shape() {
        let (outer, problems) = decode("either: [a, {flag: true}, [x]]\n");
        assert_eq!(
            problems,
            vec!["1:27 either[2]: expected a string or a mapping, got a list"]
        );
        let either = outer
            .and_then(|o| o.value)
            .and_then(|o| o.either)
            .and_then(|e| e.value)
            .expect("list");
        assert!(
            matches!(&either[0].value, Some(Either::Text(t)) if t.value.as_deref() == Some("a"))
        );
        assert!(matches!(&either[1].value, Some(Either::Full(i)) if i.flag.is_some()));
        assert!(either[2].value.is_none());
    }

    #[test]
    fn out_of_range_integers_say_the_range() {
        let (_, problems) = decode("count: -1\n");
        assert_eq!(
            problems,
            vec!["1:8 count: expected an integer from 0 to 4294967295, got -1"]
        );
    }
}
