//! The dynamic table (RFC 7541 §2.3.2, §4), the same for the decoder and the encoder.
//!
//! Entries are `Bytes`, so handing one out is a refcount, but they are copies into
//! buffers the table owns rather than slices of the blocks they arrived in: a slice would
//! keep its whole block (or the read buffer behind it) alive for as long as the entry
//! lives, and a peer could make 4 KiB of table pin a hundred blocks. The copies fill
//! chunks of [`CHUNK`] bytes in insertion order; as eviction is first-in first-out, the
//! live entries span a few consecutive chunks, so the table pins a small multiple of its
//! size. Only literals with incremental indexing are copied, and on a busy connection
//! those are rare: the point of the table is that fields repeat.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::static_table::StaticName;
use super::{ENTRY_OVERHEAD, Name};

/// Entries are copied into chunks of this size (an entry larger than a chunk gets its
/// own): one allocation serves many entries, and a chunk is reused once every entry and
/// field in it is gone.
const CHUNK: usize = 4096;

#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) name: Name,
    pub(super) value: Bytes,
}

impl Entry {
    pub(super) fn size(&self) -> usize {
        self.name.len() + self.value.len() + ENTRY_OVERHEAD
    }
}

/// A name to insert: the encoder's is not yet `Bytes`, and need not become one before
/// the table copies it.
#[derive(Clone, Copy, Debug)]
pub(super) enum NameRef<'a> {
    Static(StaticName),
    Bytes(&'a [u8]),
}

impl<'a> NameRef<'a> {
    pub(super) fn of(name: &'a Name) -> NameRef<'a> {
        match name {
            Name::Static(name) => NameRef::Static(*name),
            Name::Literal(bytes) => NameRef::Bytes(bytes),
        }
    }

    fn len(self) -> usize {
        match self {
            NameRef::Static(name) => name.as_str().len(),
            NameRef::Bytes(bytes) => bytes.len(),
        }
    }
}

#[derive(Debug)]
pub(super) struct DynamicTable {
    /// Newest first: position 0 is HPACK index 62.
    entries: VecDeque<Entry>,
    /// The sum of the entries' sizes (§4.1), at most `max_size`.
    size: usize,
    max_size: usize,
    /// The free end of the current chunk (always empty: filled, then split off).
    chunk: BytesMut,
}

impl DynamicTable {
    pub(super) fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
            chunk: BytesMut::new(),
        }
    }

    /// The entry at `position`, 0 being the newest.
    pub(super) fn get(&self, position: usize) -> Option<&Entry> {
        self.entries.get(position)
    }

    /// The entries, newest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    /// A dynamic table size update (§4.3): evicts until the entries fit.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Adds an entry (§4.4): evicts the oldest entries to make room, or empties the
    /// table when the entry is larger than the table itself.
    pub(super) fn insert(&mut self, name: NameRef<'_>, value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.make_room(size - ENTRY_OVERHEAD);
        let name = match name {
            NameRef::Static(name) => Name::Static(name),
            NameRef::Bytes(bytes) => Name::Literal(self.copy(bytes)),
        };
        let value = self.copy(value);
        self.entries.push_front(Entry { name, value });
        self.size += size;
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            let Some(oldest) = self.entries.pop_back() else {
                break;
            };
            self.size -= oldest.size();
        }
    }

    /// Makes the chunk hold at least `len` more bytes: reclaimed in place if nothing
    /// refers to it any more, else a new chunk.
    fn make_room(&mut self, len: usize) {
        if !self.chunk.try_reclaim(len) {
            self.chunk = BytesMut::with_capacity(len.max(CHUNK));
        }
    }

    fn copy(&mut self, bytes: &[u8]) -> Bytes {
        if bytes.is_empty() {
            return Bytes::new();
        }
        self.chunk.extend_from_slice(bytes);
        self.chunk.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(table: &DynamicTable) -> Vec<&[u8]> {
        table.iter().map(|e| e.name.as_bytes()).collect()
    }

    #[test]
    fn evicts_the_oldest_entries_to_make_room() {
        let mut table = DynamicTable::new(100);
        table.insert(NameRef::Bytes(b"a"), b"1"); // 34
        table.insert(NameRef::Bytes(b"b"), b"2"); // 68
        table.insert(NameRef::Bytes(b"c"), b"3"); // 102: evicts a
        assert_eq!(names(&table), [b"c", b"b"]);
        assert_eq!(table.size(), 68);
        table.set_max_size(40);
        assert_eq!(names(&table), [b"c"]);
        table.set_max_size(0);
        assert_eq!((table.len(), table.size()), (0, 0));
    }

    #[test]
    fn an_entry_larger_than_the_table_empties_it() {
        let mut table = DynamicTable::new(64);
        table.insert(NameRef::Bytes(b"a"), b"1");
        table.insert(NameRef::Bytes(b"big"), &[b'x'; 30]); // 65
        assert_eq!((table.len(), table.size()), (0, 0));
        table.insert(NameRef::Bytes(b"big"), &[b'x'; 29]); // exactly 64
        assert_eq!((table.len(), table.size()), (1, 64));
    }

    #[test]
    fn entries_are_copies_sharing_a_chunk() {
        let mut table = DynamicTable::new(4096);
        let block = Bytes::from_static(b"name value");
        table.insert(NameRef::Bytes(&block[..4]), &block[5..]);
        table.insert(NameRef::Static(super::super::static_table::STATUS), b"302");
        let newest = table.get(0).unwrap();
        assert_eq!(
            (newest.name.as_bytes(), &newest.value[..]),
            (&b":status"[..], &b"302"[..])
        );
        let oldest = table.get(1).unwrap();
        assert_eq!(oldest.name.as_bytes(), b"name");
        assert_ne!(oldest.value.as_ptr(), block[5..].as_ptr());
        // The second entry's value follows the first's in the same chunk.
        assert_eq!(newest.value.as_ptr(), oldest.value[5..].as_ptr());
    }
}
