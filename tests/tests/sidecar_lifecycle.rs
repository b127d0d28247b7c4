//! The sidecar's life around its app's, with the real binaries in the order a kubelet
//! drives them: the proxy first, the app through `meshwork await` (so it starts only once
//! `/ready` is 200); on termination SIGTERM to both at once (a classic sidecar) or the
//! app first and the proxy after (a native sidecar). Under steady load both ways —
//! clients calling the app through the inbound listener, the app calling its backend
//! through the `direction: outbound` listener — no outbound call may fail while the app
//! shuts down, and inbound traffic is refused only once the drain began.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use meshwork_tests::grpc::request_channel;
use meshwork_tests::kubelet::{AppContainer, free_addr};
use meshwork_tests::{
    EchoRequest, GrpcClient, GrpcUpstream, HttpClient, Proxy, RawConn, TcpEchoUpstream, Upstream,
    WsUpstream, dedent, eventually, meshwork, ws_connect,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How often the app calls out, and how many calls its shutdown makes: about a second
/// of shutdown work, longer than the proxy's quiet period would need to notice an app
/// that stopped calling.
const APP_INTERVAL_MS: &str = "25";
const SHUTDOWN_CALLS: u32 = 40;

/// A pod: the app on `app`, the proxy's admin on `admin` and its outbound listener on
/// `outbound` (the addresses a pod spec would fix), the backend the app calls.
struct Pod {
    app: SocketAddr,
    admin: SocketAddr,
    outbound: SocketAddr,
    backend: Upstream,
}

impl Pod {
    async fn new() -> Self {
        Self {
            app: free_addr(),
            admin: free_addr(),
            outbound: free_addr(),
            backend: Upstream::http1()
                .name("backend")
                .route("/", "backend")
                .start()
                .await,
        }
    }

    /// The sidecar's config: `inbound` (default direction) in front of the app at
    /// `app_endpoint`, `outbound` (direction: outbound) to the backend.
    fn proxy_yaml(&self, app_endpoint: &str) -> String {
        dedent(&format!(
            "
            version: 1
            admin:
              address: {admin}
            listeners:
              - name: inbound
                address: 127.0.0.1:0
                protocol: http
                route_table: inbound
              - name: outbound
                address: {outbound}
                protocol: http
                direction: outbound
                route_table: outbound
            route_tables:
              inbound:
                - name: app
                  backends: [{{ cluster: app }}]
              outbound:
                - name: backend
                  backends: [{{ cluster: backend }}]
            clusters:
              - name: app
                endpoints: [{app_endpoint}]
              - name: backend
                endpoints: [{backend}]
            ",
            admin = self.admin,
            outbound = self.outbound,
            backend = self.backend.endpoint(),
        ))
    }

    /// The app container's arguments for `lifecycle-app` in `mode` (service|job).
    fn app_args(&self, mode: &str) -> Vec<String> {
        [
            mode,
            "--listen",
            &self.app.to_string(),
            "--call",
            &format!("http://{}/", self.outbound),
            "--admin",
            &self.admin.to_string(),
            "--interval-ms",
            APP_INTERVAL_MS,
            "--shutdown-calls",
            &SHUTDOWN_CALLS.to_string(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Kubelet order: the app container is created first here (its entrypoint waits in
    /// `meshwork await`), then the proxy starts; the app runs once `/ready` is 200.
    async fn start(&self, mode: &str, quiet_period: &str) -> (Proxy, AppContainer) {
        let app = AppContainer::start(self.admin, &self.app_args(mode));
        let proxy = Proxy::with_config(self.proxy_yaml(&self.app.to_string()))
            .drain_timeout("20s")
            .arg("--app-quiet-period")
            .arg(quiet_period)
            .start()
            .await;
        app.wait_line("listening ", Duration::from_secs(10)).await;
        assert!(
            app.stderr().contains("is ready"),
            "meshwork await says it saw /ready: {}",
            app.stderr()
        );
        (proxy, app)
    }
}

/// When a call ended, and how.
type CallResults = Arc<Mutex<Vec<(Instant, Result<(), String>)>>>;

/// Clients calling the app through the inbound listener, one new connection per call
/// every 20ms, each result recorded with when it ended.
struct InboundLoad {
    results: CallResults,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl InboundLoad {
    fn start(url: String) -> Self {
        let results = CallResults::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (results, stop) = (results.clone(), stop.clone());
            async move {
                let client = HttpClient::h1_unpooled();
                // Bounded: 20ms apart, at most ~100s of load.
                for _ in 0..5000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let result = match client
                        .request(Method::GET, &url)
                        .timeout(Duration::from_secs(5))
                        .try_send()
                        .await
                    {
                        Ok(reply) if reply.status == StatusCode::OK && reply.text() == "app" => {
                            Ok(())
                        }
                        Ok(reply) => Err(format!("{} {}", reply.status, reply.text())),
                        Err(error) => Err(error),
                    };
                    results.lock().unwrap().push((Instant::now(), result));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self {
            results,
            stop,
            task,
        }
    }

    fn succeeded(&self) -> usize {
        self.results
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.is_ok())
            .count()
    }

    /// When the first failure ended, if one did.
    fn first_failure(&self) -> Option<(Instant, String)> {
        self.results
            .lock()
            .unwrap()
            .iter()
            .find_map(|(at, r)| r.as_ref().err().map(|e| (*at, e.clone())))
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// The proxy's log once it wrote its last line (`stopped`): the process may exit before
/// the test has read everything from the pipe.
async fn exit_log(proxy: &Proxy) -> String {
    eventually("the proxy's last log line", Duration::from_secs(5), || {
        std::future::ready(proxy.stderr_so_far().contains("INFO stopped"))
    })
    .await;
    proxy.stderr_so_far()
}

/// Waits for the app to exit 0 after making every call of its shutdown, none failed;
/// returns when it exited.
async fn app_shut_down_cleanly(app: &mut AppContainer) -> Instant {
    let (status, exited) = app.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "the app: {status}");
    let summary = app.summary().await;
    assert_eq!(
        (summary.failed, summary.ok_after_sigterm),
        (0, SHUTDOWN_CALLS),
        "every call of the app's shutdown went through: {summary:?}\n{}",
        app.stderr()
    );
    exited
}

/// Waits until both directions carry traffic.
async fn wait_for_load(pod: &Pod, inbound: &InboundLoad) {
    eventually(
        "the app's calls and the clients' calls to flow",
        Duration::from_secs(10),
        || std::future::ready(pod.backend.requests() >= 5 && inbound.succeeded() >= 5),
    )
    .await;
}

#[tokio::test]
async fn classic_sidecar_sigterm_to_both_keeps_the_apps_calls_working_until_it_is_gone() {
    let pod = Pod::new().await;
    let (mut proxy, mut app) = pod.start("service", "1s").await;
    let inbound = InboundLoad::start(proxy.url("inbound", "/"));
    wait_for_load(&pod, &inbound).await;

    let signalled = Instant::now();
    proxy.sigterm();
    app.sigterm();

    // Inbound stops first: refused while the app is still shutting down.
    eventually(
        "an inbound call to be refused",
        Duration::from_secs(5),
        || std::future::ready(inbound.first_failure().is_some()),
    )
    .await;
    let (refused_at, refusal) = inbound.first_failure().expect("a refusal");
    assert!(
        refused_at >= signalled,
        "an inbound call failed before the drain began: {refusal}"
    );
    let backend_at_refusal = pod.backend.requests();

    let app_exited = app_shut_down_cleanly(&mut app).await;
    assert!(
        refused_at < app_exited && pod.backend.requests() > backend_at_refusal,
        "the outbound listener served the app after inbound stopped"
    );

    let status = proxy.wait_exit(Duration::from_secs(15)).await;
    let proxy_exited = Instant::now();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(proxy_exited >= app_exited, "the proxy outlived the app");
    let log = exit_log(&proxy).await;
    assert!(log.contains("reason=AppQuiet"), "{log}");
    assert!(!log.contains("drain deadline passed"), "{log}");
    inbound.stop().await;
}

#[tokio::test]
async fn native_sidecar_order_app_first_then_proxy_drops_no_call_and_exits_promptly() {
    let pod = Pod::new().await;
    let (mut proxy, mut app) = pod.start("service", "1s").await;
    let inbound = InboundLoad::start(proxy.url("inbound", "/"));
    wait_for_load(&pod, &inbound).await;
    // The pod left its Service's endpoints: no more inbound calls.
    inbound.stop().await;

    app.sigterm();
    app_shut_down_cleanly(&mut app).await;

    // The kubelet stops the sidecar once the app is gone.
    let signalled = Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "an app already gone holds nothing up: {:?} (quiet period 1s, deadline 20s)",
        signalled.elapsed()
    );
    let log = exit_log(&proxy).await;
    assert!(log.contains("reason=AppQuiet"), "{log}");
}

#[tokio::test]
async fn a_job_that_calls_shutdown_as_its_last_step_makes_the_proxy_exit_promptly() {
    let pod = Pod::new().await;
    // A quiet period far longer than the test may wait: only /shutdown can end it.
    let (mut proxy, mut app) = pod.start("job", "60s").await;
    let (app_status, _) = app.wait_exit(Duration::from_secs(15)).await;
    assert!(app_status.success(), "the job: {app_status}");
    assert_eq!(
        app.wait_line("shutdown ", Duration::from_secs(1)).await,
        "shutdown 200"
    );
    let summary = app.summary().await;
    assert_eq!(
        (summary.ok, summary.failed),
        (SHUTDOWN_CALLS, 0),
        "{summary:?}"
    );
    let status = proxy.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    let log = exit_log(&proxy).await;
    assert!(log.contains("reason=AppShutdown"), "{log}");
}

/// One WebSocket round trip, or why it failed.
async fn try_round_trip(ws: &mut meshwork_tests::ws::WsStream, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Err(_) => return Err("no reply within 2s".into()),
            Ok(None) => return Err("closed".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(Message::Text(reply)))) if reply.as_str() == text => return Ok(()),
            Ok(Some(Ok(Message::Close(_)))) => return Err("closed by a Close frame".into()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn a_websocket_open_at_sigterm_lasts_until_the_deadline_and_is_then_closed() {
    let pod = Pod::new().await;
    let ws_app = WsUpstream::start().await;
    let mut proxy = Proxy::with_config(pod.proxy_yaml(&ws_app.endpoint()))
        .drain_timeout("3s")
        .start()
        .await;
    let mut ws = ws_connect(proxy.listener_addr("inbound"), "/chat").await;
    try_round_trip(&mut ws, "before")
        .await
        .expect("a round trip");

    let signalled = Instant::now();
    proxy.sigterm();
    // Round trips every 100ms until the tunnel is closed (bounded: 100 of them).
    let mut last_ok = None;
    let mut closed = None;
    for i in 0..100 {
        match try_round_trip(&mut ws, &format!("m{i}")).await {
            Ok(()) => last_ok = Some(signalled.elapsed()),
            Err(why) => {
                closed = Some((signalled.elapsed(), why));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_ok = last_ok.expect("the WebSocket worked after SIGTERM");
    let (closed_at, why) = closed.expect("the WebSocket was closed");
    assert!(
        last_ok >= Duration::from_millis(2500),
        "the tunnel was cut {last_ok:?} after SIGTERM, before the 3s deadline ({why})"
    );
    assert!(
        closed_at <= Duration::from_secs(6),
        "closed {closed_at:?} after SIGTERM"
    );
    let status = proxy.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    let log = exit_log(&proxy).await;
    assert!(
        log.contains("drain deadline passed") && log.contains("open=1"),
        "the deadline counted the tunnel: {log}"
    );
}

#[tokio::test]
async fn post_drain_is_a_prestop_hook_and_get_cannot_trigger_it() {
    let pod = Pod::new().await;
    let app = Upstream::http1()
        .name("app")
        .route("/", "app")
        .start()
        .await;
    let mut proxy = Proxy::with_config(pod.proxy_yaml(&app.endpoint()))
        .drain_timeout("20s")
        .arg("--app-quiet-period")
        .arg("60s")
        .start()
        .await;
    let admin = HttpClient::h1_unpooled();
    for method in [Method::GET, Method::HEAD, Method::PUT] {
        let reply = admin
            .request(method.clone(), &proxy.admin_url("/drain"))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    let browser = admin
        .request(Method::POST, &proxy.admin_url("/shutdown"))
        .header("origin", "http://evil.example")
        .send()
        .await;
    assert_eq!(browser.status, StatusCode::FORBIDDEN);
    assert_eq!(proxy.admin_get("/ready").await.status, StatusCode::OK);

    let reply = admin
        .request(Method::POST, &proxy.admin_url("/drain"))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "draining\n")
    );
    let ready = proxy.admin_get("/ready").await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n")
    );
    eventually(
        "the inbound listener to refuse",
        Duration::from_secs(5),
        || async {
            HttpClient::h1_unpooled()
                .request(Method::GET, &proxy.url("inbound", "/"))
                .timeout(Duration::from_secs(1))
                .try_send()
                .await
                .is_err()
        },
    )
    .await;
    // The app's calls, new connections included, still go out.
    for _ in 0..3 {
        let reply = HttpClient::h1_unpooled()
            .get(&format!("http://{}/", pod.outbound))
            .await;
        assert_eq!(reply.text(), "backend");
    }
    // The app's last step: the proxy exits at once, quiet period or not.
    let reply = admin
        .request(Method::POST, &proxy.admin_url("/shutdown"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let status = proxy.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn meshwork_await_gives_up_at_its_timeout_naming_the_proxys_last_answer() {
    // Nothing listening.
    let nobody = free_addr().to_string();
    let out = meshwork(["await", "--admin", &nobody, "--timeout", "300ms"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("the proxy at {nobody} was not ready within 300ms"))
            && out.stderr.contains("cannot connect"),
        "{}",
        out.describe()
    );

    // A proxy that is up but not ready: its control plane never answers.
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
        ",
        free_addr(),
        state.path().display()
    ));
    let proxy = Proxy::with_config(yaml)
        .without_waiting_for_ready()
        .start()
        .await;
    let admin = proxy.admin_addr().to_string();
    let out = meshwork([
        "await",
        "--admin",
        &admin,
        "--timeout",
        "500ms",
        "--",
        "true",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains("503 Service Unavailable not ready: waiting for the first snapshot"),
        "{}",
        out.describe()
    );
}

#[tokio::test]
async fn meshwork_await_runs_the_command_in_its_own_place_once_ready() {
    let app = Upstream::http1().name("app").start().await;
    let pod = Pod::new().await;
    let proxy = Proxy::with_config(pod.proxy_yaml(&app.endpoint()))
        .start()
        .await;
    let admin = proxy.admin_addr().to_string();

    // exec: the command is the same process (same pid) and its exit status is the
    // container's.
    let child = tokio::process::Command::new(meshwork_tests::meshwork_bin())
        .args([
            "await",
            "--admin",
            &admin,
            "--",
            "sh",
            "-c",
            "echo $$; exit 7",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start meshwork await");
    let pid = child.id().expect("a pid");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("meshwork await exits")
        .expect("its output");
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        pid.to_string()
    );

    // Alone: a postStart hook that returns once ready.
    let out = meshwork(["await", "--admin", &admin, "--timeout", "5s"]).await;
    assert!(out.success(), "{}", out.describe());

    let out = meshwork(["await", "--admin", &admin, "--", "/nonexistent/app"]).await;
    assert_eq!(out.status.code(), Some(127), "{}", out.describe());
    assert!(
        out.stderr.contains("cannot run \"/nonexistent/app\""),
        "{}",
        out.describe()
    );
}

/// Writes `text` on `conn` and reads the echo.
async fn tcp_echo(conn: &mut tokio::net::TcpStream, text: &str) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(text.as_bytes()).await?;
    let mut buf = vec![0; text.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no echo within 5s"))??;
    assert_eq!(buf, text.as_bytes());
    Ok(())
}

#[tokio::test]
async fn a_tcp_connection_and_a_grpc_stream_open_at_sigterm_last_until_the_deadline_and_are_counted()
 {
    let echo = TcpEchoUpstream::start().await;
    let grpc_app = GrpcUpstream::start().await;
    let outbound = free_addr();
    let yaml = dedent(&format!(
        "
        version: 1
        admin:
          address: 127.0.0.1:0
        listeners:
          - name: grpc
            address: 127.0.0.1:0
            protocol: http
            route_table: grpc
          - name: raw
            address: 127.0.0.1:0
            protocol: tcp
            cluster: echo
          - name: outbound
            address: {outbound}
            protocol: http
            direction: outbound
            route_table: grpc
        route_tables:
          grpc:
            - name: all
              backends: [{{ cluster: grpc }}]
        clusters:
          - name: grpc
            endpoints: [{}]
            protocol: http2
          - name: echo
            endpoints: [{}]
        ",
        grpc_app.endpoint(),
        echo.endpoint(),
    ));
    let mut proxy = Proxy::with_config(yaml).drain_timeout("2s").start().await;
    let raw = proxy.listener_addr("raw");
    let mut conn = tokio::net::TcpStream::connect(raw).await.expect("connect");
    tcp_echo(&mut conn, "before").await.expect("an echo");
    let mut grpc = GrpcClient::connect(proxy.listener_addr("grpc")).await;
    let (tx, requests) = request_channel();
    tx.send(EchoRequest::new("before")).await.unwrap();
    let mut replies = grpc.bidi(requests).await.expect("the call").into_inner();
    let first = replies.message().await.expect("no error").expect("a reply");
    assert_eq!(first.message, "before");

    let signalled = Instant::now();
    proxy.sigterm();
    eventually(
        "the tcp listener to refuse",
        Duration::from_secs(5),
        || async { tokio::net::TcpStream::connect(raw).await.is_err() },
    )
    .await;
    // Both still carry traffic while the drain waits for them.
    tcp_echo(&mut conn, "during")
        .await
        .expect("the tcp connection lives");
    tx.send(EchoRequest::new("during")).await.unwrap();
    let reply = replies.message().await.expect("no error").expect("a reply");
    assert_eq!(reply.message, "during");

    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the proxy left before the deadline: {:?}",
        signalled.elapsed()
    );
    let log = exit_log(&proxy).await;
    assert!(
        log.contains("drain deadline passed") && log.contains("open=2"),
        "both were counted at the deadline: {log}"
    );
    // Closed with the process.
    assert!(tcp_echo(&mut conn, "after").await.is_err());
}

#[tokio::test]
async fn an_inbound_http1_request_in_flight_when_the_drain_begins_is_answered_with_connection_close()
 {
    let pod = Pod::new().await;
    let app = Upstream::http1()
        .name("app")
        .slow("/slow", Duration::from_millis(500))
        .start()
        .await;
    let proxy = Proxy::with_config(pod.proxy_yaml(&app.endpoint()))
        .start()
        .await;
    let mut conn = RawConn::connect(proxy.listener_addr("inbound")).await;
    conn.send(b"GET /slow HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .unwrap();
    eventually(
        "the request to reach the app",
        Duration::from_secs(5),
        || std::future::ready(app.requests() == 1),
    )
    .await;
    let reply = HttpClient::h1_unpooled()
        .request(Method::POST, &proxy.admin_url("/drain"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let rsp = conn.read_response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.header("connection"), Some("close"));
    assert!(conn.wait_closed(Duration::from_secs(2)).await.is_some());
}
