//! The `Date` of responses (RFC 9110 §6.6.1): formatted once per second per thread, not
//! once per response.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;

/// The current second's value, as text and as a header value (made on first use).
struct Current {
    second: SystemTime,
    text: [u8; 29],
    value: Option<HeaderValue>,
}

thread_local! {
    static CURRENT: RefCell<Current> = const {
        RefCell::new(Current { second: SystemTime::UNIX_EPOCH, text: [0; 29], value: None })
    };
}

fn with_current<R>(f: impl FnOnce(&mut Current) -> R) -> R {
    let now = SystemTime::now();
    CURRENT.with_borrow_mut(|current| {
        let stale = now
            .duration_since(current.second)
            .map_or(true, |d| d >= Duration::from_secs(1));
        if stale {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            current.second = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            current
                .text
                .copy_from_slice(httpdate::fmt_http_date(now).as_bytes());
            current.value = None;
        }
        f(current)
    })
}

/// Appends the current `Date` value (IMF-fixdate, 29 bytes).
pub fn write(out: &mut Vec<u8>) {
    with_current(|current| out.extend_from_slice(&current.text));
}

/// The current `Date` value (a clone shares one buffer per second).
pub fn header_value() -> HeaderValue {
    with_current(|current| {
        current
            .value
            .get_or_insert_with(|| {
                HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&current.text))
                    .expect("an HTTP date is a valid header value")
            })
            .clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_and_the_header_value_are_the_same_http_date() {
        // Read twice around the value: a second may end in between, but not twice.
        for _ in 0..3 {
            let (mut before, mut after) = (Vec::new(), Vec::new());
            write(&mut before);
            let value = header_value();
            write(&mut after);
            if before != after {
                continue;
            }
            assert_eq!(before.len(), 29);
            assert!(httpdate::parse_http_date(std::str::from_utf8(&before).unwrap()).is_ok());
            assert_eq!(value, before.as_slice());
            return;
        }
        panic!("three seconds ended while reading the date");
    }
}
