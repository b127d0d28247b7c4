//! What a translation could not represent, said per field: [`Refusal`]s, and the fields
//! still set in a message once the translation took what it reads.
//!
//! Each translator takes the fields it understands out of its own copy of a message
//! (`std::mem::take`); whatever is still set afterwards is a setting meshwork would
//! silently drop, so it is refused by name ([`leftover`]) rather than ignored.

use std::fmt;

use prost::Message;

/// One thing a resource sets that meshwork cannot represent: the field's path in the
/// resource (`virtual_hosts[0].routes[2].route.hash_policy`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The refusals of one resource, each at a field path under `prefix`.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    list: Vec<Refusal>,
}

impl Refusals {
    pub fn refuse(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Refusal {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Refuses every field still set in `rest` (named from `names`, a table of
    /// `fields.rs`), at `path`.
    pub fn leftover<M: Message>(&mut self, path: &str, rest: &M, names: &[(u32, &str)]) {
        for number in set_fields(&rest.encode_to_vec()) {
            let name = names.iter().find(|(n, _)| *n == number).map_or_else(
                || format!("field #{number}"),
                |(_, name)| (*name).to_string(),
            );
            self.refuse(join(path, &name), "not supported by meshwork");
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_vec(self) -> Vec<Refusal> {
        self.list
    }
}

/// `path.field`, or `field` at the top.
pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The field numbers present in an encoded message, in order, each once. Protobuf does
/// not encode fields at their default value, so these are exactly the fields set.
fn set_fields(mut bytes: &[u8]) -> Vec<u32> {
    let mut numbers: Vec<u32> = Vec::new();
    while !bytes.is_empty() {
        let Some(key) = varint(&mut bytes) else { break };
        let number = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        let skip = match key & 7 {
            0 => varint(&mut bytes).map(|_| 0),
            1 => Some(8),
            2 => varint(&mut bytes).and_then(|n| usize::try_from(n).ok()),
            5 => Some(4),
            // Groups are not used by the Envoy API; stop rather than misread.
            _ => None,
        };
        if !numbers.contains(&number) {
            numbers.push(number);
        }
        match skip {
            Some(n) if n <= bytes.len() => bytes = &bytes[n..],
            _ => break,
        }
    }
    numbers
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::google::protobuf::{Duration, UInt32Value};

    use super::*;
    use crate::control_plane::xds::fields;

    #[test]
    fn fields_left_set_are_refused_by_name() {
        let rest = Cluster {
            cleanup_interval: Some(Duration {
                seconds: 1,
                nanos: 0,
            }),
            per_connection_buffer_limit_bytes: Some(UInt32Value { value: 0 }),
            close_connections_on_host_health_failure: true,
            ..Cluster::default()
        };
        let mut refusals = Refusals::default();
        refusals.leftover("", &rest, fields::CLUSTER);
        let fields: Vec<String> = refusals.into_vec().into_iter().map(|r| r.field).collect();
        assert_eq!(
            fields,
            [
                "per_connection_buffer_limit_bytes",
                "cleanup_interval",
                "close_connections_on_host_health_failure"
            ]
        );
    }

    #[test]
    fn a_message_at_its_defaults_leaves_nothing() {
        let mut refusals = Refusals::default();
        refusals.leftover("x", &Cluster::default(), fields::CLUSTER);
        assert!(refusals.is_empty());
    }

    #[test]
    fn unknown_numbers_are_named_by_number_and_garbage_ends_the_scan() {
        // field 1000, varint 1
        assert_eq!(set_fields(&[0xc0, 0x3e, 0x01]), [1000]);
        // a length past the end
        assert_eq!(set_fields(&[0x0a, 0x09, 0x01]), [1]);
        assert_eq!(set_fields(&[0xff]), Vec::<u32>::new());
    }
}
