//! What the first bytes a client sends say about its protocol: an HTTP/2 prior-knowledge
//! preface, an HTTP/1 request line, a TLS ClientHello, or anything else (opaque). Pure
//! and bounded: it never needs more than [`ENOUGH`] bytes to decide.

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest method token taken for HTTP/1 (`PROPPATCH`, `UPDATEREDIRECTREF`...).
const MAX_METHOD: usize = 20;

/// Bytes that always suffice to decide.
pub const ENOUGH: usize = H2_PREFACE.len();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    Http1,
    Http2,
    /// A TLS handshake record (RFC 8446 §5.1): passed through, never terminated.
    Tls,
    Opaque,
}

impl Detected {
    /// The `protocol` label of the sidecar's connection metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Http1 | Self::Http2 => "http",
            Self::Tls => "tls",
            Self::Opaque => "opaque",
        }
    }
}

/// `None` while the bytes so far could still be more than one thing.
pub fn classify(bytes: &[u8]) -> Option<Detected> {
    let first = *bytes.first()?;
    if first == 0x16 {
        // ContentType handshake, then legacy_record_version 0x03 0x0?.
        return match bytes.get(1) {
            None => None,
            Some(3) => Some(Detected::Tls),
            Some(_) => Some(Detected::Opaque),
        };
    }
    let n = bytes.len().min(H2_PREFACE.len());
    if bytes[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Detected::Http2);
    }
    // An HTTP/1 request line starts with a method token (RFC 9110 §9.1: case-sensitive;
    // every registered method is upper case), then one space.
    let token = bytes
        .iter()
        .take(MAX_METHOD + 1)
        .take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_')
        .count();
    match bytes.get(token) {
        Some(b' ') if token > 0 => Some(Detected::Http1),
        None if token <= MAX_METHOD => None,
        _ => Some(Detected::Opaque),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_is_told_from_its_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(classify(b"M-SEARCH * HTTP/1.1"), Some(Detected::Http1));
        assert_eq!(classify(H2_PREFACE), Some(Detected::Http2));
        assert_eq!(
            classify(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Some(Detected::Tls)
        );
        // Redis, memcached (lower case), PostgreSQL's startup, SSH's client banner.
        assert_eq!(classify(b"*1\r\n$4\r\nPING\r\n"), Some(Detected::Opaque));
        assert_eq!(classify(b"get key\r\n"), Some(Detected::Opaque));
        assert_eq!(
            classify(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]),
            Some(Detected::Opaque)
        );
        assert_eq!(classify(b"SSH-2.0-OpenSSH"), Some(Detected::Opaque));
        assert_eq!(classify(&[0x16, 0x01]), Some(Detected::Opaque));
    }

    #[test]
    fn a_prefix_that_could_still_be_several_things_waits_for_more() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(classify(&[0x16]), None);
        // "PRI " that is not the preface is an HTTP/1 request line of method PRI.
        assert_eq!(classify(b"PRI /x HTTP/1.1"), Some(Detected::Http1));
    }

    #[test]
    fn a_token_too_long_for_a_method_is_opaque() {
        assert_eq!(classify(&[b'A'; MAX_METHOD + 1]), Some(Detected::Opaque));
        assert_eq!(classify(&[b'A'; MAX_METHOD]), None);
    }

    #[test]
    fn enough_bytes_always_decide() {
        for first in 0..=255u8 {
            let mut bytes = vec![first; ENOUGH];
            assert!(classify(&bytes).is_some(), "{first:#x}");
            bytes[1] = b' ';
            assert!(classify(&bytes).is_some(), "{first:#x} then space");
        }
    }
}
