//! HPACK (RFC 7541): the decoder of request header blocks and the encoder of response
//! header blocks for meshwork's HTTP/2 server connection.
//!
//! Written here because h2's HPACK is private to h2 and the public crates allocate per
//! header or are unmaintained. What shapes it:
//!
//! - Decoding a request is on every request's path, so it copies nothing it can share:
//!   a plain literal is a slice of the block, a Huffman-coded one a slice of a scratch
//!   buffer reserved once per block (and reused across blocks while it has room), an
//!   indexed field a refcounted clone of its table entry, and a static-table name arrives
//!   as a [`StaticName`] that maps to a prebuilt `http::HeaderName` without parsing.
//! - The peer is not trusted. Integers stop at 32 bits and 5 continuation bytes, every
//!   index and length is checked against its table or block, Huffman strings are held to
//!   §5.2, and size updates to our setting and to the start of a block. The dynamic table
//!   copies what it keeps into buffers of its own, so what it pins is a small multiple of
//!   its size, never the blocks its entries came from; and the header list limit bounds
//!   what one block can expand to, however often it names a large entry.
//! - A block is always decoded to its end, so the dynamic table stays in step with the
//!   peer's even when the request is refused: going over the header list limit, or the
//!   caller refusing a field, stops the fields but not the decoding, and is a stream
//!   error; any other error is the connection's (COMPRESSION_ERROR).

mod decoder;
mod encoder;
mod huffman;
mod static_table;
mod table;
#[cfg(test)]
mod tests;

use bytes::Bytes;

// Nothing outside the module uses the codec until the connection built on it does;
// the tests use every item, and keep the lint for their build.
#[cfg_attr(not(test), allow(unused_imports))]
pub use self::{
    decoder::{CompressionError, DecodeError, Decoder},
    encoder::Encoder,
    huffman::HuffmanError,
    static_table::{Pseudo, StaticName},
};

/// What each table entry costs beyond its name and value (§4.1), and what each field
/// costs beyond them in a header list (RFC 9113 §6.5.2): the same 32 octets.
const ENTRY_OVERHEAD: usize = 32;

/// One decoded header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Name,
    pub value: Bytes,
    /// Sent as never indexed (§6.2.3): a sensitive value that an intermediary must
    /// forward the same way (`HeaderValue::set_sensitive`).
    pub never_indexed: bool,
}

impl Field {
    /// The field's size in a header list (RFC 9113 §6.5.2) and in the dynamic table.
    pub fn size(&self) -> usize {
        self.name.len() + self.value.len() + ENTRY_OVERHEAD
    }
}

/// A decoded field's name, as bytes (not yet checked: RFC 9113 §8.2.1 is the caller's)
/// or, when it came from the static table, as which of its names.
///
/// Equality compares the spelling: a literal `content-type` equals the static one.
#[derive(Clone, Debug)]
pub enum Name {
    Static(StaticName),
    Literal(Bytes),
}

impl Name {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Static(name) => name.as_str().as_bytes(),
            Name::Literal(bytes) => bytes,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// The pseudo-header this name spells, whether it came from the static table or as a
    /// literal (as `:protocol` always does).
    #[cfg(test)]
    pub fn pseudo(&self) -> Option<Pseudo> {
        match self {
            Name::Static(name) => name.pseudo(),
            Name::Literal(bytes) if bytes.first() == Some(&b':') => Pseudo::from_bytes(bytes),
            Name::Literal(_) => None,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        match (self, other) {
            (Name::Static(a), Name::Static(b)) => a == b,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Name {}
