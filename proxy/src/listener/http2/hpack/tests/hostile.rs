//! Blocks a peer's encoder could not have written, and blocks built to expand.

use proptest::prelude::*;

use super::*;
use crate::listener::http2::hpack::{CompressionError, HuffmanError};

fn compression_error(decoder: &mut Decoder, block: &str) -> CompressionError {
    match decode_list(decoder, &hex(block)) {
        Err(DecodeError::Compression(error)) => error,
        other => panic!("{block}: {other:?}"),
    }
}

fn refused(block: &str) -> CompressionError {
    compression_error(&mut Decoder::new(4096, LIST_LIMIT), block)
}

#[test]
fn refuses_an_integer_over_32_bits() {
    assert_eq!(
        refused("ff ff ff ff ff 7f"),
        CompressionError::IntegerOverflow
    );
    assert_eq!(
        refused("ff 80 80 80 80 80 80 80 80 80 00"),
        CompressionError::IntegerOverflow
    );
}

#[test]
fn refuses_index_zero() {
    assert_eq!(refused("80"), CompressionError::InvalidIndex(0));
}

#[test]
fn refuses_an_index_past_the_dynamic_table() {
    assert_eq!(refused("be"), CompressionError::InvalidIndex(62));
    assert_eq!(
        refused("7e 01 61"),
        CompressionError::InvalidIndex(62),
        "a name index too"
    );
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    decode_list(&mut decoder, &hex("4001 6101 62")).unwrap();
    assert_eq!(
        decode_list(&mut decoder, &hex("be")).unwrap(),
        list(&[("a", "b")])
    );
    assert_eq!(
        compression_error(&mut decoder, "bf"),
        CompressionError::InvalidIndex(63)
    );
    assert_eq!(
        refused("ff ff ff ff ff 07"),
        CompressionError::InvalidIndex(0x8000_007e)
    );
}

#[test]
fn refuses_a_string_longer_than_the_rest_of_the_block() {
    assert_eq!(refused("040c 2f73"), CompressionError::StringPastEnd(12));
    assert_eq!(refused("0001"), CompressionError::StringPastEnd(1));
    assert_eq!(
        refused("04ff ff ff ff ff 07"),
        CompressionError::StringPastEnd(0x8000_007e)
    );
}

#[test]
fn refuses_a_block_cut_inside_a_representation() {
    assert_eq!(refused("41"), CompressionError::Truncated, "no value");
    assert_eq!(refused("40"), CompressionError::Truncated, "no name");
    assert_eq!(
        refused("4001 61"),
        CompressionError::Truncated,
        "a name but no value"
    );
    assert_eq!(
        refused("ff"),
        CompressionError::Truncated,
        "an integer cut short"
    );
}

#[test]
fn refuses_invalid_huffman_strings() {
    let padding = CompressionError::Huffman(HuffmanError::InvalidPadding);
    assert_eq!(refused("0481 ff"), padding, "eight bits of padding");
    assert_eq!(refused("0481 06"), padding, "padding not all ones");
    let eos = CompressionError::Huffman(HuffmanError::Eos);
    assert_eq!(refused("0484 ffff ffff"), eos);
}

#[test]
fn refuses_a_size_update_over_our_limit() {
    // 4097 on a 5-bit prefix.
    let error = refused("3fe2 1f");
    assert_eq!(
        error,
        CompressionError::SizeUpdateTooLarge {
            size: 4097,
            limit: 4096
        }
    );
    let mut decoder = Decoder::new(100, LIST_LIMIT);
    let error = compression_error(&mut decoder, "3f46");
    assert_eq!(
        error,
        CompressionError::SizeUpdateTooLarge {
            size: 101,
            limit: 100
        }
    );
}

#[test]
fn refuses_a_size_update_after_the_first_field() {
    assert_eq!(refused("82 20"), CompressionError::MisplacedSizeUpdate);
    assert_eq!(
        refused("20 82 3f e1 1f"),
        CompressionError::MisplacedSizeUpdate
    );
}

#[test]
fn accepts_two_size_updates_opening_a_block_but_not_three() {
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    decode_list(&mut decoder, &hex("4001 6101 62")).unwrap();
    assert_eq!(
        decode_list(&mut decoder, &hex("20 3fe1 1f 82")).unwrap(),
        list(&[(":method", "GET")])
    );
    assert_eq!(
        (decoder.table().len(), decoder.table().max_size()),
        (0, 4096),
        "emptied by 0"
    );
    assert_eq!(refused("20 20 20"), CompressionError::MisplacedSizeUpdate);
}

#[test]
fn requires_a_size_update_once_our_limit_falls_below_the_table() {
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    decode_list(&mut decoder, &hex("4001 6101 62")).unwrap();
    decoder.set_max_table_size(100);
    assert_eq!(
        compression_error(&mut decoder, "be"),
        CompressionError::MissingSizeUpdate
    );

    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    decode_list(&mut decoder, &hex("4001 6101 62")).unwrap();
    decoder.set_max_table_size(100);
    // 100 on a 5-bit prefix, then the entry, which survived.
    assert_eq!(
        decode_list(&mut decoder, &hex("3f45 be")).unwrap(),
        list(&[("a", "b")])
    );
    assert_eq!(
        decode_list(&mut decoder, &hex("be")).unwrap(),
        list(&[("a", "b")]),
        "once"
    );
    decoder.set_max_table_size(8192);
    assert_eq!(
        decode_list(&mut decoder, &hex("be")).unwrap(),
        list(&[("a", "b")]),
        "raised"
    );
}

/// §4.4: the name is read before the insertion evicts the entry it came from.
#[test]
fn an_entry_may_take_its_name_from_the_entry_its_insertion_evicts() {
    let mut decoder = Decoder::new(64, LIST_LIMIT);
    decode_list(&mut decoder, &hex("4001 6101 62")).unwrap(); // a: b, 34 bytes
    // Name index 62 (a), then a value of 28 bytes: 61 bytes, so a: b must go.
    let block = format!("7e 1c {}", "78".repeat(28));
    let value = "x".repeat(28);
    assert_eq!(
        decode_list(&mut decoder, &hex(&block)).unwrap(),
        list(&[("a", &value)])
    );
    let (entries, size) = table(&decoder);
    assert_eq!((entries, size), (vec![("a".to_owned(), value, 61)], 61));
}

/// A block of four fields with the limit reached by the second: the first is handed out,
/// then the distinct error, and the third's and fourth's entries still enter the table.
#[test]
fn goes_on_decoding_past_the_header_list_limit_to_keep_the_table_in_step() {
    // a: 1 (34 bytes), then bb: 22 (36), then literals with indexing c: 3 and d: 4.
    let block = hex("0001 6101 31 0002 6262 0232 32 4001 6301 33 4001 6401 34");
    let mut decoder = Decoder::new(4096, 34 + 35);
    let mut seen = Vec::new();
    let result = decoder.decode(&block, |field| {
        seen.push(pair(&field));
        Ok::<_, Infallible>(())
    });
    assert!(
        matches!(result, Err(DecodeError::HeaderListTooLarge { limit: 69 })),
        "{result:?}"
    );
    assert_eq!(seen, list(&[("a", "1")]));
    let (entries, size) = table(&decoder);
    assert_eq!((entries.len(), size), (2, 68));
    // The next block may name them.
    decoder.set_max_header_list_size(LIST_LIMIT);
    assert_eq!(
        decode_list(&mut decoder, &hex("bf be")).unwrap(),
        list(&[("c", "3"), ("d", "4")])
    );
}

#[test]
fn goes_on_decoding_past_a_field_the_caller_refuses() {
    let block = hex("4001 6101 31 4001 6201 32 4001 6301 33");
    let mut decoder = Decoder::new(4096, LIST_LIMIT);
    let mut calls = 0;
    let result = decoder.decode(&block, |field| {
        calls += 1;
        if field.name.as_bytes() == b"b" {
            Err("uppercase, say")
        } else {
            Ok(())
        }
    });
    assert!(
        matches!(result, Err(DecodeError::Field("uppercase, say"))),
        "{result:?}"
    );
    assert_eq!(calls, 2);
    assert_eq!(decoder.table().len(), 3);
}

#[test]
fn a_corrupt_block_is_the_connections_error_even_after_a_refused_field() {
    let mut decoder = Decoder::new(4096, 10);
    let result = decode_list(&mut decoder, &hex("82 80"));
    assert!(matches!(
        result,
        Err(DecodeError::Compression(CompressionError::InvalidIndex(0)))
    ));
}

/// An HPACK bomb: one entry filling the table, then a block naming it thousands of
/// times. The list limit stops the fields after a handful, and none is a copy.
#[test]
fn a_block_naming_a_large_entry_over_and_over_stops_at_the_list_limit() {
    let mut decoder = Decoder::new(4096, 16 * 1024);
    // Name "x", value of 4063 bytes (127 + 3936 on a 7-bit prefix): an entry of 4096.
    let mut first = vec![0x40, 0x01, b'x', 0x7f, 0xe0, 0x1e];
    first.resize(first.len() + 4063, b'v');
    decode_fields(&mut decoder, &Bytes::from(first)).unwrap();
    assert_eq!(table(&decoder).1, 4096);
    let entry = decoder.table().get(0).unwrap().value.as_ptr();
    let bomb = Bytes::from(vec![0xbe; 10_000]);
    let mut handed_out = 0;
    let result = decoder.decode(&bomb, |field| {
        assert_eq!(field.value.as_ptr(), entry, "the entry's bytes, shared");
        handed_out += 1;
        Ok::<_, Infallible>(())
    });
    assert!(
        matches!(result, Err(DecodeError::HeaderListTooLarge { .. })),
        "{result:?}"
    );
    assert_eq!(handed_out, 4);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_the_table_stays_within_its_size(
        blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..6),
    ) {
        let mut decoder = Decoder::new(256, 4096);
        for block in blocks {
            let _ = decode_list(&mut decoder, &Bytes::from(block));
            prop_assert!(decoder.table().size() <= 256);
        }
    }

    /// Arbitrary bytes rarely get past the first byte; a valid block with bytes changed
    /// reaches every representation's error paths.
    #[test]
    fn a_valid_block_with_bytes_changed_never_panics(
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut block = hex(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3 1008 7061 7373 776f 7264
             0673 6563 7265 74 be bf",
        )
        .to_vec();
        for (at, byte) in changes {
            let at = at.index(block.len());
            block[at] = byte;
        }
        let mut decoder = Decoder::new(256, 4096);
        let _ = decode_list(&mut decoder, &Bytes::from(block));
        prop_assert!(decoder.table().size() <= 256);
    }
}
