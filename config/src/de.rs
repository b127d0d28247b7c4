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

use serde::de::value::{StrDeserializer, StringDeserializer, UsizeDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::diagnostic::Sink;
use crate::path;
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

/// List items, each at `path[i]`.
struct Items<'a, 'b> {
    parent: &'b De<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'a, 'b> Items<'a, 'b> {
    fn new(parent: &'b De<'a>, items: &'a [Node]) -> Self {
        Items {
            parent,
            items: items.iter().enumerate(),
        }
    }
}

impl<'de> SeqAccess<'de> for Items<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some((i, item)) => {
                let de = self.parent.child(item, path::index(&self.parent.path, i));
                seed.deserialize(de).map(Some)
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Mapping entries. With `expected` set (a struct), unknown keys are reported and
/// skipped; otherwise (a free-form map) every entry with a scalar key is passed on.
struct Fields<'a, 'b> {
    parent: &'b De<'a>,
    entries: std::slice::Iter<'a, crate::yaml::Entry>,
    expected: Option<&'static [&'static str]>,
    value: Option<(&'a Node, String)>,
}

impl<'a, 'b> Fields<'a, 'b> {
    fn new(parent: &'b De<'a>, expected: Option<&'static [&'static str]>) -> Self {
        let entries: &'a [crate::yaml::Entry] = match &parent.node.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        };
        Fields {
            parent,
            entries: entries.iter(),
            expected,
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Fields<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for entry in self.entries.by_ref() {
            let Some(key) = entry.key.text() else {
                let key_de = self.parent.child(&entry.key, self.parent.path.clone());
                key_de.expected("a string key");
                continue;
            };
            let path = path::field(&self.parent.path, key);
            if let Some(expected) = self.expected {
                if !expected.contains(&key) {
                    let key_de = self.parent.child(&entry.key, path);
                    key_de.report(if key == "<<" {
                        "YAML merge keys (<<) are not supported; write the fields out".to_string()
                    } else {
                        suggest::unknown("field", key, expected)
                    });
                    continue;
                }
                self.value = Some((&entry.value, path));
                let key_de: StrDeserializer<'_, Error> = key.into_deserializer();
                return seed.deserialize(key_de).map(Some);
            }
            self.value = Some((&entry.value, path.clone()));
            return seed
                .deserialize(self.parent.child(&entry.key, path))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some((node, path)) => seed.deserialize(self.parent.child(node, path)),
            None => Err(de::Error::custom("value asked before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Hands `Spanned` its line, column, path and then the value itself.
struct Position<'a, 'b> {
    de: &'b De<'a>,
    next: usize,
}

impl<'a, 'b> Position<'a, 'b> {
    fn new(de: &'b De<'a>) -> Self {
        Position { de, next: 0 }
    }
}

impl<'de> MapAccess<'de> for Position<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match SPANNED_FIELDS.get(self.next) {
            Some(name) => {
                let key: StrDeserializer<'_, Error> = name.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let field = self.next;
        self.next += 1;
        let pos = self.de.node.pos;
        match field {
            0 => seed.deserialize(UsizeDeserializer::<Error>::new(pos.line)),
            1 => seed.deserialize(UsizeDeserializer::<Error>::new(pos.column)),
            2 => seed.deserialize(StringDeserializer::<Error>::new(self.de.path.clone())),
            _ => seed.deserialize(self.de.child(self.de.node, self.de.path.clone())),
        }
    }
}

/// The variant is the node's shape; its content is the same node.
struct ShapeAccess<'a, 'b> {
    de: &'b De<'a>,
    shape: &'static str,
}

impl<'de, 'a, 'b> EnumAccess<'de> for ShapeAccess<'a, 'b> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let name: StrDeserializer<'_, Error> = self.shape.into_deserializer();
        let variant = seed.deserialize(name)?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for ShapeAccess<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.de.child(self.de.node, self.de.path.clone()))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.de
            .child(self.de.node, self.de.path.clone())
            .deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.de
            .child(self.de.node, self.de.path.clone())
            .deserialize_struct("", fields, visitor)
    }
}
