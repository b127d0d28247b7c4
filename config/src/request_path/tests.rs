//! Examples of the normalizer, one rule each: the tricks of issue #12 and the ones an
//! attacker would try next.

use std::borrow::Cow;

use crate::model::EscapedSlashes::{self, Keep, Reject};

use super::{PathRefusal, normalize_path};

fn normalized(path: &str) -> String {
    normalized_with(path, Reject)
}

fn normalized_with(path: &str, escaped: EscapedSlashes) -> String {
    match normalize_path(path, escaped) {
        Ok(p) => p.into_owned(),
        Err(e) => panic!("{path:?} was refused: {e}"),
    }
}

fn refused(path: &str) -> PathRefusal {
    match normalize_path(path, Reject) {
        Ok(p) => panic!("{path:?} was accepted as {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_normal_path_is_returned_borrowed() {
    for path in [
        "/",
        "/admin",
        "/a/b/c/",
        "/users/7/orders",
        "/%C3%A9t%C3%A9",
        "/a;b=c/d",
        "/a%20b",
        "/~user/file.tar.gz",
        "/a/.../b",
        "/.well-known/x",
        "/a..b/..c",
    ] {
        match normalize_path(path, Reject) {
            Ok(Cow::Borrowed(p)) => assert_eq!(p, path),
            other => panic!("{path:?}: {other:?}"),
        }
    }
}

#[test]
fn the_tricks_of_the_issue_all_read_as_admin() {
    for path in [
        "/x/../admin",
        "/./admin",
        "//admin",
        "/%61dmin",
        "/%2e/admin",
        "/%2E/admin",
        "/x/%2e%2e/admin",
        "/x/.%2E/admin",
        "/public/../admin",
        "/public/./../admin",
        "///admin",
        "/a//../admin",
    ] {
        assert_eq!(normalized(path), "/admin", "{path:?}");
    }
}

#[test]
fn unreserved_characters_are_decoded_and_other_encodings_uppercased() {
    assert_eq!(normalized("/%7euser/%41%5a%30%2D%5F"), "/~user/AZ0-_");
    assert_eq!(normalized("/a%20b/c%3bd/%c3%a9"), "/a%20b/c%3Bd/%C3%A9");
    assert_eq!(normalized("/%252e%252e/x"), "/%252e%252e/x");
    assert_eq!(normalized("/q%3fx%23y"), "/q%3Fx%23y");
}

#[test]
fn raw_non_ascii_is_percent_encoded_as_utf_8() {
    assert_eq!(normalized("/café"), "/caf%C3%A9");
    assert_eq!(normalized("/caf%C3%A9"), "/caf%C3%A9");
}

#[test]
fn dot_segments_are_removed_as_rfc_3986_5_2_4_says() {
    for (path, want) in [
        ("/a/b/c/./../../g", "/a/g"),
        ("/a/.", "/a/"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/.", "/"),
        ("/./", "/"),
        ("/a/./b/", "/a/b/"),
        ("/a/%2e%2e", "/"),
        ("/a//b//", "/a/b/"),
        ("/a//..", "/"),
    ] {
        assert_eq!(normalized(path), want, "{path:?}");
    }
}

#[test]
fn climbing_above_the_root_is_refused() {
    for path in [
        "/..",
        "/../a",
        "/a/../../b",
        "/%2e%2e/x",
        "/a/.%2e/../b",
        "//..",
    ] {
        assert_eq!(refused(path), PathRefusal::AboveRoot, "{path:?}");
    }
}

#[test]
fn encoded_slashes_are_refused_by_default_and_kept_opaque_on_request() {
    for path in ["/x/..%2fadmin", "/a%2Fb", "/a%5cb", "/a%5C..%5Cb"] {
        assert_eq!(refused(path), PathRefusal::EscapedSlash, "{path:?}");
    }
    assert_eq!(normalized_with("/a%2fb/../c", Keep), "/c");
    assert_eq!(normalized_with("/a%5cb", Keep), "/a%5Cb");
    assert_eq!(normalized_with("/a%2F%2Fb%2F", Keep), "/a%2F%2Fb%2F");
    assert_eq!(normalized_with("/a...%2F.b", Keep), "/a...%2F.b");
}

#[test]
fn a_kept_escaped_slash_may_not_border_a_dot_segment() {
    for (path, why) in [
        ("/x/..%2fadmin", PathRefusal::DotSegmentBesideEscapedSlash),
        ("/x/%2F..", PathRefusal::DotSegmentBesideEscapedSlash),
        ("/a%2F.%2Fb", PathRefusal::DotSegmentBesideEscapedSlash),
        ("/a/..%5c..%5cb", PathRefusal::DotSegmentBesideEscapedSlash),
        ("/a%2F%2e%2E%2Fb", PathRefusal::DotSegmentBesideEscapedSlash),
        ("/a%2F..;x", PathRefusal::DotSegmentWithParameters),
        ("/a%2F;x", PathRefusal::DotSegmentWithParameters),
    ] {
        assert_eq!(normalize_path(path, Keep), Err(why), "{path:?}");
    }
}

#[test]
fn what_readers_disagree_on_is_refused() {
    for (path, why) in [
        ("/a\\b", PathRefusal::Backslash),
        ("/x/..;/admin", PathRefusal::DotSegmentWithParameters),
        ("/x/.;a/admin", PathRefusal::DotSegmentWithParameters),
        ("/public/;x/../admin", PathRefusal::DotSegmentWithParameters),
        ("/x/%2e%2e;/admin", PathRefusal::DotSegmentWithParameters),
        ("/x/..%3b/admin", PathRefusal::DotSegmentWithParameters),
        ("/%zz", PathRefusal::InvalidPercentEncoding),
        ("/%", PathRefusal::InvalidPercentEncoding),
        ("/%2", PathRefusal::InvalidPercentEncoding),
        ("/%u0041", PathRefusal::InvalidPercentEncoding),
        ("/a%00b", PathRefusal::EncodedControl),
        ("/a%0d%0aSet-Cookie:x", PathRefusal::EncodedControl),
        ("/a%0A", PathRefusal::EncodedControl),
        ("/a%7f", PathRefusal::EncodedControl),
        ("/a b", PathRefusal::InvalidCharacter),
        ("/a\tb", PathRefusal::InvalidCharacter),
        ("/a?b", PathRefusal::InvalidCharacter),
        ("/a<b>", PathRefusal::InvalidCharacter),
        ("admin", PathRefusal::NotAbsolute),
        ("", PathRefusal::NotAbsolute),
        ("*", PathRefusal::NotAbsolute),
    ] {
        assert_eq!(refused(path), why, "{path:?}");
    }
}

#[test]
fn semicolons_elsewhere_are_names() {
    assert_eq!(normalized("/a;b/../c"), "/c");
    assert_eq!(normalized("/admin;jsessionid=1"), "/admin;jsessionid=1");
    assert_eq!(normalized("/...;x"), "/...;x");
}

#[test]
fn characters_parsers_tolerate_are_kept_as_they_are() {
    assert_eq!(normalized("/a\"b{c}|d^e[f]"), "/a\"b{c}|d^e[f]");
}
