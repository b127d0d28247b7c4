//! The static table of RFC 7541 Appendix A, the names it knows, and the encoder's
//! lookup of a header name in it.
//!
//! A name from this table reaches the caller as a [`StaticName`] rather than bytes: the
//! request path then gets its `http::HeaderName` from a table instead of parsing and
//! hashing the name, and recognises the pseudo-headers without comparing strings.

use http::header::{self, HeaderName};

/// The number of entries; the dynamic table's indices follow.
pub(super) const LEN: usize = 61;

pub(super) struct Entry {
    pub(super) name: &'static str,
    pub(super) value: &'static str,
}

/// Writes, from one list, the entries (a `const`, for the tables built at compile time)
/// and their `http` names (a `static`: a `HeaderName` cannot be read in const code).
macro_rules! static_table {
    ($( $name:literal $value:literal $($header:ident)? ;)*) => {
        const ENTRIES: [Entry; LEN] = [$(Entry { name: $name, value: $value },)*];
        static HEADER_NAMES: [Option<HeaderName>; LEN] =
            [$(static_table!(@header $($header)?),)*];
    };
    (@header) => { None };
    (@header $header:ident) => { Some(header::$header) };
}

/// Entry `i` (from 1) is `TABLE[i - 1]`.
static TABLE: [Entry; LEN] = ENTRIES;

#[rustfmt::skip]
static_table! {
    ":authority" "";
    ":method" "GET";
    ":method" "POST";
    ":path" "/";
    ":path" "/index.html";
    ":scheme" "http";
    ":scheme" "https";
    ":status" "200";
    ":status" "204";
    ":status" "206";
    ":status" "304";
    ":status" "400";
    ":status" "404";
    ":status" "500";
    "accept-charset" "" ACCEPT_CHARSET;
    "accept-encoding" "gzip, deflate" ACCEPT_ENCODING;
    "accept-language" "" ACCEPT_LANGUAGE;
    "accept-ranges" "" ACCEPT_RANGES;
    "accept" "" ACCEPT;
    "access-control-allow-origin" "" ACCESS_CONTROL_ALLOW_ORIGIN;
    "age" "" AGE;
    "allow" "" ALLOW;
    "authorization" "" AUTHORIZATION;
    "cache-control" "" CACHE_CONTROL;
    "content-disposition" "" CONTENT_DISPOSITION;
    "content-encoding" "" CONTENT_ENCODING;
    "content-language" "" CONTENT_LANGUAGE;
    "content-length" "" CONTENT_LENGTH;
    "content-location" "" CONTENT_LOCATION;
    "content-range" "" CONTENT_RANGE;
    "content-type" "" CONTENT_TYPE;
    "cookie" "" COOKIE;
    "date" "" DATE;
    "etag" "" ETAG;
    "expect" "" EXPECT;
    "expires" "" EXPIRES;
    "from" "" FROM;
    "host" "" HOST;
    "if-match" "" IF_MATCH;
    "if-modified-since" "" IF_MODIFIED_SINCE;
    "if-none-match" "" IF_NONE_MATCH;
    "if-range" "" IF_RANGE;
    "if-unmodified-since" "" IF_UNMODIFIED_SINCE;
    "last-modified" "" LAST_MODIFIED;
    "link" "" LINK;
    "location" "" LOCATION;
    "max-forwards" "" MAX_FORWARDS;
    "proxy-authenticate" "" PROXY_AUTHENTICATE;
    "proxy-authorization" "" PROXY_AUTHORIZATION;
    "range" "" RANGE;
    "referer" "" REFERER;
    "refresh" "" REFRESH;
    "retry-after" "" RETRY_AFTER;
    "server" "" SERVER;
    "set-cookie" "" SET_COOKIE;
    "strict-transport-security" "" STRICT_TRANSPORT_SECURITY;
    "transfer-encoding" "" TRANSFER_ENCODING;
    "user-agent" "" USER_AGENT;
    "vary" "" VARY;
    "via" "" VIA;
    "www-authenticate" "" WWW_AUTHENTICATE;
}

/// Static entry `index` (1 to [`LEN`]).
pub(super) fn entry(index: usize) -> &'static Entry {
    &TABLE[index - 1]
}

/// A header name of the static table, so one value per name: the index of the first
/// entry with it (`:method` is 2 whether the field was entry 2 or 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StaticName(u8);

/// The request and response pseudo-headers (RFC 9113 §8.3, RFC 8441 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pseudo {
    Authority,
    Method,
    Path,
    Scheme,
    Status,
    /// Extended CONNECT's `:protocol`: not in the static table, so only a literal name.
    Protocol,
}

impl Pseudo {
    #[cfg(test)]
    pub fn as_str(self) -> &'static str {
        match self {
            Pseudo::Authority => ":authority",
            Pseudo::Method => ":method",
            Pseudo::Path => ":path",
            Pseudo::Scheme => ":scheme",
            Pseudo::Status => ":status",
            Pseudo::Protocol => ":protocol",
        }
    }

    /// The pseudo-header spelled `name`; a name starting with ':' that is none of them
    /// makes the request malformed (RFC 9113 §8.3), which is the caller's to decide.
    pub fn from_bytes(name: &[u8]) -> Option<Pseudo> {
        Some(match name {
            b":authority" => Pseudo::Authority,
            b":method" => Pseudo::Method,
            b":path" => Pseudo::Path,
            b":scheme" => Pseudo::Scheme,
            b":status" => Pseudo::Status,
            b":protocol" => Pseudo::Protocol,
            _ => return None,
        })
    }
}

/// The static names the codec itself treats apart (a test checks their spelling).
pub(super) const STATUS: StaticName = StaticName(8);
pub(super) const AGE: StaticName = StaticName(21);
pub(super) const AUTHORIZATION: StaticName = StaticName(23);
pub(super) const CONTENT_LENGTH: StaticName = StaticName(28);
pub(super) const CONTENT_RANGE: StaticName = StaticName(30);
pub(super) const COOKIE: StaticName = StaticName(32);
pub(super) const ETAG: StaticName = StaticName(34);
pub(super) const EXPIRES: StaticName = StaticName(36);
pub(super) const LAST_MODIFIED: StaticName = StaticName(44);
pub(super) const LOCATION: StaticName = StaticName(46);
pub(super) const PROXY_AUTHORIZATION: StaticName = StaticName(49);
pub(super) const SET_COOKIE: StaticName = StaticName(55);

impl StaticName {
    /// The name of static entry `index` (1 to [`LEN`]).
    pub(super) fn of_entry(index: usize) -> StaticName {
        StaticName(FIRST[index])
    }

    /// The index of the first static entry with this name.
    pub(super) fn index(self) -> usize {
        usize::from(self.0)
    }

    pub fn as_str(self) -> &'static str {
        entry(self.index()).name
    }

    /// The prebuilt `http` name (a copy of a constant: no parsing, no allocation), or
    /// None for the pseudo-headers, which are not header names.
    pub fn header_name(self) -> Option<HeaderName> {
        HEADER_NAMES[self.index() - 1].clone()
    }

    pub fn pseudo(self) -> Option<Pseudo> {
        match self.0 {
            1 => Some(Pseudo::Authority),
            2 => Some(Pseudo::Method),
            4 => Some(Pseudo::Path),
            6 => Some(Pseudo::Scheme),
            8 => Some(Pseudo::Status),
            _ => None,
        }
    }

    /// The static entries with this name and `value`'s index, if any.
    pub(super) fn with_value(self, value: &[u8]) -> Option<usize> {
        (self.index()..=LEN)
            .take_while(|&i| FIRST[i] == self.0)
            .find(|&i| entry(i).value.as_bytes() == value)
    }

    /// The static name spelled `name`, found by hashing rather than by comparing it with
    /// the table's 52 names: this runs for every field the encoder writes.
    pub(super) fn lookup(name: &[u8]) -> Option<StaticName> {
        let mut slot = slot(name)?;
        loop {
            let index = BY_NAME[slot];
            if index == 0 {
                return None;
            }
            if entry(usize::from(index)).name.as_bytes() == name {
                return Some(StaticName(index));
            }
            slot = (slot + 1) % SLOTS;
        }
    }
}

/// `FIRST[i]`: the first entry with entry `i`'s name (`FIRST[0]` unused).
static FIRST: [u8; LEN + 1] = first_entries();

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn first_entries() -> [u8; LEN + 1] {
    let mut first = [0u8; LEN + 1];
    let mut i = 1;
    while i <= LEN {
        first[i] = if i > 1 && same(ENTRIES[i - 1].name, ENTRIES[i - 2].name) {
            first[i - 1]
        } else {
            i as u8
        };
        i += 1;
    }
    first
}

/// Open addressing over a quarter-full table: a name not in it (every custom header)
/// usually meets an empty slot at once.
const SLOTS: usize = 256;
static BY_NAME: [u8; SLOTS] = by_name();

/// Hashes the length and the first and last bytes, which already tell the 52 names
/// apart but for `accept`/`expect`-like pairs; probing sorts out the rest.
const fn slot(name: &[u8]) -> Option<usize> {
    let [first, .., last] = name else {
        return None;
    };
    let h = (name.len() as u32).wrapping_mul(0x9e37_79b1)
        ^ (*first as u32).wrapping_mul(0x85eb_ca77)
        ^ (*last as u32).wrapping_mul(0xc2b2_ae3d);
    Some((h >> 24) as usize)
}

const fn by_name() -> [u8; SLOTS] {
    let first = first_entries();
    let mut slots = [0u8; SLOTS];
    let mut i = 1;
    while i <= LEN {
        if first[i] == i as u8 {
            let Some(mut slot) = slot(ENTRIES[i - 1].name.as_bytes()) else {
                panic!("empty static name");
            };
            while slots[slot] != 0 {
                slot = (slot + 1) % SLOTS;
            }
            slots[slot] = i as u8;
        }
        i += 1;
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_names_its_prebuilt_header_name() {
        for i in 1..=LEN {
            let name = StaticName::of_entry(i);
            assert_eq!(name.as_str(), entry(i).name);
            match name.header_name() {
                Some(header) => assert_eq!(header.as_str(), name.as_str()),
                None => assert!(name.pseudo().is_some(), "{}", name.as_str()),
            }
            if let Some(pseudo) = name.pseudo() {
                assert_eq!(pseudo.as_str(), name.as_str());
                assert_eq!(Pseudo::from_bytes(name.as_str().as_bytes()), Some(pseudo));
            }
        }
        assert_eq!(StaticName::of_entry(3), StaticName::of_entry(2));
        assert_eq!(StaticName::of_entry(14), STATUS);
        let named = [
            (STATUS, ":status"),
            (AGE, "age"),
            (AUTHORIZATION, "authorization"),
            (CONTENT_LENGTH, "content-length"),
            (CONTENT_RANGE, "content-range"),
            (COOKIE, "cookie"),
            (ETAG, "etag"),
            (EXPIRES, "expires"),
            (LAST_MODIFIED, "last-modified"),
            (LOCATION, "location"),
            (PROXY_AUTHORIZATION, "proxy-authorization"),
            (SET_COOKIE, "set-cookie"),
        ];
        for (name, spelling) in named {
            assert_eq!(name.as_str(), spelling);
            assert_eq!(StaticName::lookup(spelling.as_bytes()), Some(name));
        }
    }

    #[test]
    fn finds_every_static_name_and_nothing_else() {
        for i in 1..=LEN {
            let found = StaticName::lookup(entry(i).name.as_bytes());
            assert_eq!(found, Some(StaticName::of_entry(i)), "{}", entry(i).name);
        }
        for other in [
            "",
            "x",
            "x-request-id",
            "accepts",
            "dates",
            "te",
            "content-typ",
        ] {
            assert_eq!(StaticName::lookup(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn probes_stay_short() {
        let longest = (0..SLOTS)
            .map(|start| {
                (0..SLOTS)
                    .take_while(|k| BY_NAME[(start + k) % SLOTS] != 0)
                    .count()
            })
            .max();
        assert!(longest <= Some(4), "{longest:?}");
    }

    #[test]
    fn finds_full_matches_among_entries_with_values() {
        let method = StaticName::of_entry(2);
        assert_eq!(method.with_value(b"GET"), Some(2));
        assert_eq!(method.with_value(b"POST"), Some(3));
        assert_eq!(method.with_value(b"PUT"), None);
        assert_eq!(STATUS.with_value(b"500"), Some(14));
        let encoding = StaticName::lookup(b"accept-encoding").unwrap();
        assert_eq!(encoding.with_value(b"gzip, deflate"), Some(16));
        let vary = StaticName::lookup(b"vary").unwrap();
        assert_eq!(vary.with_value(b""), Some(59));
        assert_eq!(vary.with_value(b"accept"), None);
    }
}
