//! Tests of the RDS translation.

use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, QueryParameterMatcher, RedirectAction, WeightedCluster,
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};

use envoy_types::pb::envoy::config::route::v3::RetryPolicy;

use super::*;

fn to(cluster: &str) -> Option<Action> {
    Some(Action::Route(RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..RouteAction::default()
    }))
}

fn prefix(p: &str) -> Option<RouteMatch> {
    Some(RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(p.into())),
        ..RouteMatch::default()
    })
}

fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
        ..VirtualHost::default()
    }
}

fn table(hosts: Vec<VirtualHost>) -> Result<Vec<Value>, Vec<Refusal>> {
    route_table(&RouteConfiguration {
        name: "edge".into(),
        virtual_hosts: hosts,
        ..RouteConfiguration::default()
    })
}

fn names(routes: &[Value]) -> Vec<&str> {
    routes
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn virtual_hosts_are_laid_out_most_specific_first_and_never_fall_through() {
    let any_host = vhost(
        "default",
        &["*"],
        vec![Route {
            r#match: prefix("/"),
            action: to("internal"),
            ..Route::default()
        }],
    );
    let api = vhost(
        "api",
        &["api.example.com"],
        vec![Route {
            name: "public".into(),
            r#match: prefix("/public/"),
            action: to("api"),
            ..Route::default()
        }],
    );
    let wild = vhost(
        "wild",
        &["*.example.com"],
        vec![Route {
            r#match: prefix("/"),
            action: to("wild"),
            ..Route::default()
        }],
    );
    let routes = table(vec![any_host, wild, api]).expect("translates");
    assert_eq!(
        names(&routes),
        [
            "api[api.example.com]/public",
            "api[api.example.com]/no-route",
            "wild[*.example.com]/0",
            "wild[*.example.com]/no-route",
            "default/0",
        ]
    );
    assert_eq!(routes[0]["match"]["host"], json!(["api.example.com"]));
    // api.example.com/admin is a 404 in Envoy: it must not reach the `*` host's routes.
    assert_eq!(routes[1]["match"], json!({ "host": ["api.example.com"] }));
    assert_eq!(routes[1]["direct_response"]["status"], 404);
    assert_eq!(routes[4]["match"].get("host"), None);
}

#[test]
fn route_actions_keep_envoys_meaning() {
    let action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: vec![
                ClusterWeight {
                    name: "v1".into(),
                    weight: Some(UInt32Value { value: 90 }),
                    ..ClusterWeight::default()
                },
                ClusterWeight {
                    name: "v2".into(),
                    weight: Some(UInt32Value { value: 10 }),
                    ..ClusterWeight::default()
                },
                ClusterWeight {
                    name: "off".into(),
                    weight: Some(UInt32Value { value: 0 }),
                    ..ClusterWeight::default()
                },
            ],
            ..WeightedCluster::default()
        })),
        prefix_rewrite: "/".into(),
        retry_policy: Some(RetryPolicy {
            retry_on: "5xx,connect-failure,retriable-status-codes".into(),
            retriable_status_codes: vec![409],
            num_retries: Some(UInt32Value { value: 2 }),
            per_try_timeout: Some(Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..RetryPolicy::default()
        }),
        ..RouteAction::default()
    };
    let route = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::SafeRegex(RegexMatcher {
                regex: "/u/[0-9]+".into(),
                ..RegexMatcher::default()
            })),
            headers: vec![
                HeaderMatcher {
                    name: ":method".into(),
                    header_match_specifier: Some(HeaderMatchSpecifier::ExactMatch("GET".into())),
                    ..HeaderMatcher::default()
                },
                HeaderMatcher {
                    name: "x-canary".into(),
                    header_match_specifier: Some(HeaderMatchSpecifier::PrefixMatch("a.b".into())),
                    ..HeaderMatcher::default()
                },
            ],
            ..RouteMatch::default()
        }),
        action: Some(Action::Route(action)),
        ..Route::default()
    };
    let routes = table(vec![vhost("all", &["*"], vec![route])]).expect("translates");
    let r = &routes[0];
    assert_eq!(
        r["match"]["path"],
        json!({ "regex": "^(?:/u/[0-9]+)$" }),
        "Envoy regexes match whole"
    );
    assert_eq!(r["match"]["method"], json!(["GET"]));
    assert_eq!(
        r["match"]["headers"],
        json!([{ "name": "x-canary", "regex": "^a\\.b" }])
    );
    assert_eq!(
        r["backends"],
        json!([{ "cluster": "v1", "weight": 90 }, { "cluster": "v2", "weight": 10 }])
    );
    assert_eq!(r["timeout"], "15000ms", "Envoy's default route timeout");
    assert_eq!(r["rewrite"], json!({ "path_prefix": "/" }));
    assert_eq!(r["retry"]["attempts"], 3);
    assert_eq!(r["retry"]["on"], json!(["5xx", "connect-failure", 409]));
    assert_eq!(r["retry"]["per_try_timeout"], "1000ms");
    assert_eq!(r["upgrades"], json!([]), "Envoy upgrades only when asked");

    let no_timeout = Route {
        r#match: prefix("/"),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster("api".into())),
            timeout: Some(Duration::default()),
            ..RouteAction::default()
        })),
        ..Route::default()
    };
    let routes = table(vec![vhost("all", &["*"], vec![no_timeout])]).expect("translates");
    assert_eq!(routes[0].get("timeout"), None, "0 disables the timeout");

    let direct = Route {
        r#match: prefix("/healthz"),
        action: Some(Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some(envoy_types::pb::envoy::config::core::v3::DataSource {
                specifier: Some(Specifier::InlineString("ok".into())),
                ..Default::default()
            }),
            ..DirectResponseAction::default()
        })),
        ..Route::default()
    };
    let routes = table(vec![vhost("all", &["*"], vec![direct])]).expect("translates");
    assert_eq!(
        routes[0]["direct_response"],
        json!({ "status": 200, "body": "ok" })
    );
}

#[test]
fn what_meshwork_cannot_represent_is_refused_by_field() {
    let routes = vec![
        Route {
            r#match: prefix("/"),
            action: Some(Action::Redirect(RedirectAction::default())),
            ..Route::default()
        },
        Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                headers: vec![HeaderMatcher {
                    name: "x".into(),
                    invert_match: true,
                    header_match_specifier: Some(HeaderMatchSpecifier::PresentMatch(true)),
                    ..HeaderMatcher::default()
                }],
                query_parameters: vec![QueryParameterMatcher::default()],
                ..RouteMatch::default()
            }),
            action: Some(Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster("api".into())),
                retry_policy: Some(RetryPolicy {
                    retry_on: "5xx,envoy-ratelimited".into(),
                    ..RetryPolicy::default()
                }),
                ..RouteAction::default()
            })),
            ..Route::default()
        },
    ];
    let refused: Vec<String> = table(vec![vhost("all", &["*", "api*"], routes)])
        .expect_err("refused")
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        refused,
        [
            "virtual_hosts[0].domains[1]: \"api*\": only exact domains, \"*.suffix\" and \"*\" are supported",
            "virtual_hosts[0].routes[0].redirect: redirects are not supported",
            "virtual_hosts[0].routes[1].match.headers[0].invert_match: inverted header matches are not supported",
            "virtual_hosts[0].routes[1].match.query_parameters: not supported by meshwork",
            "virtual_hosts[0].routes[1].route.retry_policy.retry_on: \"envoy-ratelimited\" is not supported",
        ]
    );
}
