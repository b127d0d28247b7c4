//! The Huffman code (RFC 7541 §5.2, Appendix B): every byte and random strings round
//! trip, and the strings §5.2 forbids are refused.

use bytes::BytesMut;
use proptest::prelude::*;

use crate::listener::http2::hpack::huffman::{CODES, HuffmanError, decode, encode, encoded_len};

fn round_trip(src: &[u8]) -> Vec<u8> {
    let mut coded = BytesMut::new();
    encode(src, &mut coded);
    assert_eq!(coded.len(), encoded_len(src));
    let mut decoded = BytesMut::new();
    decode(&coded, &mut decoded).expect("decodes");
    decoded.to_vec()
}

fn decode_vec(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
    let mut dst = BytesMut::new();
    decode(src, &mut dst).map(|()| dst.to_vec())
}

#[test]
fn every_byte_round_trips_alone_and_in_runs() {
    for b in 0..=255u8 {
        assert_eq!(round_trip(&[b]), [b], "{b}");
        assert_eq!(round_trip(&[b; 9]), [b; 9], "{b}");
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(round_trip(&all), all);
}

#[test]
fn encodes_the_rfc_examples() {
    let mut dst = BytesMut::new();
    encode(b"www.example.com", &mut dst);
    assert_eq!(
        dst[..],
        *b"\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff"
    );
    dst.clear();
    encode(b"no-cache", &mut dst);
    assert_eq!(dst[..], *b"\xa8\xeb\x10\x64\x9c\xbf");
}

#[test]
fn the_empty_string_is_empty() {
    assert_eq!(encoded_len(b""), 0);
    assert_eq!(decode_vec(b""), Ok(vec![]));
}

#[test]
fn refuses_padding_that_is_not_all_ones() {
    // "0" is 00000, padded with 111: 0x07. Clear a padding bit.
    assert_eq!(decode_vec(&[0x07]), Ok(b"0".to_vec()));
    assert_eq!(decode_vec(&[0x06]), Err(HuffmanError::InvalidPadding));
    assert_eq!(decode_vec(&[0x03]), Err(HuffmanError::InvalidPadding));
}

#[test]
fn refuses_padding_longer_than_seven_bits() {
    assert_eq!(decode_vec(&[0xff]), Err(HuffmanError::InvalidPadding));
    // "0" then a whole byte of ones.
    assert_eq!(decode_vec(&[0x07, 0xff]), Err(HuffmanError::InvalidPadding));
    assert_eq!(decode_vec(&[0xff, 0xff]), Err(HuffmanError::InvalidPadding));
}

#[test]
fn refuses_the_eos_symbol_inside_a_string() {
    // "0" (00000), EOS (30 ones), "0" again: 40 bits, 5 bytes.
    let bits: u64 = 0x3fff_ffff << 5;
    assert_eq!(decode_vec(&bits.to_be_bytes()[3..]), Err(HuffmanError::Eos));
    // Four bytes of ones: EOS then two bits of padding.
    assert_eq!(decode_vec(&[0xff; 4]), Err(HuffmanError::Eos));
}

#[test]
fn refuses_a_string_cut_inside_a_long_code() {
    // '\\' is 19 bits: two bytes hold only its first 16.
    let (code, len) = CODES[usize::from(b'\\')];
    let cut = (code >> (u32::from(len) - 16)) as u16;
    assert_eq!(
        decode_vec(&cut.to_be_bytes()),
        Err(HuffmanError::InvalidPadding)
    );
}

proptest! {
    #[test]
    fn random_bytes_round_trip(src in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(round_trip(&src), src);
    }

    #[test]
    fn arbitrary_input_never_panics_and_decodes_to_at_most_eight_fifths(
        src in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut dst = BytesMut::new();
        if decode(&src, &mut dst).is_ok() {
            prop_assert!(dst.len() <= src.len() * 8 / 5);
        }
    }
}
