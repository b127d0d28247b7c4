//! Header values the proxy makes for each request (a generated `x-request-id`, the
//! extended `x-forwarded-for`), cut from a block shared by many instead of allocated one
//! by one: an allocation and a free per value and request become one of each per block.
//!
//! A block is freed when the last value cut from it is dropped, so a value that outlives
//! its request (a mirror's copy, say) keeps its block's [`BLOCK`] bytes alive: the
//! memory held is bounded by the values alive, a block for each at worst.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use http::HeaderValue;

/// One block's size: about a hundred request ids.
const BLOCK: usize = 4096;

/// A value longer than this is allocated on its own (a long `x-forwarded-for` chain),
/// so a block is never mostly wasted by one.
const LARGEST_CUT: usize = BLOCK / 8;

thread_local! {
    /// The current block's unused part (each runtime worker thread has its own).
    static CURRENT: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A header value of `parts` concatenated, or `None` when that is no valid header value.
pub fn header_value(parts: &[&[u8]]) -> Option<HeaderValue> {
    let len = parts.iter().map(|part| part.len()).sum();
    HeaderValue::from_maybe_shared(cut(parts, len)).ok()
}

fn cut(parts: &[&[u8]], len: usize) -> Bytes {
    if len > LARGEST_CUT {
        return Bytes::from(parts.concat());
    }
    CURRENT.with_borrow_mut(|block| {
        if block.capacity() - block.len() < len {
            *block = BytesMut::with_capacity(BLOCK);
        }
        for part in parts {
            block.extend_from_slice(part);
        }
        block.split().freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_their_parts_concatenated() {
        let value = header_value(&[b"10.0.0.1", b", ", b"10.0.0.2"]).unwrap();
        assert_eq!(value, "10.0.0.1, 10.0.0.2");
        assert_eq!(header_value(&[b""]).unwrap(), "");
    }

    /// Values cut from one block stay what they were while later ones are cut after
    /// them, and across the start of a new block.
    #[test]
    fn later_values_leave_earlier_ones_untouched() {
        let values: Vec<(String, HeaderValue)> = (0..500)
            .map(|i| {
                let text = format!("id-{i:04}-{}", "x".repeat(i % 40));
                let value = header_value(&[text.as_bytes()]).unwrap();
                (text, value)
            })
            .collect();
        for (text, value) in &values {
            assert_eq!(value.as_bytes(), text.as_bytes());
        }
    }

    #[test]
    fn a_long_value_is_whole() {
        let long = "a".repeat(LARGEST_CUT + 1);
        assert_eq!(header_value(&[long.as_bytes()]).unwrap(), long.as_str());
    }

    #[test]
    fn an_invalid_value_is_refused() {
        assert!(header_value(&[b"a\r\nb"]).is_none());
        assert!(
            header_value(&[b"ok"]).is_some(),
            "the block is still usable"
        );
    }
}
