//! The request target (RFC 9112 §3.2): which forms carry a path to normalize, and the
//! request URI rebuilt around the normalized path, the query untouched. The path rules
//! themselves are `meshwork_config::request_path`, shared with the config's checks.

use http::uri::PathAndQuery;
use http::{Method, Uri};
use meshwork_config::model::EscapedSlashes;
use meshwork_config::request_path::{PathRefusal, normalize_path};

/// `uri` with its path normalized, or `None` when it is already normal (or has no path).
///
/// - origin-form (`/p?q`) and absolute-form (`http://h/p?q`, and every HTTP/2 request):
///   the path is normalized; an empty path (`http://h?q`) becomes `/` (RFC 3986 §6.2.3);
/// - authority-form (`CONNECT h:443`, RFC 9112 §3.2.3) has no path: left alone;
/// - asterisk-form (`*`, RFC 9112 §3.2.4) only for `OPTIONS`.
///
/// # Errors
/// The path is refused ([`PathRefusal`]).
pub fn normalize_target(
    method: &Method,
    uri: &Uri,
    escaped: EscapedSlashes,
) -> Result<Option<Uri>, PathRefusal> {
    let Some(pq) = uri.path_and_query() else {
        return Ok(None);
    };
    let raw = pq.as_str();
    if raw == "*" {
        return if method == Method::OPTIONS {
            Ok(None)
        } else {
            Err(PathRefusal::NotAbsolute)
        };
    }
    // `http://h?q` arrives as `?q`, whose `path()` reads `/`.
    let empty_path = !raw.starts_with('/');
    let path = normalize_path(pq.path(), escaped)?;
    if !empty_path && matches!(path, std::borrow::Cow::Borrowed(_)) {
        return Ok(None);
    }
    let rebuilt = match pq.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.into_owned(),
    };
    let pq = PathAndQuery::try_from(rebuilt).map_err(|_| PathRefusal::InvalidCharacter)?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|_| PathRefusal::InvalidCharacter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(method: Method, uri: &str) -> Result<Option<String>, PathRefusal> {
        let uri: Uri = uri.parse().unwrap();
        normalize_target(&method, &uri, EscapedSlashes::Reject).map(|u| u.map(|u| u.to_string()))
    }

    #[test]
    fn a_normal_target_is_left_as_it_is() {
        assert_eq!(target(Method::GET, "/a/b?x=../..%2f"), Ok(None));
        assert_eq!(target(Method::GET, "http://h:8080/a"), Ok(None));
        assert_eq!(target(Method::CONNECT, "h:443"), Ok(None));
        assert_eq!(target(Method::OPTIONS, "*"), Ok(None));
    }

    #[test]
    fn the_path_is_normalized_and_the_query_and_authority_kept() {
        assert_eq!(
            target(Method::GET, "/x/../%61dmin?q=/../%2e%2E#f"),
            Ok(Some("/admin?q=/../%2e%2E".into()))
        );
        assert_eq!(
            target(Method::GET, "http://h:8080//a/./b"),
            Ok(Some("http://h:8080/a/b".into()))
        );
        assert_eq!(
            target(Method::GET, "http://h?q"),
            Ok(Some("http://h/?q".into()))
        );
    }

    #[test]
    fn asterisk_form_is_for_options_only_and_refusals_pass_through() {
        assert_eq!(target(Method::GET, "*"), Err(PathRefusal::NotAbsolute));
        assert_eq!(target(Method::GET, "/.."), Err(PathRefusal::AboveRoot));
        assert_eq!(
            target(Method::GET, "http://h/a%2fb"),
            Err(PathRefusal::EscapedSlash)
        );
    }
}
