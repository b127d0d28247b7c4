//! `Spanned<T>`: a raw value with its position and field path, and `Entries<T>`: a
//! mapping with free-form keys kept in order with the keys' positions.
//!
//! Both only make sense with the recovering deserializer in `de.rs`, which hands them the
//! position through a magic struct name (as `toml::Spanned` does). A value that failed to
//! deserialize has already been reported; `Spanned` then holds `None` so the parent keeps
//! going and validation skips it without a second message.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::de::{RECORDED, SPANNED, SPANNED_FIELDS};
use crate::diagnostic::Pos;

/// A raw value, where it was written and its field path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spanned<T> {
    pub pos: Pos,
    pub path: String,
    /// `None` when the value was malformed (already reported).
    pub value: Option<T>,
}

impl<T> Spanned<T> {
    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }
}

/// A field that may be absent (or null), and whose value may have been malformed.
pub(crate) type Field<T> = Option<Spanned<T>>;

/// A list field of spanned items.
pub(crate) type List<T> = Field<Vec<Spanned<T>>>;

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, SpannedVisitor(PhantomData))
    }
}

struct SpannedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
    type Value = Spanned<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value with its position")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut spanned = Spanned {
            pos: Pos::default(),
            path: String::new(),
            value: None,
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "line" => spanned.pos.line = map.next_value()?,
                "column" => spanned.pos.column = map.next_value()?,
                "path" => spanned.path = map.next_value()?,
                "value" => match map.next_value::<T>() {
                    Ok(v) => spanned.value = Some(v),
                    // Reported where it happened; keep going with the value missing.
                    Err(e) if e.to_string() == RECORDED => {}
                    Err(e) => return Err(e),
                },
                other => return Err(de::Error::unknown_field(other, SPANNED_FIELDS)),
            }
        }
        Ok(spanned)
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A mapping with free-form keys (labels, header edits, route tables), in the order
/// written, each key with its position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entries<T>(pub Vec<(Spanned<String>, Spanned<T>)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EntriesVisitor(PhantomData))
    }
}

struct EntriesVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
    type Value = Entries<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<T>>()?;
            entries.push((key, value));
        }
        Ok(Entries(entries))
    }
}

impl<T: JsonSchema> JsonSchema for Entries<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let values = generator.subschema_for::<T>();
        schemars::json_schema!({
            "type": "object",
            "additionalProperties": values,
        })
    }

    fn inline_schema() -> bool {
        true
    }
}
