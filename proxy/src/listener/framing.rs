//! Spots request heads that carry both `Content-Length` and `Transfer-Encoding`.
//!
//! hyper frames such a request by `Transfer-Encoding` and silently drops the
//! `Content-Length` before the proxy sees it (RFC 9112 §6.3 allows that). The contract
//! is stricter — such a request is a smuggling attempt, answered 400 and the connection
//! closed — so the socket reader watches the header names of each request head as the
//! bytes go by. Only head bytes are scanned (reads between requests), byte by byte with
//! no allocation; it stops at the blank line that ends the head.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The request line, not a header.
    RequestLine,
    LineStart,
    /// After `\r` at the start of a line: a blank line if `\n` follows.
    BlankCr,
    Name,
    /// The rest of a header line (value), or a name too long to be one we look for.
    Rest,
    Done,
}

const LONGEST: usize = "transfer-encoding".len();

#[derive(Debug, Clone)]
pub struct HeadScanner {
    state: State,
    name: [u8; LONGEST],
    len: usize,
    content_length: bool,
    transfer_encoding: bool,
}

impl Default for HeadScanner {
    fn default() -> Self {
        Self {
            state: State::RequestLine,
            name: [0; LONGEST],
            len: 0,
            content_length: false,
            transfer_encoding: false,
        }
    }
}

impl HeadScanner {
    /// Feeds bytes of the head; true once both framing headers have been seen.
    #[cfg(test)]
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        self.scan(bytes);
        self.ambiguous()
    }

    /// Whether both framing headers have been seen.
    pub fn ambiguous(&self) -> bool {
        self.content_length && self.transfer_encoding
    }

    /// Feeds bytes that may run past the head; how many of them belong to it (all of
    /// them while it is not complete, none once it is). The rest are body or a pipelined
    /// request: what the connection has read beyond the heads it has parsed.
    pub fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if matches!(self.state, State::RequestLine | State::Rest) {
                // Nothing before the end of this line matters: skip to it.
                let Some(eol) = memchr::memchr(b'\n', &bytes[i..]) else {
                    return bytes.len();
                };
                i += eol + 1;
                self.state = State::LineStart;
                continue;
            }
            i += 1;
            self.state = match (self.state, b) {
                (State::Done, _) => return i - 1,
                (_, b'\n') if self.state == State::LineStart || self.state == State::BlankCr => {
                    State::Done
                }
                (_, b'\n') => State::LineStart,
                (State::RequestLine, _) | (State::Rest, _) => self.state,
                (State::LineStart, b'\r') => State::BlankCr,
                (State::LineStart, _) | (State::BlankCr, _) => {
                    self.len = 0;
                    self.push(b)
                }
                (State::Name, b':') => {
                    let name = &self.name[..self.len];
                    self.content_length |= name == b"content-length";
                    self.transfer_encoding |= name == b"transfer-encoding";
                    State::Rest
                }
                (State::Name, _) => self.push(b),
            };
        }
        bytes.len()
    }

    fn push(&mut self, b: u8) -> State {
        if self.len == LONGEST {
            return State::Rest;
        }
        self.name[self.len] = b.to_ascii_lowercase();
        self.len += 1;
        State::Name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(head: &[u8], chunk: usize) -> bool {
        let mut s = HeadScanner::default();
        head.chunks(chunk).any(|c| s.feed(c))
    }

    #[test]
    fn both_framing_headers_are_spotted_in_any_case_and_any_split() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n";
        for chunk in [1, 2, 3, 7, head.len()] {
            assert!(scan(head, chunk), "chunk {chunk}");
        }
    }

    #[test]
    fn one_framing_header_alone_is_fine() {
        assert!(!scan(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            4
        ));
        assert!(!scan(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            4
        ));
    }

    #[test]
    fn the_body_and_values_are_not_scanned() {
        assert!(!scan(
            b"POST / HTTP/1.1\r\nContent-Length: 30\r\n\r\ntransfer-encoding: chunked\r\n",
            5
        ));
        assert!(!scan(
            b"GET /content-length: HTTP/1.1\r\nX-A: transfer-encoding:\r\n\r\n",
            3
        ));
    }

    #[test]
    fn the_bytes_past_the_head_are_told_apart_in_any_split() {
        let head = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        let bytes = [&head[..], b"helloGET / HTTP/1.1\r\n"].concat();
        for chunk in [1, 2, 7, head.len(), bytes.len()] {
            let mut s = HeadScanner::default();
            let in_head: usize = bytes.chunks(chunk).map(|c| s.scan(c)).sum();
            assert_eq!(in_head, head.len(), "chunk {chunk}");
        }
        let mut s = HeadScanner::default();
        assert_eq!(
            s.scan(b"GET / HTTP/1.1\r\n"),
            16,
            "an incomplete head is all head"
        );
    }

    #[test]
    fn bare_lf_heads_are_handled() {
        assert!(scan(
            b"POST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n",
            2
        ));
        assert!(!scan(
            b"POST / HTTP/1.1\nContent-Length: 1\n\nTransfer-Encoding: chunked\n",
            2
        ));
    }

    /// Property tests: the scanner never panics, whatever the bytes and wherever reads
    /// split them, and it agrees with a plain reading of the head.
    mod props {
        use proptest::prelude::*;

        use super::super::HeadScanner;

        /// Feeds `bytes` in pieces cut at `cuts` (taken modulo the length, in any order);
        /// whether the scanner flagged the head.
        fn scan_split(bytes: &[u8], cuts: &[usize]) -> bool {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(bytes.len());
            let mut scanner = HeadScanner::default();
            let mut start = 0;
            let mut flagged = false;
            for end in cuts {
                flagged = scanner.feed(&bytes[start..end]);
                start = end;
            }
            flagged
        }

        /// `name` with each letter in either case.
        fn any_case(name: &'static str) -> impl Strategy<Value = String> {
            proptest::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
                name.chars()
                    .zip(upper)
                    .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                    .collect()
            })
        }

        fn header_name() -> impl Strategy<Value = String> {
            prop_oneof![
                any_case("content-length"),
                any_case("transfer-encoding"),
                Just("content-lengthx".to_string()),
                Just("transfer-encodingx".to_string()),
                Just("x-transfer-encoding".to_string()),
                "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,24}",
            ]
        }

        /// A request head (request line, headers, blank line; CRLF or bare LF line ends)
        /// and a body, with the header names in it.
        fn request() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
            let eol = || prop_oneof![Just("\r\n"), Just("\n")];
            let line = "[A-Z]{1,7} /[ -~]{0,30} HTTP/1\\.[01]";
            let header = (header_name(), "[ -~]{0,40}", eol());
            (
                line,
                eol(),
                proptest::collection::vec(header, 0..8),
                eol(),
                proptest::collection::vec(any::<u8>(), 0..200),
            )
                .prop_map(|(line, eol, headers, end, body)| {
                    let mut bytes = format!("{line}{eol}").into_bytes();
                    let mut names = Vec::new();
                    for (name, value, eol) in headers {
                        bytes.extend_from_slice(format!("{name}:{value}{eol}").as_bytes());
                        names.push(name);
                    }
                    bytes.extend_from_slice(end.as_bytes());
                    bytes.extend_from_slice(&body);
                    (bytes, names)
                })
        }

        proptest! {
            #![proptest_config(crate::property::config())]

            #[test]
            fn any_bytes_split_anywhere_give_the_answer_of_one_read(
                bytes in proptest::collection::vec(any::<u8>(), 0..600),
                cuts in proptest::collection::vec(any::<usize>(), 0..12),
            ) {
                prop_assert_eq!(scan_split(&bytes, &cuts), scan_split(&bytes, &[]));
            }

            #[test]
            fn a_head_is_flagged_exactly_when_it_has_both_framing_headers(
                (bytes, names) in request(),
                cuts in proptest::collection::vec(any::<usize>(), 0..12),
            ) {
                let has = |wanted: &str| names.iter().any(|n| n.eq_ignore_ascii_case(wanted));
                let expected = has("content-length") && has("transfer-encoding");
                prop_assert_eq!(scan_split(&bytes, &cuts), expected);
            }
        }
    }
}
