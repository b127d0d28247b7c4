//! `x-request-id`: the client's own id kept, or a random UUID generated, and the copy of
//! it the request's record keeps for the access log and the trace.

use std::borrow::Cow;

use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's id longer than this is replaced by a generated one.
pub const MAX_CLIENT_REQUEST_ID_BYTES: usize = 200;

/// Length of a hyphenated UUID (`8-4-4-4-12` hex digits).
const GENERATED_LEN: usize = uuid::fmt::Hyphenated::LENGTH;

/// A request's id as its record keeps it.
///
/// A generated id is kept inline rather than as a clone of the header value: a
/// `HeaderValue` made from a fresh buffer allocates again on its first clone (its
/// storage becomes shared), one more allocation per request for a copy that only an
/// access log or a trace ever reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestId {
    /// The client's `x-request-id`, passed on unchanged (a clone shares hyper's buffer).
    Client(HeaderValue),
    /// A random (v4) UUID, hyphenated lower-case ASCII.
    Generated([u8; GENERATED_LEN]),
}

impl RequestId {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Client(value) => value.as_bytes(),
            RequestId::Generated(text) => text,
        }
    }

    /// The id as text; bytes that are not UTF-8 (a client's) are replaced.
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        // Checked whole first: the lossy conversion's chunk by chunk walk costs more for
        // the id that is valid, which every generated one is.
        match std::str::from_utf8(self.as_bytes()) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(self.as_bytes()),
        }
    }
}

/// The request's id: kept when the client sent a usable one (not empty, at most
/// [`MAX_CLIENT_REQUEST_ID_BYTES`]), generated and set otherwise.
pub fn ensure_request_id(headers: &mut HeaderMap) -> RequestId {
    // One lookup for reading and setting.
    match headers.entry(X_REQUEST_ID) {
        Entry::Occupied(mut entry) => {
            let value = entry.get();
            if !value.is_empty() && value.len() <= MAX_CLIENT_REQUEST_ID_BYTES {
                return RequestId::Client(value.clone());
            }
            let (id, value) = generate();
            entry.insert(value);
            id
        }
        Entry::Vacant(entry) => {
            let (id, value) = generate();
            entry.insert(value);
            id
        }
    }
}

/// A random id, and its header value.
fn generate() -> (RequestId, HeaderValue) {
    let mut text = [0u8; GENERATED_LEN];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    let value = super::made_values::header_value(&[&text]).expect("a uuid is a valid header value");
    (RequestId::Generated(text), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_client_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc"));
        let id = ensure_request_id(&mut h);
        assert_eq!(id, RequestId::Client(HeaderValue::from_static("abc")));
        assert_eq!(id.to_str_lossy(), "abc");
        assert_eq!(h.get_all(X_REQUEST_ID).iter().count(), 1);
    }

    #[test]
    fn a_missing_empty_or_oversized_id_is_replaced_by_a_uuid_in_header_and_record() {
        let oversized = "x".repeat(MAX_CLIENT_REQUEST_ID_BYTES + 1);
        for sent in [None, Some(""), Some(oversized.as_str())] {
            let mut h = HeaderMap::new();
            if let Some(sent) = sent {
                h.insert(X_REQUEST_ID, HeaderValue::from_str(sent).unwrap());
            }
            let id = ensure_request_id(&mut h);
            assert!(matches!(id, RequestId::Generated(_)), "{sent:?}");
            let text = id.to_str_lossy();
            assert!(uuid::Uuid::parse_str(&text).is_ok(), "{text}");
            assert_eq!(text, text.to_ascii_lowercase());
            assert_eq!(h[X_REQUEST_ID].as_bytes(), id.as_bytes());
            assert_eq!(h.get_all(X_REQUEST_ID).iter().count(), 1);
        }
    }

    #[test]
    fn generated_ids_differ() {
        let a = ensure_request_id(&mut HeaderMap::new());
        let b = ensure_request_id(&mut HeaderMap::new());
        assert_ne!(a, b);
    }

    #[test]
    fn a_client_id_that_is_not_utf8_reads_lossily() {
        let id = RequestId::Client(HeaderValue::from_bytes(b"a\xffb").unwrap());
        assert_eq!(id.to_str_lossy(), "a\u{fffd}b");
    }
}
