//! The host and path index keeps first-match order: the indexed lookup against a plain
//! ordered scan, over a fixed table mixing every condition kind and over random tables.

use http::{HeaderMap, HeaderValue, Method, Uri};
use meshwork_config::model::*;
use proptest::prelude::*;

use super::{hosts, pattern, route, table};
use crate::router::{RouteRequest, RouteTable};

/// The index only skips routes that cannot match: over a table mixing every kind of host
/// and path condition, the indexed lookup picks what a linear first-match scan picks.
#[test]
fn the_host_and_path_index_agrees_with_a_linear_scan() {
    let paths = [
        None,
        Some(PathMatch::Prefix("/".into())),
        Some(PathMatch::Prefix("/api/".into())),
        Some(PathMatch::Prefix("/api".into())),
        Some(PathMatch::Prefix("/api/v1/".into())),
        Some(PathMatch::Prefix("/ap".into())),
        Some(PathMatch::Prefix("/static/img/".into())),
        Some(PathMatch::Exact("/api".into())),
        Some(PathMatch::Exact("/api/v1/users".into())),
        Some(PathMatch::Exact("/".into())),
        Some(PathMatch::Prefix("/api/v1/users/x/y/".into())),
        Some(PathMatch::Exact("/api/v1/users/x/y/z".into())),
        Some(PathMatch::Regex(pattern("^/api/v[0-9]+/"))),
    ];
    let host_sets: [&[&str]; 4] = [&[], &["a.com"], &["*.a.com"], &["b.com", "*.com"]];
    // Every rotation of the path list, so each kind of route is first in some table.
    for rotation in 0..paths.len() {
        let mut paths = paths.clone();
        paths.rotate_left(rotation);
        let t = mixed_table(&paths, &host_sets);
        check_against_linear_scan(&t);
    }
}

/// Every combination of `paths` and `hosts`, in an order that interleaves them, and once
/// more with a method condition so that earlier candidates fail on something else.
fn mixed_table(paths: &[Option<PathMatch>], host_sets: &[&[&str]]) -> RouteTable {
    let mut routes = Vec::new();
    for method in [Some("POST"), None] {
        for (pi, path) in paths.iter().enumerate() {
            for (hi, hosts_list) in host_sets.iter().enumerate() {
                routes.push(route(
                    &format!("r{}-{pi}-{hi}", routes.len()),
                    RouteMatch {
                        hosts: hosts(hosts_list),
                        path: path.clone(),
                        methods: method.map(|m| vec![m.to_owned()]).unwrap_or_default(),
                        ..Default::default()
                    },
                ));
            }
        }
    }
    table(routes)
}

/// The route a plain ordered scan picks and the one the indexed lookup picks.
fn linear_and_indexed(
    t: &RouteTable,
    method: &str,
    host: &str,
    path: &str,
) -> (Option<String>, Option<String>) {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let uri: Uri = path.parse().unwrap();
    let mut headers = HeaderMap::new();
    if !host.is_empty() {
        headers.insert("host", HeaderValue::from_str(host).unwrap());
    }
    let req = RouteRequest::new(&m, &uri, &headers);
    let linear = t
        .explain(&req)
        .into_iter()
        .find(|(_, verdict)| verdict.is_ok())
        .map(|(r, _)| r.name().to_owned());
    let indexed = t.find(&req).map(|r| r.name().to_owned());
    (linear, indexed)
}

fn check_against_linear_scan(t: &RouteTable) {
    let urls = [
        "/",
        "/api",
        "/api/",
        "/apis",
        "/api/v1/users",
        "/api/v2/x",
        "/ap",
        "/static/img/a.png",
        "/api/v1/users/x/y/z",
        "/static",
        "/other/x",
        "*",
    ];
    for host in ["a.com", "x.a.com", "b.com", "c.com", "d.org", ""] {
        for path in urls {
            for method in ["GET", "POST"] {
                let (linear, indexed) = linear_and_indexed(t, method, host, path);
                assert_eq!(indexed, linear, "{method} {host}{path}");
            }
        }
    }
}

/// Paths of up to six segments over a tiny alphabet (empty segments included), so random
/// routes and requests share segments often; deeper than the index goes.
const PATH: &str = "(/(a|b|ab)?){1,6}";

/// Compiled once: a debug-build regex compile per case would dominate the run.
fn regexes() -> Vec<Pattern> {
    static REGEXES: std::sync::LazyLock<Vec<Pattern>> = std::sync::LazyLock::new(|| {
        ["^/a/", "b$", "^/(a|ab)/b", "^/$"]
            .into_iter()
            .map(pattern)
            .collect()
    });
    REGEXES.clone()
}

fn path_condition() -> impl Strategy<Value = Option<PathMatch>> {
    prop_oneof![
        Just(None),
        PATH.prop_map(|p| Some(PathMatch::Exact(p))),
        PATH.prop_map(|p| Some(PathMatch::Prefix(p))),
        prop::sample::select(regexes()).prop_map(|re| Some(PathMatch::Regex(re))),
    ]
}

fn random_route() -> impl Strategy<Value = RouteMatch> {
    (
        path_condition(),
        prop::sample::subsequence(vec!["a.com", "*.a.com", "b.com"], 0..=2),
        any::<bool>(),
    )
        .prop_map(|(path, host_list, post_only)| RouteMatch {
            hosts: hosts(&host_list),
            path,
            methods: if post_only {
                vec!["POST".to_owned()]
            } else {
                Vec::new()
            },
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(crate::property::config())]

    #[test]
    fn random_tables_pick_what_an_ordered_scan_picks(
        matchers in prop::collection::vec(random_route(), 1..24),
        requests in prop::collection::vec(
            (
                prop_oneof![4 => PATH.boxed(), 1 => Just("*".to_owned()).boxed()],
                prop::sample::select(vec!["a.com", "x.a.com", "b.com", "c.org", ""]),
                prop::sample::select(vec!["GET", "POST"]),
            ),
            1..12,
        ),
    ) {
        let routes = matchers
            .into_iter()
            .enumerate()
            .map(|(i, m)| route(&format!("r{i}"), m))
            .collect();
        let t = table(routes);
        for (path, host, method) in &requests {
            let (linear, indexed) = linear_and_indexed(&t, method, host, path);
            prop_assert_eq!(indexed, linear, "{} {}{}", method, host, path);
        }
    }
}
