//! A real Envoy fed by `meshwork-control` over xDS v3 ADS, in both flavours (State of
//! the World and Delta): every type is ACKed (the control plane's `/status`, Envoy's
//! stats and config dump agree), traffic flows through Envoy to local upstreams, an edit
//! of a fragment reaches Envoy, and a broken edit is never sent: Envoy's count of
//! accepted route updates goes straight from the last good version to the fixed one,
//! and it rejected nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use meshwork_tests::envoy::{AdsFlavor, Envoy, envoy_bin_or_skip};
use meshwork_tests::{ControlPlane, HttpClient, Upstream, dedent, eventually};

/// How long a change may take to reach Envoy before the test gives up (the observed
/// time is printed; it is normally well under a second).
const PROPAGATION_BOUND: Duration = Duration::from_secs(15);

/// The four xDS types, as `/status` names them.
const TYPES: [&str; 4] = ["cluster", "endpoints", "listener", "route"];

fn clusters(api: &str) -> String {
    dedent(&format!(
        "
        clusters:
          - name: api
            endpoints: [{api}]
            load_balancer: least_request
            limits: {{ max_requests: 100 }}
        "
    ))
}

/// Listener `edge` with routes; `extra` adds routes (indented as list items of the
/// table) before the catch-all.
fn routes(extra: &str) -> String {
    format!(
        "listeners:
  - name: edge
    address: 127.0.0.1:0
    route_table: edge
route_tables:
  edge:
{extra}    - name: all
      backends: [{{ cluster: api }}]
      timeout: 5s
      retry: {{ attempts: 2, on: [connect-failure, 503] }}
"
    )
}

const HELLO_ROUTE: &str = "    - name: hello
      match: { path: { exact: /hello }, method: [GET] }
      direct_response: { status: 200, body: \"hi\\n\" }
";

/// What `/status` says about the one Envoy stream.
async fn envoy_stream(control: &ControlPlane) -> serde_json::Value {
    control.status().await["envoy"][0].clone()
}

/// Whether every type was sent and its last version ACKed, without a NACK.
fn all_acked(stream: &serde_json::Value) -> bool {
    TYPES.iter().all(|t| {
        let ty = &stream["types"][*t];
        ty["sent_version"].is_string()
            && ty["acked_version"] == ty["sent_version"]
            && ty["last_nack"].is_null()
    })
}

/// The sent version of each type.
fn sent_versions(stream: &serde_json::Value) -> Vec<String> {
    TYPES
        .iter()
        .map(|t| {
            stream["types"][*t]["sent_version"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

async fn get(client: &HttpClient, port: u16, path: &str) -> Option<(u16, String)> {
    let request = client
        .request(http::Method::GET, &format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(2));
    let reply = request.try_send().await.ok()?;
    Some((reply.status.as_u16(), reply.text()))
}

/// Envoy's count of `update_rejected` over every xDS subscription (0 when none exists).
async fn rejected_updates(envoy: &Envoy) -> u64 {
    envoy
        .admin("/stats?filter=update_rejected")
        .await
        .lines()
        .filter_map(|l| l.rsplit_once(": ")?.1.trim().parse::<u64>().ok())
        .sum()
}

async fn envoy_follows_meshwork_control(flavor: AdsFlavor) {
    let Ok(bin) = envoy_bin_or_skip() else {
        return;
    };
    let v1 = Upstream::http1().name("v1").route("/", "v1").start().await;
    let v2 = Upstream::http1().name("v2").route("/", "v2").start().await;
    let control = ControlPlane::start().await;
    control.write("clusters.yaml", &clusters(&v1.endpoint()));
    control.write("routes.yaml", &routes(""));
    eventually(
        "the control plane to serve the fragments",
        PROPAGATION_BOUND,
        || async { control.status().await["resources"]["listener"] == 1 },
    )
    .await;
    let xds: SocketAddr = control
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("the discovery address");
    let envoy = Envoy::start(&bin, xds, "envoy-1", &[("app", "edge")], flavor).await;

    // Every type is sent and ACKed.
    let started = Instant::now();
    eventually("Envoy to ACK every type", PROPAGATION_BOUND, || async {
        all_acked(&envoy_stream(&control).await)
    })
    .await;
    eprintln!(
        "Envoy ACKed every type {:?} after it started",
        started.elapsed()
    );
    let stream = envoy_stream(&control).await;
    assert_eq!(stream["id"], "envoy-1");
    assert_eq!(stream["labels"]["app"], "edge");
    let expected_protocol = match flavor {
        AdsFlavor::StateOfTheWorld => "sotw",
        AdsFlavor::Delta => "delta",
    };
    assert_eq!(stream["protocol"], expected_protocol);
    assert_eq!(stream["refused"], serde_json::json!([]));

    // Envoy's side: accepted, nothing rejected, every resource in its config dump.
    assert!(envoy.stat("cluster_manager.cds.update_success").await >= Some(1));
    assert!(envoy.stat("listener_manager.lds.update_success").await >= Some(1));
    assert!(envoy.stat("http.edge.rds.edge.update_success").await >= Some(1));
    assert!(envoy.stat("cluster.api.update_success").await >= Some(1));
    assert_eq!(rejected_updates(&envoy).await, 0);
    let dump = envoy.config_dump().await.to_string();
    for needle in [
        r#""name":"edge""#,
        r#""cluster_name":"api""#,
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    ] {
        assert!(dump.contains(needle), "config_dump lacks {needle}: {dump}");
    }
    assert!(
        !dump.contains("error_state"),
        "an xDS error in config_dump: {dump}"
    );
    let clusters_page = envoy.admin("/clusters").await;
    assert!(
        clusters_page.contains(&format!("api::{}::", v1.endpoint())),
        "/clusters lacks api's endpoint {}: {clusters_page}",
        v1.endpoint()
    );

    // Traffic flows through Envoy to the upstream.
    let client = HttpClient::h1();
    let port = envoy.wait_listener_port("edge", PROPAGATION_BOUND).await;
    eventually(
        "a request through Envoy to reach v1",
        PROPAGATION_BOUND,
        || async { get(&client, port, "/").await == Some((200, "v1".into())) },
    )
    .await;
    assert!(v1.requests() >= 1);

    // An edit of the fragments (a new route: RDS; api moved to v2: EDS) reaches Envoy.
    let edited = Instant::now();
    control.write("routes.yaml", &routes(HELLO_ROUTE));
    control.write("clusters.yaml", &clusters(&v2.endpoint()));
    eventually("the edit to reach Envoy", PROPAGATION_BOUND, || async {
        get(&client, port, "/hello").await == Some((200, "hi\n".into()))
            && get(&client, port, "/").await == Some((200, "v2".into()))
    })
    .await;
    eprintln!("the edit reached Envoy in {:?}", edited.elapsed());
    eventually("Envoy to ACK the edit", PROPAGATION_BOUND, || async {
        all_acked(&envoy_stream(&control).await)
    })
    .await;
    let good = sent_versions(&envoy_stream(&control).await);
    let route_updates = envoy.stat("http.edge.rds.edge.update_success").await;

    // A broken edit is refused by the control plane and never sent.
    control.write(
        "routes.yaml",
        &routes(HELLO_ROUTE).replace("timeout: 5s", "timeout: 5"),
    );
    eventually(
        "the control plane to refuse the broken edit",
        PROPAGATION_BOUND,
        || async {
            let status = control.status().await;
            status["problems"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|p| p["error"].as_str().is_some_and(|e| e.contains("timeout")))
            })
        },
    )
    .await;
    assert_eq!(
        sent_versions(&envoy_stream(&control).await),
        good,
        "a version was sent for the broken edit"
    );
    // Then a good edit: Envoy's next accepted route update is that one.
    control.write(
        "routes.yaml",
        &routes(&HELLO_ROUTE.replace("hi\\n", "hello again\\n")),
    );
    eventually("the fix to reach Envoy", PROPAGATION_BOUND, || async {
        get(&client, port, "/hello").await == Some((200, "hello again\n".into()))
    })
    .await;
    eventually("Envoy to ACK the fix", PROPAGATION_BOUND, || async {
        all_acked(&envoy_stream(&control).await)
    })
    .await;
    assert_eq!(
        envoy.stat("http.edge.rds.edge.update_success").await,
        route_updates.map(|n| n + 1),
        "Envoy accepted one route update between the last good version and the fix"
    );
    assert_eq!(
        rejected_updates(&envoy).await,
        0,
        "Envoy rejected an update:\n{}",
        envoy.log()
    );
    // Traffic kept flowing to the endpoint the last good version named.
    assert_eq!(get(&client, port, "/").await, Some((200, "v2".into())));
}

#[tokio::test]
async fn envoy_follows_meshwork_control_over_state_of_the_world_ads() {
    envoy_follows_meshwork_control(AdsFlavor::StateOfTheWorld).await;
}

#[tokio::test]
async fn envoy_follows_meshwork_control_over_delta_ads() {
    envoy_follows_meshwork_control(AdsFlavor::Delta).await;
}
