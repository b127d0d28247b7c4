//! The control plane end to end: one `meshwork-control` and two proxies fed by it.
//! Edits reroute both, broken files change nothing and show in `/status`, a snapshot a
//! proxy cannot apply is NACKed (and the rest applied), and the proxies keep serving
//! through a control plane outage and resync when it comes back.

use std::time::{Duration, Instant};

use meshwork_tests::control::EDGE_TO_API;
use meshwork_tests::{ControlPlane, HttpClient, Proxy, Scrape, Upstream, dedent, eventually};

/// How long a change may take to reach the proxies before the test gives up (the
/// observed time is printed; it is normally well under a second).
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);

fn clusters(endpoint: &str) -> String {
    meshwork_tests::control::api_cluster(endpoint)
}

fn proxy_config(control: &ControlPlane, id: &str) -> String {
    dedent(&format!(
        "
        version: 1
        node:
          id: {id}
          labels: {{ proxy: {id} }}
        admin:
          address: 127.0.0.1:0
        control_plane:
          address: {}
        ",
        control.url()
    ))
}

/// A control plane serving `api -> v1`, two proxies fed by it, and both upstreams.
struct Mesh {
    control: ControlPlane,
    proxies: Vec<Proxy>,
    v1: Upstream,
    v2: Upstream,
    client: HttpClient,
}

impl Mesh {
    async fn start() -> Mesh {
        let v1 = Upstream::http1().name("v1").route("/", "v1").start().await;
        let v2 = Upstream::http1().name("v2").route("/", "v2").start().await;
        let control = ControlPlane::start().await;
        control.write("clusters.yaml", &clusters(&v1.endpoint()));
        control.write("routes.yaml", EDGE_TO_API);
        eventually(
            "the control plane to serve the fragments",
            PROPAGATION_BOUND,
            || async { control.status().await["resources"]["listener"] == 1 },
        )
        .await;
        let mut proxies = Vec::new();
        for id in ["a", "b"] {
            // `start` waits for /ready, which waits for the first snapshot.
            proxies.push(Proxy::with_config(proxy_config(&control, id)).start().await);
        }
        Mesh {
            control,
            proxies,
            v1,
            v2,
            client: HttpClient::h1(),
        }
    }

    /// What each proxy's `edge` listener answers for `/`.
    async fn answers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for proxy in &self.proxies {
            let reply = self.client.get(&proxy.url("edge", "/")).await;
            out.push(format!("{} {}", reply.status.as_u16(), reply.text()));
        }
        out
    }

    async fn all_answer(&self, body: &str) -> bool {
        self.answers()
            .await
            .iter()
            .all(|a| *a == format!("200 {body}"))
    }
}

#[tokio::test]
async fn a_file_edit_reroutes_both_proxies() {
    let mesh = Mesh::start().await;
    assert_eq!(mesh.answers().await, vec!["200 v1", "200 v1"]);

    let edited = Instant::now();
    mesh.control
        .write("clusters.yaml", &clusters(&mesh.v2.endpoint()));
    eventually("both proxies to route to v2", PROPAGATION_BOUND, || {
        mesh.all_answer("v2")
    })
    .await;
    eprintln!("the edit reached both proxies in {:?}", edited.elapsed());

    let status = mesh.control.status().await;
    let version = status["version"].as_str().expect("a version").to_string();
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{status:#}");
    for proxy in &mesh.proxies {
        let config = proxy.config_document().await;
        let link = &config["control_plane"];
        assert_eq!(link["connected"], true, "{config:#}");
        assert_eq!(
            config["source"],
            format!("control_plane:{}", mesh.control.url())
        );
        let applied = link["version"].as_str().expect("a version");
        let scrape = proxy.scrape().await;
        assert_eq!(
            scrape.get_or_zero("meshwork_control_plane_connected", &[]),
            1.0
        );
        assert_eq!(
            scrape.get_or_zero(
                "meshwork_control_plane_info",
                &[("address", &mesh.control.url()), ("version", applied)]
            ),
            1.0
        );
    }
    eventually(
        "both proxies to ACK the new version",
        PROPAGATION_BOUND,
        || async {
            let status = mesh.control.status().await;
            status["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().all(|n| n["acked_version"] == version.as_str()))
        },
    )
    .await;
    let metrics = Scrape::parse(&mesh.control.metrics().await);
    assert_eq!(
        metrics.get_or_zero("meshwork_control_connected_proxies", &[]),
        2.0
    );
    assert!(metrics.get_or_zero("meshwork_control_acks_total", &[]) >= 4.0);
    assert!(metrics.get_or_zero("meshwork_control_push_latency_seconds_count", &[]) >= 4.0);
    drop(mesh.v1);
}

#[tokio::test]
async fn a_broken_file_leaves_traffic_untouched_and_shows_in_status() {
    let mesh = Mesh::start().await;
    let before = mesh.control.status().await["version"].clone();

    mesh.control.write("routes.yaml", "listeners: [\n");
    eventually(
        "/status to report the broken file",
        PROPAGATION_BOUND,
        || async {
            let status = mesh.control.status().await;
            status["problems"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["file"] == "routes.yaml"))
        },
    )
    .await;
    let status = mesh.control.status().await;
    assert_eq!(
        status["version"], before,
        "the last good version is still served"
    );
    assert_eq!(status["clean"], false);
    let error = status["problems"][0]["error"].as_str().expect("an error");
    assert!(
        error.starts_with("routes.yaml:2:1: invalid YAML"),
        "{error}"
    );
    assert_eq!(mesh.answers().await, vec!["200 v1", "200 v1"]);
    let metrics = Scrape::parse(&mesh.control.metrics().await);
    assert_eq!(
        metrics.get_or_zero("meshwork_control_config_problems", &[]),
        1.0
    );

    // An invalid resource is refused alone, with its file and line; a valid edit in the
    // same reading still goes out.
    mesh.control.write("routes.yaml", EDGE_TO_API);
    mesh.control.write(
        "clusters.yaml",
        &format!(
            "{}  - name: slow\n    endpoints: [{}]\n    connect_timeout: 5\n",
            clusters(&mesh.v2.endpoint()),
            mesh.v1.endpoint()
        ),
    );
    eventually("both proxies to route to v2", PROPAGATION_BOUND, || {
        mesh.all_answer("v2")
    })
    .await;
    let status = mesh.control.status().await;
    let problems = status["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{status:#}");
    assert_eq!(problems[0]["resource"], r#"cluster "slow""#);
    assert_eq!(
        problems[0]["error"],
        r#"clusters.yaml:7:22: clusters[1].connect_timeout: "5" is not a duration (try "5s")"#
    );
}

#[tokio::test]
async fn a_listener_port_in_use_is_nacked_and_the_rest_is_applied() {
    let mesh = Mesh::start().await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("address").port();
    mesh.control.write(
        "busy.yaml",
        &dedent(&format!(
            "
            listeners:
              - name: busy
                address: 127.0.0.1:{port}
                route_table: edge
            "
        )),
    );
    mesh.control
        .write("clusters.yaml", &clusters(&mesh.v2.endpoint()));
    eventually(
        "both proxies to NACK the busy listener",
        PROPAGATION_BOUND,
        || async {
            let status = mesh.control.status().await;
            status["nodes"].as_array().is_some_and(|nodes| {
                nodes.len() == 2
                    && nodes
                        .iter()
                        .all(|n| n["last_nack"]["rejected"][0]["name"] == "busy")
            })
        },
    )
    .await;
    let status = mesh.control.status().await;
    let rejected = &status["nodes"][0]["last_nack"]["rejected"][0];
    assert_eq!(rejected["kind"], "listener");
    assert_eq!(rejected["source"], "busy.yaml:2:5");
    let error = rejected["error"].as_str().expect("an error");
    assert!(
        error.contains(&format!("cannot bind 127.0.0.1:{port}")),
        "{error}"
    );
    // The cluster change in the same push was applied.
    assert_eq!(mesh.answers().await, vec!["200 v2", "200 v2"]);
    for proxy in &mesh.proxies {
        let config = proxy.config_document().await;
        assert_eq!(
            config["control_plane"]["last_rejected"][0]["resource"], r#"listener "busy""#,
            "{config:#}"
        );
        let scrape = proxy.scrape().await;
        assert!(
            scrape.get_or_zero(
                "meshwork_control_plane_updates_total",
                &[("result", "nack")]
            ) >= 1.0
        );
    }
    let metrics = Scrape::parse(&mesh.control.metrics().await);
    assert!(metrics.get_or_zero("meshwork_control_nacks_total", &[]) >= 2.0);
}

#[tokio::test]
async fn killing_the_control_plane_changes_nothing_and_restarting_resyncs() {
    let mut mesh = Mesh::start().await;
    mesh.control.kill().await;
    for proxy in &mesh.proxies {
        eventually(
            "the proxy to see the control plane gone",
            PROPAGATION_BOUND,
            || async { proxy.config_document().await["control_plane"]["connected"] == false },
        )
        .await;
    }
    for _ in 0..5 {
        assert_eq!(mesh.answers().await, vec!["200 v1", "200 v1"]);
    }
    for proxy in &mesh.proxies {
        assert_eq!(proxy.admin_get("/ready").await.status, http::StatusCode::OK);
    }

    // Edited while it is down; seen when it is back.
    mesh.control
        .write("clusters.yaml", &clusters(&mesh.v2.endpoint()));
    mesh.control.restart().await;
    eventually("both proxies to resync to v2", PROPAGATION_BOUND, || {
        mesh.all_answer("v2")
    })
    .await;
    eventually(
        "both proxies to reconnect and ACK",
        PROPAGATION_BOUND,
        || async {
            let status = mesh.control.status().await;
            let version = status["version"].clone();
            status["nodes"]
                .as_array()
                .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["acked_version"] == version))
        },
    )
    .await;
}

#[tokio::test]
async fn node_selectors_give_each_proxy_its_own_routes() {
    let v1 = Upstream::http1().name("v1").route("/", "v1").start().await;
    let v2 = Upstream::http1().name("v2").route("/", "v2").start().await;
    let control = ControlPlane::start().await;
    control.write(
        "clusters.yaml",
        &format!(
            "{}  - name: api2\n    endpoints: [{}]\n",
            clusters(&v1.endpoint()),
            v2.endpoint()
        ),
    );
    // Names are unique across the directory, so each proxy's table has its own name.
    let for_proxy = |id: &str, cluster: &str| {
        dedent(&format!(
            "
            node_selector: {{ proxy: {id} }}
            listeners:
              - name: edge
                address: 127.0.0.1:0
                route_table: edge-{id}
            route_tables:
              edge-{id}:
                - name: all
                  backends: [{{ cluster: {cluster} }}]
            "
        ))
    };
    control.write("a.yaml", &for_proxy("a", "api"));
    control.write("b.yaml", &for_proxy("b", "api2"));
    eventually(
        "/status to show the duplicate listener",
        PROPAGATION_BOUND,
        || async { control.status().await["problems"][0]["resource"] == r#"listener "edge""# },
    )
    .await;
    // The listener, too, needs one name per selector.
    control.write(
        "b.yaml",
        &for_proxy("b", "api2").replace("name: edge", "name: edge-b"),
    );
    eventually("a clean directory", PROPAGATION_BOUND, || async {
        control.status().await["clean"] == true
    })
    .await;
    let a = Proxy::with_config(proxy_config(&control, "a"))
        .start()
        .await;
    let b = Proxy::with_config(proxy_config(&control, "b"))
        .start()
        .await;
    let client = HttpClient::h1();
    assert_eq!(client.get(&a.url("edge", "/")).await.text(), "v1");
    assert_eq!(client.get(&b.url("edge-b", "/")).await.text(), "v2");
    let listeners: Vec<&str> = a.listeners().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(listeners, vec!["edge"]);
}

#[tokio::test]
async fn a_proxy_with_its_own_listeners_serves_them_but_is_ready_only_after_the_first_snapshot() {
    let app = Upstream::http1()
        .name("app")
        .route("/", "local")
        .start()
        .await;
    // Its own state dir: no snapshot saved by another test is read back.
    let state = tempfile::tempdir().expect("state dir");
    let yaml = dedent(&format!(
        "
        version: 1
        admin:
          address: 127.0.0.1:0
        control_plane:
          address: http://{}
          state_dir: {}
        listeners:
          - name: edge
            address: 127.0.0.1:0
            route_table: edge
        route_tables:
          edge:
            - name: all
              backends: [{{ cluster: app }}]
        clusters:
          - name: app
            endpoints: [{}]
        ",
        meshwork_tests::dead_endpoint(),
        state.path().display(),
        app.endpoint()
    ));
    let proxy = Proxy::with_config(yaml)
        .without_waiting_for_ready()
        .start()
        .await;
    // The file's listeners serve at once (a bootstrap)...
    let reply = HttpClient::h1().get(&proxy.url("edge", "/")).await;
    assert_eq!(reply.text(), "local");
    let config = proxy.config_document().await;
    assert_eq!(config["control_plane"]["connected"], false);
    assert_eq!(config["control_plane"]["synced"], false);
    // ...but an app waiting for /ready must not start on routes the control plane has
    // not sent yet.
    let ready = proxy.admin_get("/ready").await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the first snapshot from the control plane\n"
        )
    );
}

#[tokio::test]
async fn a_proxy_without_listeners_waits_for_the_first_snapshot_to_be_ready() {
    let dead = meshwork_tests::dead_endpoint();
    // Its own state dir: no snapshot saved by another test is read back.
    let state = tempfile::tempdir().expect("state dir");
    let yaml = dedent(&format!(
        "
        version: 1
        admin:
          address: 127.0.0.1:0
        control_plane:
          address: http://{dead}
          state_dir: {}
        ",
        state.path().display()
    ));
    let admin_file = tempfile::NamedTempFile::new().expect("temp file");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("meshwork.yaml");
    std::fs::write(&config, yaml).expect("write");
    let mut child = tokio::process::Command::new(meshwork_tests::meshwork_bin())
        .arg("run")
        .arg("-c")
        .arg(&config)
        .arg("--admin-address-file")
        .arg(admin_file.path())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start meshwork");
    let mut admin = String::new();
    eventually("the admin address", PROPAGATION_BOUND, || {
        admin = std::fs::read_to_string(admin_file.path()).unwrap_or_default();
        std::future::ready(!admin.trim().is_empty())
    })
    .await;
    let reply = HttpClient::h1()
        .get(&format!("http://{}/ready", admin.trim()))
        .await;
    assert_eq!(reply.status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.text(),
        "not ready: waiting for the first snapshot from the control plane\n"
    );
    let _ = child.kill().await;
}

#[tokio::test]
async fn editing_the_proxys_own_file_keeps_what_the_control_plane_sent() {
    let mesh = Mesh::start().await;
    let proxy = &mesh.proxies[0];
    let before = proxy.config_document().await["control_plane"]["version"].clone();
    let path = proxy.config_path().display().to_string();
    proxy.replace_config_atomically(&format!(
        "{}access_log:\n  format: json\n  path: {path}.access.log\n",
        proxy_config(&mesh.control, "a")
    ));
    eventually(
        "the proxy to apply its edited file",
        PROPAGATION_BOUND,
        || async { !proxy.config_document().await["config"]["access_log"].is_null() },
    )
    .await;
    let config = proxy.config_document().await;
    assert_eq!(config["control_plane"]["version"], before);
    assert_eq!(config["config"]["clusters"][0]["name"], "api", "{config:#}");
    assert_eq!(mesh.answers().await, vec!["200 v1", "200 v1"]);
    // And the control plane's next change still arrives.
    mesh.control
        .write("clusters.yaml", &clusters(&mesh.v2.endpoint()));
    eventually("both proxies to route to v2", PROPAGATION_BOUND, || {
        mesh.all_answer("v2")
    })
    .await;
    assert!(!proxy.config_document().await["config"]["access_log"].is_null());
}

#[tokio::test]
async fn check_mode_prints_every_problem_of_the_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("routes.yaml"), EDGE_TO_API).expect("write");
    let run = || {
        std::process::Command::new(meshwork_tests::meshwork_control_bin())
            .arg("--config-dir")
            .arg(dir.path())
            .arg("--check")
            .output()
            .expect("run meshwork-control --check")
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "routes.yaml:9:29: route_tables.edge[0].backends[0].cluster: no cluster named \"api\""
        ),
        "{stderr}"
    );
    std::fs::write(dir.path().join("clusters.yaml"), clusters("127.0.0.1:1")).expect("write");
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(": ok, 3 resources (version "), "{stderr}");
}

/// A first response over tonic's default 4 MiB message limit (a big mesh's endpoints)
/// is applied, not refused by the proxy's discovery client.
#[tokio::test]
async fn a_first_response_of_several_megabytes_is_applied() {
    let v1 = Upstream::http1().name("v1").route("/", "v1").start().await;
    let control = ControlPlane::start().await;
    const ZONE: &str =
        "europe-west4-a-a-zone-name-long-enough-to-make-each-endpoint-weigh-on-the-wire";
    let mut big = String::from("clusters:\n  - name: big\n    endpoints:\n");
    // About 200 bytes each on the wire: 5 MB in all.
    const ENDPOINTS: u32 = 25_000;
    for i in 0..ENDPOINTS {
        big.push_str(&format!(
            "      - address: 10.{}.{}.{}:8080\n        weight: 1\n        zone: {ZONE}\n",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    control.write("big.yaml", &big);
    control.write("clusters.yaml", &clusters(&v1.endpoint()));
    control.write("routes.yaml", EDGE_TO_API);
    eventually(
        "the control plane to serve the fragments",
        PROPAGATION_BOUND * 3,
        || async { control.status().await["resources"]["cluster"] == 2 },
    )
    .await;
    // Ready only once the first response is applied: a refused one never makes it so.
    let proxy = Proxy::with_config(proxy_config(&control, "big"))
        .start()
        .await;
    let client = HttpClient::h1();
    assert_eq!(client.get(&proxy.url("edge", "/")).await.text(), "v1");
    // The client's longer timeout: 25,000 endpoints' views take a while in a debug build.
    let clusters: serde_json::Value =
        serde_json::from_slice(&client.get(&proxy.admin_url("/clusters")).await.body)
            .expect("JSON");
    let big = clusters["clusters"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "big"))
        .unwrap_or_else(|| panic!("no cluster big in {clusters:.200}"));
    assert_eq!(
        big["endpoints"].as_array().map(Vec::len),
        Some(ENDPOINTS as usize)
    );
}
