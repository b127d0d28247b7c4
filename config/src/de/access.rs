//! The serde access types the deserializer hands to visitors: list items, struct and
//! map fields, the position side channel of `Spanned`, and shape-chosen enum variants.

use serde::de::value::{StrDeserializer, StringDeserializer, UsizeDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::{De, Error, SPANNED_FIELDS};
use crate::path;
use crate::suggest;
use crate::yaml::{Entry, Kind, Node};

/// List items, each at `path[i]`.
pub(super) struct Items<'a, 'b> {
    parent: &'b De<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'a, 'b> Items<'a, 'b> {
    pub(super) fn new(parent: &'b De<'a>, items: &'a [Node]) -> Self {
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
pub(super) struct Fields<'a, 'b> {
    parent: &'b De<'a>,
    entries: std::slice::Iter<'a, Entry>,
    expected: Option<&'static [&'static str]>,
    value: Option<(&'a Node, String)>,
}

impl<'a, 'b> Fields<'a, 'b> {
    pub(super) fn new(parent: &'b De<'a>, expected: Option<&'static [&'static str]>) -> Self {
        let entries: &'a [Entry] = match &parent.node.kind {
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
pub(super) struct Position<'a, 'b> {
    de: &'b De<'a>,
    next: usize,
}

impl<'a, 'b> Position<'a, 'b> {
    pub(super) fn new(de: &'b De<'a>) -> Self {
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
pub(super) struct ShapeAccess<'a, 'b> {
    pub(super) de: &'b De<'a>,
    pub(super) shape: &'static str,
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
