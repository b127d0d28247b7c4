//! The Huffman code of RFC 7541 Appendix B, and its encoder and decoder (§5.2).
//!
//! The code is canonical (within a length, codes ascend with the symbol), so decoding
//! needs no tree: a 1,024-entry table answers every code of up to 10 bits (all letters,
//! digits and the usual punctuation of header values) from one lookup, and the rare longer
//! codes are found by comparing the next bits with the first code of each longer length.
//! Both tables are derived from [`CODES`] at compile time, and the build fails if the
//! code were not canonical, so a typo in the table cannot go unnoticed.

use bytes::BytesMut;

/// A Huffman-coded string that RFC 7541 §5.2 forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HuffmanError {
    /// The end-of-string symbol is only ever padding: coded in full, it is an attack or
    /// a broken encoder.
    #[error("EOS symbol inside a Huffman-coded string")]
    Eos,
    /// The string ends in bits that are not a prefix of EOS, or in 8 or more of them: a
    /// truncated code, or padding an encoder never writes.
    #[error("Huffman-coded string ends in invalid padding")]
    InvalidPadding,
}

/// (code, length in bits) of each symbol: the bytes 0 to 255, then EOS.
#[rustfmt::skip]
pub(super) const CODES: [(u32, u8); 257] = [
    // 0 to 31: control characters
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    // ' ' ! " # $ % & '
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    // ( ) * + , - . /
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    // 0 to 9
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6),
    // : ; < = > ? @
    (0x5c, 7), (0xfb, 8), (0x7ffc, 15), (0x20, 6),
    (0xffb, 12), (0x3fc, 10), (0x1ffa, 13),
    // A to Z
    (0x21, 6), (0x5d, 7), (0x5e, 7), (0x5f, 7),
    (0x60, 7), (0x61, 7), (0x62, 7), (0x63, 7),
    (0x64, 7), (0x65, 7), (0x66, 7), (0x67, 7),
    (0x68, 7), (0x69, 7), (0x6a, 7), (0x6b, 7),
    (0x6c, 7), (0x6d, 7), (0x6e, 7), (0x6f, 7),
    (0x70, 7), (0x71, 7), (0x72, 7), (0xfc, 8),
    (0x73, 7), (0xfd, 8),
    // [ \ ] ^ _ `
    (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14),
    (0x22, 6), (0x7ffd, 15),
    // a to z
    (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6),
    (0x5, 5), (0x25, 6), (0x26, 6), (0x27, 6),
    (0x6, 5), (0x74, 7), (0x75, 7), (0x28, 6),
    (0x29, 6), (0x2a, 6), (0x7, 5), (0x2b, 6),
    (0x76, 7), (0x2c, 6), (0x8, 5), (0x9, 5),
    (0x2d, 6), (0x77, 7), (0x78, 7), (0x79, 7),
    (0x7a, 7), (0x7b, 7),
    // { | } ~ DEL
    (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13),
    (0xffffffc, 28),
    // 128 to 255
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    // EOS
    (0x3fffffff, 30),
];

const MAX_LEN: usize = 30;

/// Codes of up to this many bits are decoded by one lookup in [`SHORT`].
const SHORT_BITS: u32 = 10;

/// The next [`SHORT_BITS`] bits of input to `length << 8 | symbol`, or 0 when they begin
/// a longer code.
static SHORT: [u16; 1 << SHORT_BITS] = short_table();

/// The canonical code's layout: its codes of one length are consecutive, from `first`.
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    /// Where the symbols of each length start in `symbols`.
    offset: [usize; MAX_LEN + 1],
    /// The symbols in code order.
    symbols: [u16; 257],
}

static CANONICAL: Canonical = canonical();

const fn canonical() -> Canonical {
    let mut count = [0u32; MAX_LEN + 1];
    let mut sym = 0;
    while sym < CODES.len() {
        count[CODES[sym].1 as usize] += 1;
        sym += 1;
    }
    let mut first = [0u32; MAX_LEN + 1];
    let mut offset = [0usize; MAX_LEN + 1];
    let mut symbols = [0u16; 257];
    let mut code = 0u32;
    let mut placed = 0usize;
    let mut len = 1;
    while len <= MAX_LEN {
        code = (code + count[len - 1]) << 1;
        first[len] = code;
        offset[len] = placed;
        let mut next = code;
        let mut sym = 0;
        while sym < CODES.len() {
            if CODES[sym].1 as usize == len {
                // The build fails here if CODES holds a typo: a canonical code is
                // fully determined by its lengths.
                assert!(CODES[sym].0 == next, "CODES is not the canonical code");
                next += 1;
                symbols[placed] = sym as u16;
                placed += 1;
            }
            sym += 1;
        }
        len += 1;
    }
    assert!(placed == CODES.len() && code + count[MAX_LEN] == 1 << MAX_LEN);
    Canonical {
        first,
        count,
        offset,
        symbols,
    }
}

const fn short_table() -> [u16; 1 << SHORT_BITS] {
    let mut table = [0u16; 1 << SHORT_BITS];
    let mut sym = 0;
    while sym < CODES.len() {
        let (code, len) = CODES[sym];
        if len as u32 <= SHORT_BITS {
            let spread = SHORT_BITS - len as u32;
            let start = (code << spread) as usize;
            let mut i = 0;
            while i < 1 << spread {
                // EOS is 30 bits long, so every symbol here is a byte.
                table[start + i] = (len as u16) << 8 | sym as u16;
                i += 1;
            }
        }
        sym += 1;
    }
    table
}

/// The length of `src` Huffman-coded, padding included: summed first so the encoder can
/// choose the shorter form before writing anything.
pub(super) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends `src` Huffman-coded to `dst`, padded with the most significant bits of EOS.
pub(super) fn encode(src: &[u8], dst: &mut BytesMut) {
    // Pending bits sit at the bottom of `acc`: fewer than 32 after each flush, so a
    // 30-bit code always fits.
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in src {
        let (code, len) = CODES[usize::from(b)];
        acc = acc << len | u64::from(code);
        bits += u32::from(len);
        if bits >= 32 {
            bits -= 32;
            dst.extend_from_slice(&((acc >> bits) as u32).to_be_bytes());
        }
    }
    // At most 31 bits left: up to 4 bytes, the last padded with ones.
    let pad = (8 - bits % 8) % 8;
    let tail = (acc << pad | ((1 << pad) - 1)) as u32;
    let tail_len = (bits + pad) as usize / 8;
    dst.extend_from_slice(&tail.to_be_bytes()[4 - tail_len..]);
}

/// Appends the Huffman-coded `src`, decoded, to `dst`.
///
/// On error `dst` is left as it was.
pub(super) fn decode(src: &[u8], dst: &mut BytesMut) -> Result<(), HuffmanError> {
    let start = dst.len();
    let mut out = Output {
        dst,
        chunk: [0; 64],
        len: 0,
    };
    match decode_into(src, &mut out) {
        Ok(()) => {
            out.flush();
            Ok(())
        }
        Err(error) => {
            out.dst.truncate(start);
            Err(error)
        }
    }
}

/// Decoded bytes on their way to a `BytesMut`, a chunk at a time: storing into an array
/// costs an instruction or two a byte, `BytesMut`'s own methods a call.
struct Output<'a> {
    dst: &'a mut BytesMut,
    chunk: [u8; 64],
    len: usize,
}

impl Output<'_> {
    #[inline(always)]
    fn push(&mut self, byte: u8) {
        if self.len == self.chunk.len() {
            self.flush();
        }
        if let Some(slot) = self.chunk.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn flush(&mut self) {
        self.dst.extend_from_slice(&self.chunk[..self.len]);
        self.len = 0;
    }
}

/// Decodes `src` into `out`.
fn decode_into(src: &[u8], out: &mut Output<'_>) -> Result<(), HuffmanError> {
    // The next bit of input is the top bit of `acc`; `bits` of it are real, the rest 0.
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    let mut input = src.iter();
    // While at least a longest code's worth of bits is left, no code can reach past the
    // input: nothing to check but the symbol.
    loop {
        if bits < MAX_LEN as u32 {
            while bits <= 56 {
                let Some(&byte) = input.next() else { break };
                acc |= u64::from(byte) << (56 - bits);
                bits += 8;
            }
            if bits < MAX_LEN as u32 {
                break;
            }
        }
        let (sym, code_len) = symbol(acc)?;
        out.push(sym);
        acc <<= code_len;
        bits -= code_len;
    }
    // The input is used up: what is left must be whole codes, then padding.
    loop {
        // Fewer than 8 bits end the string if they are EOS's first bits, all ones. No
        // code of 7 bits or fewer is all ones, so there is no ambiguity.
        if bits < 8 && (bits == 0 || acc >> (64 - bits) == (1 << bits) - 1) {
            return Ok(());
        }
        let (sym, code_len) = symbol(acc)?;
        // A code reaching into the zeros past the input: the string ends inside it.
        if code_len > bits {
            return Err(HuffmanError::InvalidPadding);
        }
        out.push(sym);
        acc <<= code_len;
        bits -= code_len;
    }
}

/// The symbol at the top of `acc`, and its length.
#[inline(always)]
fn symbol(acc: u64) -> Result<(u8, u32), HuffmanError> {
    let short = SHORT[(acc >> (64 - SHORT_BITS)) as usize];
    if short != 0 {
        Ok((short as u8, u32::from(short >> 8)))
    } else {
        long_code(acc)
    }
}

/// The symbol and length of a code longer than [`SHORT_BITS`] at the top of `acc`.
#[cold]
fn long_code(acc: u64) -> Result<(u8, u32), HuffmanError> {
    let table = &CANONICAL;
    for len in SHORT_BITS as usize + 1..=MAX_LEN {
        let code = (acc >> (64 - len)) as u32;
        // No shorter code matched, so `code` is at least `first[len]`.
        let rank = code.wrapping_sub(table.first[len]);
        if rank < table.count[len] {
            let sym = table.symbols[table.offset[len] + rank as usize];
            // Only EOS is not a byte.
            return u8::try_from(sym)
                .map(|sym| (sym, len as u32))
                .map_err(|_| HuffmanError::Eos);
        }
    }
    // The code is complete (every 30-bit string begins with a code), so the loop
    // returns; should it not, the string is refused rather than misread.
    Err(HuffmanError::InvalidPadding)
}
