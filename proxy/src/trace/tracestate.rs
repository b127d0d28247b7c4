//! The W3C `tracestate` header (Trace Context §3.3): every field combined into one list
//! (RFC 9110 §5.3), checked member by member, and forwarded whole — or not at all when
//! any member breaks the grammar or there are more than 32 (§3.3.1). A bad
//! `tracestate` never costs the `traceparent` its trace (§3.3).
//!
//! Keys follow the current grammar, `(lcalpha / DIGIT) 0*255(keychar)` with `@` a
//! keychar, which accepts every Level 1 key (simple and `tenant@system`) and the keys
//! written since. Empty and whitespace-only members are allowed and dropped; duplicate
//! keys are forwarded as they came (the proxy adds no entry of its own). Longer than
//! [`MAX_LEN`] characters combined, whole entries are removed, those over 128
//! characters first, then from the right (§3.3.1.5).

use http::HeaderValue;

use super::trim_ows;

/// Members a list may hold.
pub const MAX_MEMBERS: usize = 32;
/// Characters of the combined value forwarded at most (the spec asks for at least 512).
pub const MAX_LEN: usize = 512;
/// Entries longer than this are the first removed from a list over [`MAX_LEN`].
const LARGE_ENTRY: usize = 128;
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 256;

/// Why a `tracestate` is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTraceState {
    #[error("a list member without `=`")]
    NoEquals,
    #[error("a key that is not 1-256 of a-z 0-9 _ - * / @ starting with a-z or 0-9")]
    Key,
    #[error("a value that is not 1-256 printable ASCII characters other than `,` and `=`")]
    Value,
    #[error("more than 32 list members")]
    TooManyMembers,
}

fn valid_key(key: &[u8]) -> bool {
    let keychar =
        |c: &u8| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@');
    matches!(key.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && key.len() <= MAX_KEY
        && key.iter().all(keychar)
}

fn valid_value(value: &[u8]) -> bool {
    // The member is trimmed: a value cannot end with a space.
    !value.is_empty()
        && value.len() <= MAX_VALUE
        && value
            .iter()
            .all(|c| (0x20..=0x7e).contains(c) && *c != b',' && *c != b'=')
}

fn check_member(member: &[u8]) -> Result<(), InvalidTraceState> {
    let eq = member
        .iter()
        .position(|&c| c == b'=')
        .ok_or(InvalidTraceState::NoEquals)?;
    if !valid_key(&member[..eq]) {
        return Err(InvalidTraceState::Key);
    }
    if !valid_value(&member[eq + 1..]) {
        return Err(InvalidTraceState::Value);
    }
    Ok(())
}

/// The combined value of every `tracestate` field, to forward: `None` when there is
/// none or it holds no member.
///
/// # Errors
/// The first rule the list breaks; then none of it is forwarded.
pub fn combine<'a>(
    fields: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<Option<HeaderValue>, InvalidTraceState> {
    let mut fields = fields.into_iter().peekable();
    let Some(first) = fields.next() else {
        return Ok(None);
    };
    let single = fields.peek().is_none();
    let mut members: Vec<&[u8]> = Vec::new();
    for field in std::iter::once(first).chain(fields) {
        for member in field.as_bytes().split(|&c| c == b',').map(trim_ows) {
            if member.is_empty() {
                continue;
            }
            check_member(member)?;
            members.push(member);
            if members.len() > MAX_MEMBERS {
                return Err(InvalidTraceState::TooManyMembers);
            }
        }
    }
    let len = |members: &[&[u8]]| {
        members
            .iter()
            .map(|m| m.len() + 1)
            .sum::<usize>()
            .saturating_sub(1)
    };
    while len(&members) > MAX_LEN {
        let at = members
            .iter()
            .rposition(|m| m.len() > LARGE_ENTRY)
            .unwrap_or(members.len() - 1);
        members.remove(at);
    }
    if members.is_empty() {
        return Ok(None);
    }
    // One field already in its shortest form is forwarded as it came, without a copy.
    if single && first.len() == len(&members) {
        return Ok(Some(first.clone()));
    }
    let value = members.join(&b","[..]);
    Ok(Some(HeaderValue::from_bytes(&value).expect(
        "checked members joined by commas are a valid header value",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvalidTraceState as Invalid;

    fn combined(fields: &[&str]) -> Result<Option<String>, InvalidTraceState> {
        let values: Vec<HeaderValue> = fields
            .iter()
            .map(|f| HeaderValue::from_str(f).unwrap())
            .collect();
        combine(&values).map(|v| v.map(|v| v.to_str().unwrap().to_owned()))
    }

    fn forwarded(fields: &[&str]) -> String {
        combined(fields)
            .unwrap_or_else(|e| panic!("{fields:?}: {e}"))
            .unwrap_or_else(|| panic!("{fields:?}: nothing forwarded"))
    }

    #[test]
    fn one_field_is_forwarded_as_it_came() {
        let field = HeaderValue::from_static("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        let out = combine([&field]).unwrap().unwrap();
        assert_eq!(out, field);
    }

    #[test]
    fn several_fields_are_combined_in_order_into_one_list() {
        assert_eq!(
            forwarded(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
            "foo=1,bar=2,rojo=1,congo=2,baz=3"
        );
    }

    #[test]
    fn no_field_or_only_empty_members_forward_nothing() {
        assert_eq!(combined(&[]), Ok(None));
        assert_eq!(combined(&[""]), Ok(None));
        assert_eq!(combined(&[" , \t,, "]), Ok(None));
    }

    #[test]
    fn empty_members_and_fields_are_dropped() {
        assert_eq!(forwarded(&["foo=1", ""]), "foo=1");
        assert_eq!(forwarded(&["", "foo=1"]), "foo=1");
        assert_eq!(forwarded(&["foo=1,,bar=2,"]), "foo=1,bar=2");
    }

    #[test]
    fn whitespace_around_members_is_dropped_and_leading_spaces_of_a_value_kept() {
        assert_eq!(
            forwarded(&["foo=1 \t , \t bar=2, \t baz=3"]),
            "foo=1,bar=2,baz=3"
        );
        assert_eq!(forwarded(&["foo=1\t \t,\t \tbar=2"]), "foo=1,bar=2");
        assert_eq!(forwarded(&["\t foo=1 \t"]), "foo=1");
        assert_eq!(forwarded(&["foo=  bar"]), "foo=  bar");
    }

    #[test]
    fn every_allowed_key_and_value_character_is_accepted() {
        let key: String = ('a'..='z').chain('0'..='9').chain("_-*/".chars()).collect();
        let value: String = (0x20u8..=0x7e)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect();
        for key in [key.clone(), format!("{key}@a-z0-9_-*/")] {
            let member = format!("{key}={value}");
            assert_eq!(forwarded(&[&member]), member);
        }
    }

    #[test]
    fn keys_may_start_with_a_digit_and_hold_at_signs() {
        for key in [
            "0vendor",
            "tenant@system",
            "foo@",
            "foo@@bar",
            "foo@bar@baz",
            &format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            &format!("t@{}", "v".repeat(15)),
        ] {
            let member = format!("{key}=1,bar=2");
            assert_eq!(forwarded(&[&member]), member);
        }
    }

    #[test]
    fn a_key_breaking_the_grammar_drops_the_whole_list() {
        for member in ["foo =1", "FOO=1", "foo.bar=1", "@foo=1", "_foo=1", "=1"] {
            assert_eq!(
                combined(&[&format!("{member},bar=2")]),
                Err(Invalid::Key),
                "{member:?}"
            );
        }
    }

    #[test]
    fn a_key_is_at_most_256_characters() {
        let key = "z".repeat(256);
        assert_eq!(
            forwarded(&["foo=1", &format!("{key}=1")]),
            format!("foo=1,{key}=1")
        );
        let key = "z".repeat(257);
        assert_eq!(combined(&["foo=1", &format!("{key}=1")]), Err(Invalid::Key));
    }

    #[test]
    fn a_value_breaking_the_grammar_drops_the_whole_list() {
        assert_eq!(combined(&["foo=bar=baz"]), Err(Invalid::Value));
        assert_eq!(combined(&["foo=,bar=3"]), Err(Invalid::Value));
        assert_eq!(combined(&["foo=a\tb"]), Err(Invalid::Value));
        assert_eq!(combined(&["bar=2,foo"]), Err(Invalid::NoEquals));
        let obs_text = HeaderValue::from_bytes(b"foo=caf\xe9").unwrap();
        assert_eq!(combine([&obs_text]), Err(Invalid::Value));
    }

    #[test]
    fn a_value_is_at_most_256_characters() {
        let member = format!("foo={}", "v".repeat(256));
        assert_eq!(forwarded(&[&member]), member);
        let member = format!("foo={}", "v".repeat(257));
        assert_eq!(combined(&[&member]), Err(Invalid::Value));
    }

    #[test]
    fn thirty_two_members_are_forwarded_and_thirty_three_are_not() {
        let members: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
        let list = |n: usize| members[..n].join(",");
        assert_eq!(forwarded(&[&list(32)]), list(32));
        assert_eq!(combined(&[&list(33)]), Err(Invalid::TooManyMembers));
        // Counted across fields, empty members not counted.
        let (a, b) = members[..33].split_at(20);
        assert_eq!(
            combined(&[&a.join(","), &b.join(",")]),
            Err(Invalid::TooManyMembers)
        );
        assert_eq!(forwarded(&[&format!("{},,,", list(32))]), list(32));
    }

    #[test]
    fn duplicate_keys_are_forwarded_as_they_came() {
        assert_eq!(forwarded(&["foo=1,foo=2"]), "foo=1,foo=2");
        assert_eq!(forwarded(&["foo=1", "foo=1"]), "foo=1,foo=1");
    }

    #[test]
    fn over_512_characters_whole_entries_go_the_large_ones_first_then_from_the_right() {
        // 5 entries of 100 characters (504 with commas), one of 200 in the middle.
        let entry = |name: char, len: usize| format!("{name}={}", "x".repeat(len - 2));
        let small: Vec<String> = "abcde".chars().map(|n| entry(n, 100)).collect();
        let large = entry('z', 200);
        let list = format!(
            "{},{},{large},{},{}",
            small[0], small[1], small[2], small[3]
        );
        assert_eq!(
            forwarded(&[&list, &small[4]]),
            small.join(","),
            "the large entry goes, the rest fits in 504"
        );
        let six: Vec<String> = "abcdef".chars().map(|n| entry(n, 100)).collect();
        assert_eq!(
            forwarded(&[&six.join(",")]),
            six[..5].join(","),
            "then the right-most"
        );
        let exactly = format!("{},{}", small[..4].join(","), entry('e', 108));
        assert_eq!(exactly.len(), MAX_LEN);
        assert_eq!(forwarded(&[&exactly]), exactly);
    }
}
