//! The codec's tests against RFC 7541 Appendix C, hostile blocks, and itself.

mod hostile;
mod huffman;
mod rfc;
mod round_trip;

use std::convert::Infallible;

use bytes::Bytes;

use super::{DecodeError, Decoder, Field};

/// A header list as text, for comparisons that print readably.
type List = Vec<(String, String)>;

/// Room for any list the tests decode unless they test the limit.
const LIST_LIMIT: usize = 1 << 20;

/// The bytes written as hex, spaces allowed (as the RFC prints them).
fn hex(text: &str) -> Bytes {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex: {text}");
    let byte = |pair: &[u8]| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    digits.chunks(2).map(byte).collect::<Vec<u8>>().into()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn pair(field: &Field) -> (String, String) {
    (text(field.name.as_bytes()), text(&field.value))
}

fn list(pairs: &[(&str, &str)]) -> List {
    pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Decodes `block`, collecting every field.
fn decode_fields(
    decoder: &mut Decoder,
    block: &Bytes,
) -> Result<Vec<Field>, DecodeError<Infallible>> {
    let mut fields = Vec::new();
    decoder.decode(block, |field| {
        fields.push(field);
        Ok::<_, Infallible>(())
    })?;
    Ok(fields)
}

fn decode_list(decoder: &mut Decoder, block: &Bytes) -> Result<List, DecodeError<Infallible>> {
    Ok(decode_fields(decoder, block)?.iter().map(pair).collect())
}

/// The dynamic table, newest first, with each entry's size, and the table's size.
fn table(decoder: &Decoder) -> (Vec<(String, String, usize)>, usize) {
    let table = decoder.table();
    let entries = table
        .iter()
        .map(|e| (text(e.name.as_bytes()), text(&e.value), e.size()))
        .collect();
    (entries, table.size())
}
