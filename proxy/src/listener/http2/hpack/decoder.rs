//! The decoder: a request's header block to its fields, in order (RFC 7541 §3, §6).

use bytes::{Bytes, BytesMut};

use super::huffman::{self, HuffmanError};
use super::static_table::{self, StaticName};
use super::table::{DynamicTable, NameRef};
use super::{Field, Name};

/// A Huffman string's scratch buffer is at least this large: one allocation then serves
/// the Huffman strings of several blocks (a request after the first is mostly indexed
/// fields), and a field kept by the caller pins at most this much beyond its own bytes.
const MIN_SCRATCH: usize = 1024;

/// A block the peer's encoder could not have written: the decoder's table can no longer
/// be trusted to match the peer's, so the connection ends with COMPRESSION_ERROR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error("HPACK index {0} is in neither the static nor the dynamic table")]
    InvalidIndex(usize),
    #[error("HPACK integer over 32 bits")]
    IntegerOverflow,
    #[error("header block ends inside a field representation")]
    Truncated,
    #[error("HPACK string of {0} bytes runs past the end of its header block")]
    StringPastEnd(usize),
    #[error(transparent)]
    Huffman(#[from] HuffmanError),
    #[error("dynamic table size update to {size} over our limit of {limit}")]
    SizeUpdateTooLarge { size: usize, limit: usize },
    /// Updates are allowed at the start of a block only, and at most two (§4.2).
    #[error("dynamic table size update after the start of a header block")]
    MisplacedSizeUpdate,
    /// We lowered our limit below the table's size, and the peer's next block did not
    /// begin by shrinking the table (§4.2).
    #[error("header block lacks the dynamic table size update our lowered limit requires")]
    MissingSizeUpdate,
}

/// Why a header block was not decoded into its fields.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError<E> {
    /// A connection error: COMPRESSION_ERROR.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The fields add up to more than the header list limit: answered 431. The block was
    /// still decoded to its end, so the connection can go on.
    #[error("header list over {limit} bytes")]
    HeaderListTooLarge { limit: usize },
    /// The caller's callback refused a field. The block was still decoded to its end, so
    /// the connection can go on.
    #[error("{0}")]
    Field(E),
}

/// Decodes the header blocks of one connection's requests: its dynamic table follows the
/// peer's encoder block after block.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Our SETTINGS_HEADER_TABLE_SIZE, as acknowledged: the most a size update may ask.
    limit: usize,
    /// Our limit fell below the table's size: the next block must begin with an update.
    update_required: bool,
    max_header_list_size: usize,
    /// Where Huffman strings are decoded; each leaves it split off and frozen.
    scratch: BytesMut,
}

impl Decoder {
    /// A decoder for a connection whose SETTINGS_HEADER_TABLE_SIZE in force is
    /// `max_table_size` (the protocol's 4,096 until a SETTINGS of ours saying otherwise
    /// is acknowledged: then [`Decoder::set_max_table_size`]) and whose requests may carry
    /// header lists of at most `max_header_list_size` bytes (RFC 9113 §6.5.2 sizes). The
    /// list limit has no default: without one, a small block naming a large entry again
    /// and again would expand without bound.
    pub fn new(max_table_size: usize, max_header_list_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            limit: max_table_size,
            update_required: false,
            max_header_list_size,
            scratch: BytesMut::new(),
        }
    }

    /// Our new SETTINGS_HEADER_TABLE_SIZE, once the peer has acknowledged it. Below the
    /// table's current size, the peer's next block must shrink the table first.
    #[cfg(test)]
    pub fn set_max_table_size(&mut self, max_table_size: usize) {
        self.limit = max_table_size;
        if max_table_size < self.table.max_size() {
            self.update_required = true;
        }
    }

    #[cfg(test)]
    pub fn set_max_header_list_size(&mut self, max_header_list_size: usize) {
        self.max_header_list_size = max_header_list_size;
    }

    /// Decodes one complete header block (a HEADERS frame's fragment and its
    /// CONTINUATIONs', joined), handing `on_field` each field in order.
    ///
    /// The block is decoded to its end whatever happens to its fields, so that the
    /// dynamic table stays in step with the peer's: once the fields exceed the header
    /// list limit, or `on_field` returns an error, no more fields are handed out, and
    /// that is the error returned at the end (unless the block turns out to be corrupt,
    /// which is the connection's error and takes precedence). The fields already handed
    /// out are the caller's to discard. After a [`DecodeError::Compression`], the table
    /// is no longer the peer's: the decoder must not be used again.
    pub fn decode<E>(
        &mut self,
        block: &Bytes,
        mut on_field: impl FnMut(Field) -> Result<(), E>,
    ) -> Result<(), DecodeError<E>> {
        let bytes: &[u8] = block;
        let mut pos = 0;
        self.size_updates(bytes, &mut pos)?;
        let mut list_size = 0usize;
        let mut stopped = None;
        while let Some(&first) = bytes.get(pos) {
            // Indexed fields, nearly all of a request's once the table is warm, are
            // decoded inline; literals out of line.
            let field = if first & 0x80 != 0 {
                let index = integer(bytes, &mut pos, 7)?;
                self.indexed(index)?
            } else {
                self.literal(first, block, &mut pos)?
            };
            if stopped.is_some() {
                continue;
            }
            list_size = list_size.saturating_add(field.size());
            if list_size > self.max_header_list_size {
                let limit = self.max_header_list_size;
                stopped = Some(DecodeError::HeaderListTooLarge { limit });
            } else if let Err(error) = on_field(field) {
                stopped = Some(DecodeError::Field(error));
            }
        }
        stopped.map_or(Ok(()), Err)
    }

    /// The dynamic table size updates that may open a block (§4.2, §6.3).
    fn size_updates(&mut self, block: &[u8], pos: &mut usize) -> Result<(), CompressionError> {
        let mut updates = 0;
        while block.get(*pos).is_some_and(|&b| b & 0xe0 == 0x20) {
            if updates == 2 {
                return Err(CompressionError::MisplacedSizeUpdate);
            }
            let size = integer(block, pos, 5)?;
            if size > self.limit {
                let limit = self.limit;
                return Err(CompressionError::SizeUpdateTooLarge { size, limit });
            }
            self.table.set_max_size(size);
            updates += 1;
        }
        if self.update_required && updates == 0 {
            return Err(CompressionError::MissingSizeUpdate);
        }
        self.update_required = false;
        Ok(())
    }

    /// An indexed field (§6.1).
    #[inline]
    fn indexed(&self, index: usize) -> Result<Field, CompressionError> {
        let (name, value) = match index {
            1..=static_table::LEN => {
                let value = static_table::entry(index).value.as_bytes();
                (
                    Name::Static(StaticName::of_entry(index)),
                    Bytes::from_static(value),
                )
            }
            _ => {
                let entry = self.dynamic(index)?;
                (entry.name.clone(), entry.value.clone())
            }
        };
        Ok(Field {
            name,
            value,
            never_indexed: false,
        })
    }

    /// A literal field (§6.2), whose first byte is `first`, at `block[*pos]`.
    #[inline(never)]
    fn literal(
        &mut self,
        first: u8,
        block: &Bytes,
        pos: &mut usize,
    ) -> Result<Field, CompressionError> {
        let (prefix, insert, never_indexed) = match first {
            0x40..=0x7f => (6, true, false),
            0x10..=0x1f => (4, false, true),
            0x00..=0x0f => (4, false, false),
            // 001xxxxx, a size update: only before the first field. (Indexed fields,
            // 1xxxxxxx, are decoded by the caller.)
            _ => return Err(CompressionError::MisplacedSizeUpdate),
        };
        let index = integer(block, pos, prefix)?;
        let name = match index {
            0 => Name::Literal(self.string(block, pos)?),
            index => self.name(index)?,
        };
        let value = self.string(block, pos)?;
        if insert {
            self.table.insert(NameRef::of(&name), &value);
        }
        Ok(Field {
            name,
            value,
            never_indexed,
        })
    }

    fn name(&self, index: usize) -> Result<Name, CompressionError> {
        match index {
            1..=static_table::LEN => Ok(Name::Static(StaticName::of_entry(index))),
            _ => self.dynamic(index).map(|entry| entry.name.clone()),
        }
    }

    fn dynamic(&self, index: usize) -> Result<&super::table::Entry, CompressionError> {
        index
            .checked_sub(static_table::LEN + 1)
            .and_then(|position| self.table.get(position))
            .ok_or(CompressionError::InvalidIndex(index))
    }

    /// A string literal (§5.2): a slice of the block, or decoded into the scratch buffer.
    fn string(&mut self, block: &Bytes, pos: &mut usize) -> Result<Bytes, CompressionError> {
        let Some(&first) = block.get(*pos) else {
            return Err(CompressionError::Truncated);
        };
        let len = integer(block, pos, 7)?;
        let start = *pos;
        if len > block.len() - start {
            return Err(CompressionError::StringPastEnd(len));
        }
        *pos = start + len;
        if first & 0x80 == 0 {
            return Ok(block.slice(start..start + len));
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        // Every code is at least 5 bits, so `len` bytes decode to at most len * 8 / 5.
        // When the scratch buffer lacks room for that, it is given room for every string
        // left in the block at once: at most one allocation per block.
        if self.scratch.capacity() < len * 8 / 5 {
            let rest = (block.len() - start) * 8 / 5;
            if !self.scratch.try_reclaim(rest) {
                self.scratch = BytesMut::with_capacity(rest.max(MIN_SCRATCH));
            }
        }
        huffman::decode(&block[start..start + len], &mut self.scratch)?;
        Ok(self.scratch.split().freeze())
    }

    #[cfg(test)]
    pub(super) fn table(&self) -> &DynamicTable {
        &self.table
    }
}

/// An integer with an N-bit prefix (§5.1), starting at `block[*pos]`.
///
/// Refused past 32 bits, and so after at most five continuation bytes: no value a peer
/// may send is larger (SETTINGS values are 32-bit), and a string of continuation bytes
/// cannot make the decoder loop or overflow.
#[inline]
fn integer(block: &[u8], pos: &mut usize, prefix_bits: u32) -> Result<usize, CompressionError> {
    let Some(&first) = block.get(*pos) else {
        return Err(CompressionError::Truncated);
    };
    *pos += 1;
    let max_prefix = (1u8 << prefix_bits) - 1;
    let prefix = first & max_prefix;
    if prefix < max_prefix {
        return Ok(usize::from(prefix));
    }
    continued(block, pos, max_prefix)
}

/// The continuation bytes of an integer that filled its prefix: rare for the short
/// indices and lengths of requests, so kept out of line.
#[inline(never)]
fn continued(block: &[u8], pos: &mut usize, max_prefix: u8) -> Result<usize, CompressionError> {
    let mut value = u64::from(max_prefix);
    let mut shift = 0;
    loop {
        let Some(&byte) = block.get(*pos) else {
            return Err(CompressionError::Truncated);
        };
        *pos += 1;
        value += u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err(CompressionError::IntegerOverflow);
        }
    }
    u32::try_from(value)
        .ok()
        .and_then(|value| usize::try_from(value).ok())
        .ok_or(CompressionError::IntegerOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_rfc_integer_examples() {
        // C.1.1: 10 on a 5-bit prefix; C.1.2: 1337 on a 5-bit prefix; C.1.3: 42 on 8 bits
        // (HPACK never uses 8, so the 7-bit form of a small number stands in).
        assert_eq!(integer(&[0xea], &mut 0, 5), Ok(10));
        let mut pos = 0;
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a, 0xff], &mut pos, 5), Ok(1337));
        assert_eq!(pos, 3);
        assert_eq!(integer(&[0x2a], &mut 0, 7), Ok(42));
    }

    #[test]
    fn reads_the_largest_32_bit_integer_and_refuses_the_next() {
        // u32::MAX on a 5-bit prefix: 31 + 4294967264, in five continuation bytes.
        let max = [0x1f, 0xe0, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(integer(&max, &mut 0, 5), Ok(u32::MAX as usize));
        let over = [0x1f, 0xe1, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            integer(&over, &mut 0, 5),
            Err(CompressionError::IntegerOverflow)
        );
    }

    #[test]
    fn refuses_a_sixth_continuation_byte_even_of_zeros() {
        let long = [0x7f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            integer(&long, &mut 0, 7),
            Err(CompressionError::IntegerOverflow)
        );
        let five = [0x7f, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(integer(&five, &mut 0, 7), Ok(127));
    }

    #[test]
    fn refuses_an_integer_cut_short() {
        assert_eq!(
            integer(&[0x7f, 0x80], &mut 0, 7),
            Err(CompressionError::Truncated)
        );
        assert_eq!(integer(&[], &mut 0, 7), Err(CompressionError::Truncated));
    }
}
