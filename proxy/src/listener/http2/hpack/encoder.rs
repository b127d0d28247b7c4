//! The encoder: a response's header fields to a header block (RFC 7541 §6), and the
//! policy of what it adds to the dynamic table.
//!
//! What to index is a bet on what the next responses repeat. Indexed: what a service
//! answers with again and again (`content-type`, `cache-control`, `server`, `vary`, a
//! status outside the static table), and `date`, which changes once a second: one new
//! entry a second, and every other response in that second says it in one byte. Sent
//! without indexing: values that differ per response or per resource (`content-length`,
//! `content-range`, `etag`, `last-modified`, `expires`, `age`, `location`, request and
//! trace ids), which would only push the repeated fields out of the table, and any field
//! taking more than three quarters of the table. Never indexed (§7.1.3): values marked
//! sensitive, and credentials and cookies, so that no later hop indexes them either and a
//! compression oracle (CRIME) has nothing to probe.

use bytes::BytesMut;
use http::{HeaderName, HeaderValue, StatusCode};

use super::huffman;
use super::static_table::{self as statics, StaticName};
use super::table::{DynamicTable, NameRef};
use super::{ENTRY_OVERHEAD, Name};

/// The most table we keep for the peer's decoder, even if it offers more: the RFC's
/// default, and enough for the fields a service repeats.
const MAX_TABLE_SIZE: usize = 4096;

/// How a field is represented when no entry holds it in full (§6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Indexing {
    Incremental,
    Without,
    Never,
}

/// Encodes the header blocks of one connection's responses, keeping the dynamic table
/// that the peer's decoder mirrors.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// The smallest table size since the last block began, when the size changed: the
    /// next block must tell the peer (§4.2), the smallest first, as entries were evicted.
    pending_update: Option<usize>,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            table: DynamicTable::new(MAX_TABLE_SIZE),
            pending_update: None,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE: the table becomes the smaller of it and
    /// [`MAX_TABLE_SIZE`] at once, and the next block announces the change.
    pub fn set_max_table_size(&mut self, peer_max: usize) {
        let size = peer_max.min(MAX_TABLE_SIZE);
        if size != self.table.max_size() {
            self.pending_update = Some(self.pending_update.map_or(size, |s| s.min(size)));
            self.table.set_max_size(size);
        }
    }

    /// Opens a header block: writes the size updates owed since the last one. Every
    /// block must begin with this call.
    pub fn begin_block(&mut self, dst: &mut BytesMut) {
        if let Some(smallest) = self.pending_update.take() {
            let size = self.table.max_size();
            if smallest < size {
                integer(smallest, 5, 0x20, dst);
            }
            integer(size, 5, 0x20, dst);
        }
    }

    /// `:status`, which comes first in a response block.
    pub fn encode_status(&mut self, status: StatusCode, dst: &mut BytesMut) {
        let index = match status.as_u16() {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => {
                let value = status.as_str().as_bytes();
                return self.encode(
                    statics::STATUS.as_str().as_bytes(),
                    Some(statics::STATUS),
                    value,
                    Indexing::Incremental,
                    dst,
                );
            }
        };
        integer(index, 7, 0x80, dst);
    }

    /// A regular header field.
    pub fn encode_field(&mut self, name: &HeaderName, value: &HeaderValue, dst: &mut BytesMut) {
        let name = name.as_str().as_bytes();
        let static_name = StaticName::lookup(name);
        let indexing = if value.is_sensitive() {
            Indexing::Never
        } else {
            indexing(name, static_name)
        };
        self.encode(name, static_name, value.as_bytes(), indexing, dst);
    }

    fn encode(
        &mut self,
        name: &[u8],
        static_name: Option<StaticName>,
        value: &[u8],
        indexing: Indexing,
        dst: &mut BytesMut,
    ) {
        let static_index = static_name.map(StaticName::index);
        match indexing {
            Indexing::Incremental => self.encode_indexing(name, static_name, value, dst),
            // Fields sent without indexing never enter the table, so only the static
            // table can hold their name.
            Indexing::Without => literal(0x00, 4, static_index, name, value, dst),
            Indexing::Never => literal(0x10, 4, static_index, name, value, dst),
        }
    }

    /// A field worth indexing: by index if a table holds it, else a literal that adds it
    /// to the table, unless it would push most of the table out.
    fn encode_indexing(
        &mut self,
        name: &[u8],
        static_name: Option<StaticName>,
        value: &[u8],
        dst: &mut BytesMut,
    ) {
        if let Some(index) = static_name.and_then(|s| s.with_value(value)) {
            return integer(index, 7, 0x80, dst);
        }
        let (full, by_name) = self.find(name, static_name, value);
        if let Some(index) = full {
            return integer(index, 7, 0x80, dst);
        }
        let name_index = static_name.map(StaticName::index).or(by_name);
        if name.len() + value.len() + ENTRY_OVERHEAD > self.table.max_size() / 4 * 3 {
            return literal(0x00, 4, name_index, name, value, dst);
        }
        literal(0x40, 6, name_index, name, value, dst);
        let name = static_name.map_or(NameRef::Bytes(name), NameRef::Static);
        self.table.insert(name, value);
    }

    /// The dynamic table's index of the field, and else of its name (newest first).
    fn find(
        &self,
        name: &[u8],
        static_name: Option<StaticName>,
        value: &[u8],
    ) -> (Option<usize>, Option<usize>) {
        let mut by_name = None;
        for (position, entry) in self.table.iter().enumerate() {
            let same_name = match (&entry.name, static_name) {
                (Name::Static(entry), Some(name)) => *entry == name,
                (Name::Literal(entry), None) => entry[..] == *name,
                _ => false,
            };
            if same_name {
                let index = statics::LEN + 1 + position;
                if entry.value[..] == *value {
                    return (Some(index), None);
                }
                by_name.get_or_insert(index);
            }
        }
        (None, by_name)
    }

    #[cfg(test)]
    pub(super) fn table(&self) -> &DynamicTable {
        &self.table
    }
}

/// The encoder's policy for a field not marked sensitive (see the module's doc).
fn indexing(name: &[u8], static_name: Option<StaticName>) -> Indexing {
    match static_name {
        Some(
            statics::AUTHORIZATION
            | statics::COOKIE
            | statics::PROXY_AUTHORIZATION
            | statics::SET_COOKIE,
        ) => Indexing::Never,
        Some(
            statics::AGE
            | statics::CONTENT_LENGTH
            | statics::CONTENT_RANGE
            | statics::ETAG
            | statics::EXPIRES
            | statics::LAST_MODIFIED
            | statics::LOCATION,
        ) => Indexing::Without,
        Some(_) => Indexing::Incremental,
        None => match name {
            b"x-request-id"
            | b"x-correlation-id"
            | b"traceparent"
            | b"b3"
            | b"x-b3-traceid"
            | b"x-b3-spanid"
            | b"x-b3-parentspanid"
            | b"x-amzn-trace-id"
            | b"x-cloud-trace-context"
            | b"x-envoy-upstream-service-time" => Indexing::Without,
            _ => Indexing::Incremental,
        },
    }
}

/// A literal field (§6.2): the representation's flags and prefix, then the name by
/// index or as a string, then the value.
fn literal(
    flags: u8,
    prefix_bits: u32,
    name_index: Option<usize>,
    name: &[u8],
    value: &[u8],
    dst: &mut BytesMut,
) {
    match name_index {
        Some(index) => integer(index, prefix_bits, flags, dst),
        None => {
            integer(0, prefix_bits, flags, dst);
            string(name, dst);
        }
    }
    string(value, dst);
}

/// A string literal (§5.2), Huffman-coded when that is shorter.
fn string(src: &[u8], dst: &mut BytesMut) {
    let coded = huffman::encoded_len(src);
    if coded < src.len() {
        integer(coded, 7, 0x80, dst);
        huffman::encode(src, dst);
    } else {
        integer(src.len(), 7, 0x00, dst);
        dst.extend_from_slice(src);
    }
}

/// An integer with an N-bit prefix (§5.1), the first byte's other bits being `flags`.
pub(super) fn integer(value: usize, prefix_bits: u32, flags: u8, dst: &mut BytesMut) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        return dst.extend_from_slice(&[flags | value as u8]);
    }
    dst.extend_from_slice(&[flags | max_prefix as u8]);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        dst.extend_from_slice(&[0x80 | (rest & 0x7f) as u8]);
        rest >>= 7;
    }
    dst.extend_from_slice(&[rest as u8]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_rfc_integer_examples() {
        let mut dst = BytesMut::new();
        integer(10, 5, 0, &mut dst);
        integer(1337, 5, 0, &mut dst);
        integer(42, 7, 0, &mut dst);
        integer(127, 7, 0x80, &mut dst);
        assert_eq!(dst[..], [0x0a, 0x1f, 0x9a, 0x0a, 0x2a, 0xff, 0x00]);
    }

    #[test]
    fn uses_the_static_table_for_common_statuses_and_indexes_the_others() {
        let mut encoder = Encoder::new();
        let mut dst = BytesMut::new();
        encoder.encode_status(StatusCode::OK, &mut dst);
        encoder.encode_status(StatusCode::NOT_FOUND, &mut dst);
        assert_eq!(dst[..], [0x88, 0x8d]);
        dst.clear();
        encoder.encode_status(StatusCode::FOUND, &mut dst);
        // Name index 8, then "302" Huffman-coded (two bytes beat three): RFC 7541 C.6.1.
        assert_eq!(dst[..], [0x48, 0x82, 0x64, 0x02]);
        dst.clear();
        encoder.encode_status(StatusCode::FOUND, &mut dst);
        assert_eq!(dst[..], [0xbe]);
    }

    #[test]
    fn never_indexes_credentials_and_sensitive_values() {
        let mut encoder = Encoder::new();
        let mut dst = BytesMut::new();
        let cookie = HeaderValue::from_static("id=1");
        encoder.encode_field(&http::header::SET_COOKIE, &cookie, &mut dst);
        assert_eq!(dst[0], 0x1f, "never indexed, static name 55 on 4 bits");
        let mut secret = HeaderValue::from_static("abc");
        secret.set_sensitive(true);
        dst.clear();
        encoder.encode_field(&HeaderName::from_static("x-api-key"), &secret, &mut dst);
        assert_eq!(dst[0], 0x10, "never indexed, literal name");
        assert_eq!(encoder.table.len(), 0);
    }

    #[test]
    fn does_not_index_values_that_change_per_response() {
        let mut encoder = Encoder::new();
        let mut dst = BytesMut::new();
        let length = HeaderValue::from_static("1234");
        encoder.encode_field(&http::header::CONTENT_LENGTH, &length, &mut dst);
        assert_eq!(dst[0], 0x0f, "without indexing, static name 28 on 4 bits");
        let id = HeaderValue::from_static("0af7651916cd43dd8448eb211c80319c");
        encoder.encode_field(&HeaderName::from_static("x-request-id"), &id, &mut dst);
        assert_eq!(encoder.table.len(), 0);
    }

    #[test]
    fn indexes_a_repeated_field_and_then_names_it_in_one_byte() {
        let mut encoder = Encoder::new();
        let mut dst = BytesMut::new();
        let json = HeaderValue::from_static("application/json");
        encoder.encode_field(&http::header::CONTENT_TYPE, &json, &mut dst);
        assert_eq!(
            dst[0], 0x5f,
            "incremental indexing, static name 31 on 6 bits"
        );
        dst.clear();
        encoder.encode_field(&http::header::CONTENT_TYPE, &json, &mut dst);
        assert_eq!(dst[..], [0xbe]);
    }

    #[test]
    fn does_not_index_a_field_taking_most_of_the_table() {
        let mut encoder = Encoder::new();
        encoder.set_max_table_size(256);
        let mut dst = BytesMut::new();
        encoder.begin_block(&mut dst);
        let big = HeaderValue::from_bytes(&[b'a'; 180]).unwrap();
        encoder.encode_field(&http::header::SERVER, &big, &mut dst);
        assert_eq!(encoder.table.len(), 0);
        let small = HeaderValue::from_bytes(&[b'a'; 100]).unwrap();
        encoder.encode_field(&http::header::SERVER, &small, &mut dst);
        assert_eq!(encoder.table.len(), 1);
    }

    #[test]
    fn announces_the_smallest_then_the_final_table_size() {
        let mut encoder = Encoder::new();
        let mut dst = BytesMut::new();
        encoder.begin_block(&mut dst);
        assert!(dst.is_empty(), "nothing changed");
        encoder.set_max_table_size(100);
        encoder.set_max_table_size(65536);
        encoder.begin_block(&mut dst);
        // 100 then 4096 on 5-bit prefixes.
        assert_eq!(dst[..], [0x3f, 0x45, 0x3f, 0xe1, 0x1f]);
        dst.clear();
        encoder.begin_block(&mut dst);
        assert!(dst.is_empty(), "announced once");
        encoder.set_max_table_size(0);
        encoder.begin_block(&mut dst);
        assert_eq!(dst[..], [0x20]);
    }
}
