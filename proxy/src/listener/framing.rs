//! Spots request heads that carry both `Content-Length` and `Transfer-Encoding`.
//!
//! hyper frames such a request by `Transfer-Encoding` and silently drops the
//! `Content-Length` before the proxy sees it (RFC 9112 §6.3 allows that). The contract
//! is stricter — such a request is a smuggling attempt, answered 400 and the connection
//! closed — so the socket reader watches the header names of each request head as the
//! bytes go by. Only head bytes are scanned (reads between requests), line by line with
//! no allocation; it stops at the blank line that ends the head.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The request line, not a header.
    RequestLine,
    LineStart,
    /// After `\r` at the start of a line: a blank line if `\n` follows.
    BlankCr,
    /// A header name, `len` bytes of it kept from earlier reads.
    Name,
    /// The rest of a header line (value), or a name too long to be one we look for.
    Rest,
    Done,
}

const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
const LONGEST: usize = TRANSFER_ENCODING.len();

#[derive(Debug, Clone)]
pub struct HeadScanner {
    state: State,
    /// The start of a header name split across reads (never longer than [`LONGEST`]).
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
    ///
    /// Line by line: `memchr` finds each line's end, and the colon of each name that
    /// starts as one looked for (`c` or `t`), looking no further into it than the longest
    /// one; values and other lines are skipped unread.
    pub fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        loop {
            match self.state {
                State::Done => return i,
                State::RequestLine | State::Rest => {
                    // Nothing before the end of this line matters: skip to it.
                    let Some(eol) = memchr::memchr(b'\n', &bytes[i..]) else {
                        return bytes.len();
                    };
                    i += eol + 1;
                    self.state = State::LineStart;
                }
                State::LineStart | State::BlankCr => {
                    let Some(&b) = bytes.get(i) else {
                        return bytes.len();
                    };
                    if b == b'\n' {
                        i += 1;
                        self.state = State::Done;
                    } else if b == b'\r' && self.state == State::LineStart {
                        i += 1;
                        self.state = State::BlankCr;
                    } else if matches!(b | 0x20, b'c' | b't') {
                        // A header line whose name may be one looked for (a lone `\r`
                        // before it is dropped).
                        self.len = 0;
                        self.state = State::Name;
                    } else {
                        // Any other header line: skipped to its end without looking for
                        // its colon (most lines of most heads).
                        self.state = State::Rest;
                    }
                }
                State::Name => {
                    let rest = &bytes[i..];
                    // Name bytes that may still belong to a framing header, and its colon.
                    let room = LONGEST - self.len;
                    let window = &rest[..rest.len().min(room + 1)];
                    match memchr::memchr2(b':', b'\n', window) {
                        Some(end) if window[end] == b':' => {
                            self.header_name(&window[..end]);
                            i += end + 1;
                            self.state = State::Rest;
                        }
                        // A line without a colon.
                        Some(end) => {
                            i += end + 1;
                            self.state = State::LineStart;
                        }
                        // Longer than any name looked for.
                        None if window.len() > room => {
                            i += window.len();
                            self.state = State::Rest;
                        }
                        // The read ended inside the name: kept for the next one.
                        None => {
                            self.name[self.len..self.len + window.len()].copy_from_slice(window);
                            self.len += window.len();
                            return bytes.len();
                        }
                    }
                }
            }
        }
    }

    /// A header name ended: `tail`, after the `len` bytes kept from earlier reads.
    fn header_name(&mut self, tail: &[u8]) {
        let is = |wanted: &[u8]| {
            self.len + tail.len() == wanted.len()
                && wanted[..self.len].eq_ignore_ascii_case(&self.name[..self.len])
                && wanted[self.len..].eq_ignore_ascii_case(tail)
        };
        let (content_length, transfer_encoding) = (is(CONTENT_LENGTH), is(TRANSFER_ENCODING));
        self.content_length |= content_length;
        self.transfer_encoding |= transfer_encoding;
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
    fn names_are_matched_whole_wherever_reads_split_them() {
        let flagged = b"POST / HTTP/1.1\r\nCONTENT-length:1\r\ntransfer-ENCODING:chunked\r\n\r\n";
        let longer = b"POST / HTTP/1.1\r\ncontent-length:1\r\ntransfer-encodingx:chunked\r\n\r\n";
        let prefix = b"POST / HTTP/1.1\r\ncontent-length:1\r\ntransfer-encodin:chunked\r\n\r\n";
        let no_colon = b"POST / HTTP/1.1\r\ncontent-length:1\r\ntransfer-encoding\r\n\r\n";
        for (head, expected) in [
            (&flagged[..], true),
            (&longer[..], false),
            (&prefix[..], false),
            (&no_colon[..], false),
        ] {
            for cut in 0..=head.len() {
                let mut s = HeadScanner::default();
                let in_head = s.scan(&head[..cut]) + s.scan(&head[cut..]);
                assert_eq!(s.ambiguous(), expected, "{:?} cut at {cut}", head);
                assert_eq!(in_head, head.len(), "{:?} cut at {cut}", head);
            }
        }
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
