//! Route table tests: each matcher, first match wins, and the host index keeping order.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use meshwork_config::model::*;

use super::{RouteRequest, RouteTable};

fn route(name: &str, matcher: RouteMatch) -> Route {
    Route {
        name: name.into(),
        matcher,
        action: RouteAction::DirectResponse(DirectResponse {
            status: StatusCode::OK,
            body: name.into(),
        }),
        timeout: None,
        retry: None,
        hedge: None,
        fault: None,
        rewrite: None,
        request_headers: HeaderModifier::default(),
        response_headers: HeaderModifier::default(),
        rate_limit: None,
        mirror: None,
        upgrades: Vec::new(),
    }
}

fn table(routes: Vec<Route>) -> RouteTable {
    RouteTable::build(
        &meshwork_config::model::RouteTable {
            name: "t".into(),
            routes,
        },
        &HashMap::new(),
    )
}

fn pattern(source: &str) -> Pattern {
    Pattern {
        source: source.into(),
        regex: regex::Regex::new(source).unwrap(),
    }
}

/// The name of the route `method url` (with headers) takes, if any.
fn pick(t: &RouteTable, method: &str, url: &str, headers: &[(&str, &str)]) -> Option<String> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let uri: Uri = url.parse().unwrap();
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let req = RouteRequest::new(&method, &uri, &map);
    t.find(&req).map(|r| r.name().to_owned())
}

fn hosts(list: &[&str]) -> Vec<HostMatch> {
    list.iter()
        .map(|h| match h.strip_prefix('*') {
            Some(suffix) => HostMatch::Wildcard(suffix.into()),
            None => HostMatch::Exact((*h).into()),
        })
        .collect()
}

#[test]
fn exact_and_wildcard_hosts_match_case_and_port_insensitively() {
    let t = table(vec![
        route(
            "exact",
            RouteMatch {
                hosts: hosts(&["api.example.com"]),
                ..Default::default()
            },
        ),
        route(
            "wild",
            RouteMatch {
                hosts: hosts(&["*.example.com"]),
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(
        pick(&t, "GET", "http://API.example.com:8080/", &[]).as_deref(),
        Some("exact")
    );
    assert_eq!(
        pick(&t, "GET", "/", &[("host", "api.example.com")]).as_deref(),
        Some("exact")
    );
    assert_eq!(
        pick(&t, "GET", "http://a.b.example.com/", &[]).as_deref(),
        Some("wild")
    );
    assert_eq!(
        pick(&t, "GET", "http://example.com/", &[]),
        None,
        "the wildcard needs a label before the suffix"
    );
    assert_eq!(pick(&t, "GET", "http://other.org/", &[]), None);
}

#[test]
fn first_match_wins_across_host_and_any_host_routes() {
    let t = table(vec![
        route(
            "any-first",
            RouteMatch {
                path: Some(PathMatch::Exact("/x".into())),
                ..Default::default()
            },
        ),
        route(
            "host",
            RouteMatch {
                hosts: hosts(&["h.com"]),
                ..Default::default()
            },
        ),
        route(
            "wild",
            RouteMatch {
                hosts: hosts(&["*.com"]),
                ..Default::default()
            },
        ),
        route("any-last", RouteMatch::default()),
    ]);
    assert_eq!(
        pick(&t, "GET", "http://h.com/x", &[]).as_deref(),
        Some("any-first")
    );
    assert_eq!(
        pick(&t, "GET", "http://h.com/y", &[]).as_deref(),
        Some("host")
    );
    assert_eq!(
        pick(&t, "GET", "http://g.com/y", &[]).as_deref(),
        Some("wild")
    );
    assert_eq!(
        pick(&t, "GET", "http://localhost/y", &[]).as_deref(),
        Some("any-last")
    );
}

#[test]
fn path_matchers_exact_prefix_and_regex() {
    let t = table(vec![
        route(
            "exact",
            RouteMatch {
                path: Some(PathMatch::Exact("/healthz".into())),
                ..Default::default()
            },
        ),
        route(
            "prefix",
            RouteMatch {
                path: Some(PathMatch::Prefix("/v1/".into())),
                ..Default::default()
            },
        ),
        route(
            "regex",
            RouteMatch {
                path: Some(PathMatch::Regex(pattern("^/u/[0-9]+$"))),
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(pick(&t, "GET", "/healthz", &[]).as_deref(), Some("exact"));
    assert_eq!(pick(&t, "GET", "/healthz/", &[]), None);
    assert_eq!(
        pick(&t, "GET", "/v1/users?x=1", &[]).as_deref(),
        Some("prefix")
    );
    assert_eq!(pick(&t, "GET", "/v1", &[]), None);
    assert_eq!(pick(&t, "GET", "/u/42", &[]).as_deref(), Some("regex"));
    assert_eq!(pick(&t, "GET", "/u/42x", &[]), None);
}

#[test]
fn method_header_and_query_conditions() {
    let header = |name: &str, condition| HeaderMatch {
        name: HeaderName::from_bytes(name.as_bytes()).unwrap(),
        condition,
    };
    let query = |name: &str, condition| QueryMatch {
        name: name.into(),
        condition,
    };
    let t = table(vec![
        route(
            "post",
            RouteMatch {
                methods: vec!["POST".into()],
                ..Default::default()
            },
        ),
        route(
            "canary",
            RouteMatch {
                headers: vec![header("x-canary", ValueCondition::Exact("true".into()))],
                ..Default::default()
            },
        ),
        route(
            "regex-h",
            RouteMatch {
                headers: vec![header("x-user", ValueCondition::Regex(pattern("^[0-9]+$")))],
                ..Default::default()
            },
        ),
        route(
            "absent",
            RouteMatch {
                headers: vec![header("x-skip", ValueCondition::Present(false))],
                query: vec![query("debug", ValueCondition::Present(true))],
                ..Default::default()
            },
        ),
        route(
            "q-exact",
            RouteMatch {
                query: vec![query("v", ValueCondition::Exact("2".into()))],
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(pick(&t, "POST", "/", &[]).as_deref(), Some("post"));
    assert_eq!(
        pick(&t, "GET", "/", &[("x-canary", "true")]).as_deref(),
        Some("canary")
    );
    assert_eq!(pick(&t, "GET", "/", &[("x-canary", "TRUE")]), None);
    assert_eq!(
        pick(&t, "GET", "/", &[("x-user", "123")]).as_deref(),
        Some("regex-h")
    );
    assert_eq!(pick(&t, "GET", "/?debug", &[]).as_deref(), Some("absent"));
    assert_eq!(pick(&t, "GET", "/?debug=1", &[("x-skip", "1")]), None);
    assert_eq!(
        pick(&t, "GET", "/?a=1&v=2", &[]).as_deref(),
        Some("q-exact")
    );
}

#[test]
fn explain_names_the_failing_condition() {
    let t = table(vec![
        route(
            "health",
            RouteMatch {
                path: Some(PathMatch::Exact("/healthz".into())),
                ..Default::default()
            },
        ),
        route(
            "get-only",
            RouteMatch {
                methods: vec!["GET".into()],
                ..Default::default()
            },
        ),
    ]);
    let method = Method::POST;
    let uri: Uri = "/x".parse().unwrap();
    let headers = HeaderMap::new();
    let verdicts = t.explain(&RouteRequest::new(&method, &uri, &headers));
    assert_eq!(
        verdicts[0].1.as_ref().unwrap_err(),
        "path \"/x\" is not exactly \"/healthz\""
    );
    assert_eq!(
        verdicts[1].1.as_ref().unwrap_err(),
        "method POST is not one of [GET]"
    );
}

mod index;
