//! Reading a response body out of the connection's read buffer, as its framing says
//! (RFC 9112 §6.3): a length, chunks, or everything until the connection closes.
//!
//! Strict where a lenient reading could let an upstream's bytes be taken for the next
//! response on a reused connection (a chunk's size and its CRLFs); lenient only about
//! chunk extensions, which are skipped (bounded).

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use super::ExchangeError;

/// The longest chunk-size line (size, extensions, CRLF) read: more is an upstream
/// trying to make the proxy buffer without end.
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes read after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;
/// Trailer fields read at most.
const MAX_TRAILER_FIELDS: usize = 64;

/// How the body is framed, and how far into it the reading is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecoder {
    /// This many bytes are still to come.
    Length(u64),
    Chunked(Chunked),
    /// Everything until the upstream closes the connection.
    UntilClose,
    /// The body has ended.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of the current chunk are still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section (or the empty line) after the last chunk.
    Trailers,
}

/// What one step of decoding gave.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body is complete.
    End,
    /// More bytes must be read first.
    NeedMore,
}

impl BodyDecoder {
    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        *self == BodyDecoder::Done
    }

    /// The next piece of the body out of `buf` (what belongs to the body is consumed,
    /// nothing after it).
    ///
    /// # Errors
    /// [`ExchangeError::BadChunk`] for a chunk framing that breaks the rules.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ExchangeError> {
        loop {
            match self {
                BodyDecoder::Done => return Ok(Decoded::End),
                BodyDecoder::Length(0) => {
                    *self = BodyDecoder::Done;
                    return Ok(Decoded::End);
                }
                BodyDecoder::Length(remaining) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = take_len(*remaining, buf.len());
                    *remaining -= n as u64;
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                BodyDecoder::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                BodyDecoder::Chunked(state) => match state {
                    Chunked::Size => {
                        let Some(line_end) = memchr::memchr(b'\n', buf) else {
                            return need_more(buf.len() >= MAX_CHUNK_LINE);
                        };
                        if line_end >= MAX_CHUNK_LINE {
                            return Err(ExchangeError::BadChunk("chunk-size line too long"));
                        }
                        let size = chunk_size(&buf[..line_end])?;
                        buf.advance(line_end + 1);
                        *state = if size == 0 {
                            Chunked::Trailers
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Chunked::Data(remaining) => {
                        if buf.is_empty() {
                            return Ok(Decoded::NeedMore);
                        }
                        let n = take_len(*remaining, buf.len());
                        *remaining -= n as u64;
                        if *remaining == 0 {
                            *state = Chunked::DataEnd;
                        }
                        return Ok(Decoded::Data(buf.split_to(n).freeze()));
                    }
                    Chunked::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(Decoded::NeedMore);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(ExchangeError::BadChunk("no CRLF after a chunk's data"));
                        }
                        buf.advance(2);
                        *state = Chunked::Size;
                    }
                    Chunked::Trailers => {
                        if buf.starts_with(b"\r\n") {
                            buf.advance(2);
                            *self = BodyDecoder::Done;
                            return Ok(Decoded::End);
                        }
                        let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
                            return need_more(buf.len() >= MAX_TRAILERS);
                        };
                        if end + 4 > MAX_TRAILERS {
                            return Err(ExchangeError::BadChunk("trailer section too large"));
                        }
                        let trailers = parse_trailers(&buf[..end + 4])?;
                        buf.advance(end + 4);
                        *self = BodyDecoder::Done;
                        return Ok(Decoded::Trailers(trailers));
                    }
                },
            }
        }
    }

    /// The connection closed: the end of an until-close body, an error for any other
    /// body not yet complete.
    ///
    /// # Errors
    /// [`ExchangeError::ClosedMidBody`].
    pub fn at_close(&mut self) -> Result<(), ExchangeError> {
        match self {
            BodyDecoder::UntilClose | BodyDecoder::Done | BodyDecoder::Length(0) => {
                *self = BodyDecoder::Done;
                Ok(())
            }
            _ => Err(ExchangeError::ClosedMidBody),
        }
    }

    /// Bytes known to be still to come, for the body's size hint.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            BodyDecoder::Done => Some(0),
            _ => None,
        }
    }
}

fn take_len(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

fn need_more(too_long: bool) -> Result<Decoded, ExchangeError> {
    if too_long {
        Err(ExchangeError::BadChunk("chunk framing too long"))
    } else {
        Ok(Decoded::NeedMore)
    }
}

/// The size of a chunk-size line (`\n` excluded): hex digits, then optional whitespace
/// and extensions, ending in CR.
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let Some(line) = line.strip_suffix(b"\r") else {
        return Err(ExchangeError::BadChunk("chunk-size line not ended by CRLF"));
    };
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 16 {
        return Err(ExchangeError::BadChunk("invalid chunk size"));
    }
    let rest = &line[digits..];
    let rest = rest.trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') || rest.contains(&b'\r') {
        return Err(ExchangeError::BadChunk("invalid chunk size"));
    }
    let text = std::str::from_utf8(&line[..digits]).expect("hex digits are ASCII");
    u64::from_str_radix(text, 16).map_err(|_| ExchangeError::BadChunk("invalid chunk size"))
}

fn parse_trailers(section: &[u8]) -> Result<HeaderMap, ExchangeError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let parsed = match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        _ => return Err(ExchangeError::BadChunk("malformed trailers")),
    };
    let mut trailers = HeaderMap::with_capacity(parsed.len());
    for field in parsed {
        let name = http::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| ExchangeError::BadChunk("malformed trailers"))?;
        let value = http::HeaderValue::from_bytes(field.value)
            .map_err(|_| ExchangeError::BadChunk("malformed trailers"))?;
        trailers.append(name, value);
    }
    Ok(trailers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes all of `input` given in pieces of `step` bytes: the data, the trailers,
    /// and whether the body ended.
    fn decode_all(
        mut decoder: BodyDecoder,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, bool, BytesMut), ExchangeError> {
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => data.extend_from_slice(&d),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return Ok((data, trailers, true, buf)),
                Decoded::NeedMore => {
                    if fed == input.len() {
                        return Ok((data, trailers, false, buf));
                    }
                    let n = step.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn a_length_body_stops_at_its_length_leaving_what_follows() {
        for step in [1, 3, 100] {
            let (data, _, ended, rest) =
                decode_all(BodyDecoder::Length(5), b"hello", step).unwrap();
            assert_eq!(data, b"hello");
            assert!(ended);
            assert!(rest.is_empty());
        }
        let mut buf = BytesMut::from(&b"helloHTTP/1.1"[..]);
        let mut d = BodyDecoder::Length(5);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"hello"))
        );
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn chunks_with_extensions_and_trailers_in_any_pieces() {
        let input =
            b"5;ext=1\r\nhello\r\n6 ; x\r\n world\r\n0\r\nx-sum: 42\r\ngrpc-status: 0\r\n\r\n";
        for step in [1, 2, 7, 1000] {
            let (data, trailers, ended, rest) =
                decode_all(BodyDecoder::Chunked(Chunked::Size), input, step).unwrap();
            assert_eq!(data, b"hello world", "step {step}");
            let trailers = trailers.expect("trailers");
            assert_eq!(trailers["x-sum"], "42");
            assert_eq!(trailers["grpc-status"], "0");
            assert!(ended && rest.is_empty());
        }
    }

    #[test]
    fn the_last_chunk_without_trailers_ends_the_body() {
        let (data, trailers, ended, rest) = decode_all(
            BodyDecoder::Chunked(Chunked::Size),
            b"3\r\nabc\r\n0\r\n\r\nNEXT",
            1000,
        )
        .unwrap();
        assert_eq!(data, b"abc");
        assert!(trailers.is_none() && ended);
        assert_eq!(&rest[..], b"NEXT");
    }

    #[test]
    fn broken_chunk_framing_is_an_error() {
        for input in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n",
            b"3 4\r\nabc\r\n",
            b"11111111111111111\r\n",
            b"3\r\nabc\r\n0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode_all(BodyDecoder::Chunked(Chunked::Size), input, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn endless_chunk_lines_and_trailers_are_cut_off() {
        let mut line = b"1;".to_vec();
        line.resize(MAX_CHUNK_LINE + 10, b'a');
        assert!(decode_all(BodyDecoder::Chunked(Chunked::Size), &line, 512).is_err());
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"x-a: b\r\n");
        }
        assert!(decode_all(BodyDecoder::Chunked(Chunked::Size), &trailers, 512).is_err());
    }

    #[test]
    fn a_close_ends_only_an_until_close_body() {
        let mut d = BodyDecoder::UntilClose;
        assert!(d.at_close().is_ok() && d.is_done());
        assert!(BodyDecoder::Length(3).at_close().is_err());
        assert!(BodyDecoder::Chunked(Chunked::Size).at_close().is_err());
    }
}
