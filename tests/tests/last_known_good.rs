//! The last known good snapshot with meshwork's own protocol: a proxy fed by
//! `meshwork-control`, restarted while the control plane is down, serves the snapshot it
//! saved (stale on `/ready`, `/config` and `/config_dump`) until the control plane is
//! back, which replaces it. (`control_plane.protocol: xds` is covered in xds_client.rs.)

use std::time::Duration;

use meshwork_tests::control::{EDGE_TO_API, api_cluster as clusters};
use meshwork_tests::{ControlPlane, HttpClient, Proxy, Upstream, dedent, eventually};

const PROPAGATION_BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_proxy_restarted_while_meshwork_control_is_down_serves_its_saved_snapshot() {
    let v1 = Upstream::http1().name("v1").route("/", "v1").start().await;
    let v2 = Upstream::http1().name("v2").route("/", "v2").start().await;
    let mut control = ControlPlane::start().await;
    control.write("clusters.yaml", &clusters(&v1.endpoint()));
    control.write("routes.yaml", EDGE_TO_API);
    eventually(
        "the control plane to serve the fragments",
        PROPAGATION_BOUND,
        || async { control.status().await["resources"]["listener"] == 1 },
    )
    .await;
    let state = tempfile::tempdir().expect("state dir");
    let yaml = dedent(&format!(
        "
        version: 1
        node:
          id: last-known-good
        admin:
          address: 127.0.0.1:0
        control_plane:
          address: {}
          state_dir: {}
        ",
        control.url(),
        state.path().display()
    ));
    let client = HttpClient::h1();
    let mut proxy = Proxy::with_config(yaml.clone()).start().await;
    assert_eq!(client.get(&proxy.url("edge", "/")).await.text(), "v1");
    proxy.sigterm();
    proxy.wait_exit(PROPAGATION_BOUND).await;

    control.kill().await;
    let restarted = Proxy::with_config(yaml).start().await;
    let ready = restarted.admin_get_ok("/ready").await.text();
    assert!(ready.starts_with("ready (stale: "), "{ready}");
    assert_eq!(client.get(&restarted.url("edge", "/")).await.text(), "v1");
    let dump: serde_json::Value =
        serde_json::from_slice(&restarted.admin_get_ok("/config_dump").await.body).expect("JSON");
    let resources = dump["resources"].as_array().expect("resources");
    assert!(!resources.is_empty(), "{dump:#}");
    assert!(resources.iter().all(|r| r["status"] == "stale"), "{dump:#}");
    assert_eq!(
        restarted.config_document().await["control_plane"]["stale"],
        true
    );

    // Edited while down; the control plane's answer replaces the saved snapshot.
    control.write("clusters.yaml", &clusters(&v2.endpoint()));
    control.restart().await;
    eventually(
        "the control plane's new snapshot to replace the saved one",
        PROPAGATION_BOUND,
        || async { client.get(&restarted.url("edge", "/")).await.text() == "v2" },
    )
    .await;
    assert_eq!(restarted.admin_get_ok("/ready").await.text(), "ready\n");
    assert_eq!(
        restarted.config_document().await["control_plane"]["stale"],
        false
    );
}

#[tokio::test]
async fn a_state_dir_that_cannot_be_written_is_one_warning_not_one_per_snapshot() {
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
    // Under a regular file no directory can be made, root or not.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let blocker = scratch.path().join("a-file");
    std::fs::write(&blocker, "").expect("write the blocking file");
    let yaml = dedent(&format!(
        "
        version: 1
        node:
          id: unwritable-state
        admin:
          address: 127.0.0.1:0
        control_plane:
          address: {}
          state_dir: {}
        ",
        control.url(),
        blocker.join("state").display()
    ));
    let client = HttpClient::h1();
    let proxy = Proxy::with_config(yaml)
        .env("RUST_LOG", "info,meshwork_proxy::control_plane::link=debug")
        .start()
        .await;
    assert_eq!(client.get(&proxy.url("edge", "/")).await.text(), "v1");

    control.write("clusters.yaml", &clusters(&v2.endpoint()));
    // The second failed save is logged at debug; wait for it, then count the warnings.
    eventually(
        "the second snapshot's save to fail",
        PROPAGATION_BOUND,
        || async {
            proxy
                .stderr_so_far()
                .matches("cannot save the last good snapshot")
                .count()
                >= 2
        },
    )
    .await;
    assert_eq!(client.get(&proxy.url("edge", "/")).await.text(), "v2");
    let log = proxy.stderr_so_far();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("cannot save the last good snapshot"))
        .count();
    assert_eq!(warnings, 1, "{log}");
}
