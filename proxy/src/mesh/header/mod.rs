//! The mesh header: what the outbound side writes right after the TLS handshake of a
//! meshed connection, so the inbound side knows where the connection was going and what
//! it carries without sniffing a byte of it.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! +---------+----------------+------------------------------------------+
//! | version | length (u16)   | fields: `length` bytes                   |
//! | 1 byte  | 2 bytes        | each: type (1 byte) | len (1) | value    |
//! +---------+----------------+------------------------------------------+
//! ```
//!
//! Version 1 knows three fields, each at most once:
//! - `1` port (required): the original destination port (u16, never 0);
//! - `2` protocol (required): what the outbound side found the connection to carry
//!   (`0` opaque, `1` HTTP/1, `2` HTTP/2);
//! - `3` raced (optional, no value): the outbound side opened the connection while it
//!   was still waiting for its client's first bytes (protocol detection without a
//!   timeout), and closes it unused if they turn out to be HTTP.
//!
//! A field of an unknown type is skipped (its length says how far), so later versions of
//! the outbound side can add fields older inbound sides ignore; a change that must not be
//! ignored takes a new version (and a new ALPN). The whole header is at most
//! [`MAX_HEADER_LEN`] bytes and is read under a deadline: a peer cannot make the inbound
//! side allocate, or wait, without bound.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The header version this proxy writes and reads.
pub const VERSION: u8 = 1;

/// The largest `length` accepted: far above what version 1 writes (8 bytes), small
/// enough that reading it costs nothing.
pub const MAX_HEADER_LEN: usize = 512;

const FIELD_PORT: u8 = 1;
const FIELD_PROTOCOL: u8 = 2;
const FIELD_RACED: u8 = 3;

/// What a meshed connection carries, as the outbound side detected (or was told by a
/// port hint): the inbound side serves it as such, without detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeshProtocol {
    /// Bytes relayed as they are (server-first protocols, TLS passthrough, anything not
    /// HTTP).
    Opaque,
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 (prior knowledge: the connection starts with the h2 preface).
    Http2,
}

impl MeshProtocol {
    fn code(self) -> u8 {
        match self {
            Self::Opaque => 0,
            Self::Http1 => 1,
            Self::Http2 => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Opaque),
            1 => Some(Self::Http1),
            2 => Some(Self::Http2),
            _ => None,
        }
    }

    /// A short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Http1 => "http1",
            Self::Http2 => "http2",
        }
    }
}

/// What the outbound side tells the inbound side about a meshed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeshHeader {
    /// The port the client connected to (the app's port on the destination pod).
    pub port: u16,
    pub protocol: MeshProtocol,
    /// Opened before the outbound side knew what its client speaks: it may be closed
    /// without a byte (the client spoke HTTP, which takes connections of its own).
    pub raced: bool,
}

/// Why a header could not be read: each is a refusal of the connection.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("no complete header within {0:?}")]
    Timeout(Duration),
    /// Closed before the header's first byte: a connection the peer made ahead of need
    /// (a spare, or a raced handshake) and closed unused. Not a refusal.
    #[error("the connection closed before the header began (an unused spare)")]
    Unused,
    #[error("the connection closed before the header was complete")]
    Eof,
    #[error("reading the header: {0}")]
    Io(#[source] std::io::Error),
    #[error("header version {0} is not supported (this proxy speaks version {VERSION})")]
    UnsupportedVersion(u8),
    #[error("header length {0} is over the limit of {MAX_HEADER_LEN} bytes")]
    TooLong(usize),
    #[error("field {field} claims {len} bytes, past the end of the header")]
    FieldPastEnd { field: u8, len: usize },
    #[error("field {0} has no length byte")]
    NoFieldLength(u8),
    #[error("field {field} has {len} bytes, expected {expected}")]
    BadFieldLength {
        field: u8,
        len: usize,
        expected: usize,
    },
    #[error("field {0} appears twice")]
    DuplicateField(u8),
    #[error("the header has no {0} field")]
    MissingField(&'static str),
    #[error("port 0 is not a destination")]
    PortZero,
    #[error("protocol code {0} is unknown")]
    UnknownProtocol(u8),
}

impl HeaderError {
    /// A short fixed reason, for a metric label and a log field.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "header-timeout",
            Self::Unused => "unused",
            Self::Eof | Self::Io(_) => "header-eof",
            Self::UnsupportedVersion(_) => "header-version",
            Self::TooLong(_) => "header-too-long",
            Self::FieldPastEnd { .. }
            | Self::NoFieldLength(_)
            | Self::BadFieldLength { .. }
            | Self::DuplicateField(_)
            | Self::MissingField(_)
            | Self::PortZero
            | Self::UnknownProtocol(_) => "header-malformed",
        }
    }
}

/// Every [`HeaderError::reason`] of a refusal (documented with the metrics that carry
/// them); [`HeaderError::Unused`] is none.
pub const HEADER_REASONS: &[&str] = &[
    "header-timeout",
    "header-eof",
    "header-version",
    "header-too-long",
    "header-malformed",
];

impl MeshHeader {
    /// The header's bytes, as written on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let [port_high, port_low] = self.port.to_be_bytes();
        let fields = [
            FIELD_PORT,
            2,
            port_high,
            port_low,
            FIELD_PROTOCOL,
            1,
            self.protocol.code(),
            FIELD_RACED,
            0,
        ];
        let fields = if self.raced {
            &fields[..]
        } else {
            &fields[..7]
        };
        let mut out = Vec::with_capacity(3 + fields.len());
        out.push(VERSION);
        out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        out.extend_from_slice(fields);
        out
    }

    /// Parses the fields part (what follows version and length).
    ///
    /// # Errors
    /// A field that runs past the end, a known field of the wrong size, twice, or missing,
    /// a zero port, an unknown protocol.
    pub fn decode_fields(mut fields: &[u8]) -> Result<Self, HeaderError> {
        let (mut port, mut protocol, mut raced) = (None, None, false);
        while let [field, len, rest @ ..] = fields {
            let (field, len) = (*field, usize::from(*len));
            if rest.len() < len {
                return Err(HeaderError::FieldPastEnd { field, len });
            }
            let (value, after) = rest.split_at(len);
            fields = after;
            let expect = |expected: usize| {
                if len == expected {
                    Ok(())
                } else {
                    Err(HeaderError::BadFieldLength {
                        field,
                        len,
                        expected,
                    })
                }
            };
            match field {
                FIELD_PORT => {
                    expect(2)?;
                    if port.is_some() {
                        return Err(HeaderError::DuplicateField(field));
                    }
                    port = Some(u16::from_be_bytes([value[0], value[1]]));
                }
                FIELD_PROTOCOL => {
                    expect(1)?;
                    if protocol.is_some() {
                        return Err(HeaderError::DuplicateField(field));
                    }
                    protocol = Some(
                        MeshProtocol::from_code(value[0])
                            .ok_or(HeaderError::UnknownProtocol(value[0]))?,
                    );
                }
                FIELD_RACED => {
                    expect(0)?;
                    if raced {
                        return Err(HeaderError::DuplicateField(field));
                    }
                    raced = true;
                }
                // A later version's field: skipped.
                _ => {}
            }
        }
        if let [field] = fields {
            return Err(HeaderError::NoFieldLength(*field));
        }
        let port = port.ok_or(HeaderError::MissingField("port"))?;
        if port == 0 {
            return Err(HeaderError::PortZero);
        }
        let protocol = protocol.ok_or(HeaderError::MissingField("protocol"))?;
        Ok(Self {
            port,
            protocol,
            raced,
        })
    }

    /// Writes the header (and flushes it: the inbound side waits for it before it
    /// connects to the app, which may have to speak first).
    ///
    /// # Errors
    /// The connection's write error.
    pub async fn write<W: AsyncWrite + Unpin>(&self, io: &mut W) -> std::io::Result<()> {
        io.write_all(&self.encode()).await?;
        io.flush().await
    }

    /// Reads one header from `io` within `timeout`, and not a byte past it: what follows
    /// is the connection's payload.
    ///
    /// # Errors
    /// See [`HeaderError`].
    pub async fn read<R: AsyncRead + Unpin>(
        io: &mut R,
        timeout: Duration,
    ) -> Result<Self, HeaderError> {
        tokio::time::timeout(timeout, Self::read_unbounded_in_time(io))
            .await
            .map_err(|_| HeaderError::Timeout(timeout))?
    }

    async fn read_unbounded_in_time<R: AsyncRead + Unpin>(io: &mut R) -> Result<Self, HeaderError> {
        let mut prefix = [0u8; 3];
        match io.read(&mut prefix[..1]).await {
            Ok(0) => return Err(HeaderError::Unused),
            // Through TLS, a peer that closed without close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(HeaderError::Unused);
            }
            Err(e) => return Err(HeaderError::Io(e)),
            Ok(_) => {}
        }
        read_exact(io, &mut prefix[1..]).await?;
        if prefix[0] != VERSION {
            return Err(HeaderError::UnsupportedVersion(prefix[0]));
        }
        let len = usize::from(u16::from_be_bytes([prefix[1], prefix[2]]));
        if len > MAX_HEADER_LEN {
            return Err(HeaderError::TooLong(len));
        }
        let mut fields = [0u8; MAX_HEADER_LEN];
        read_exact(io, &mut fields[..len]).await?;
        Self::decode_fields(&fields[..len])
    }
}

async fn read_exact<R: AsyncRead + Unpin>(io: &mut R, buf: &mut [u8]) -> Result<(), HeaderError> {
    match io.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(HeaderError::Eof),
        Err(e) => Err(HeaderError::Io(e)),
    }
}

#[cfg(test)]
mod tests;
