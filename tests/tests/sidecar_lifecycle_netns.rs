//! The sidecar's drain with interception on, in network namespaces: pod A's app calls pod
//! B's app by B's address (redirected by `meshwork init` to A's outbound sidecar, meshed
//! to B's), and B reaches A's app through A's inbound interception. On SIGTERM to A's
//! sidecar, every call A's app makes while it shuts down still goes out, and A's inbound
//! side refuses new connections from the moment the drain began.
//!
//! Needs root (CI runs as root); `MESHWORK_SKIP_NETNS=1` skips, nothing else does.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use meshwork_tests::netns::skipped;
use meshwork_tests::pods::{MeshedPods, Pod};
use meshwork_tests::{HttpClient, Upstream, eventually};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// B's app port, called by A's app through both sidecars.
const B_APP_PORT: u16 = 8080;
/// A's app port, called from B straight to A's address (B's init skips it outbound), so
/// only A's inbound interception stands between the client and A's app.
const A_APP_PORT: u16 = 9090;
/// The calls A's app makes after SIGTERM, 25ms apart: its shutdown work.
const SHUTDOWN_CALLS: usize = 40;

/// `[::]:port`: an app listening on every address of its pod, both families.
fn any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// An HTTP/1.1 echo upstream named `name` in `pod` on `[::]:port`.
async fn http1_app(pod: &Pod, name: &str, port: u16) -> Upstream {
    pod.run(Upstream::http1().name(name).bind(any(port)).start())
        .await
}

/// When a call started, and how it ended.
type CallResults = Arc<Mutex<Vec<(Instant, Result<(), String>)>>>;

/// A's app: one new connection per call to `url` every 25ms, from inside pod A, until
/// stopped (bounded: at most 4000 calls).
struct AppCalls {
    begun: Instant,
    results: CallResults,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl AppCalls {
    fn start(m: &MeshedPods, url: String) -> Self {
        let results = CallResults::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (results_in_pod, stop_in_pod) = (results.clone(), stop.clone());
        let task = m.pods.a.spawn(async move {
            let client = HttpClient::h1_unpooled();
            for _ in 0..4000 {
                if stop_in_pod.load(Ordering::SeqCst) {
                    return;
                }
                let started = Instant::now();
                let result = match client
                    .request(Method::GET, &url)
                    .timeout(Duration::from_secs(5))
                    .try_send()
                    .await
                {
                    Ok(reply) if reply.status == StatusCode::OK => {
                        let upstream = reply.echo().upstream;
                        if upstream == "b-app" {
                            Ok(())
                        } else {
                            Err(format!("answered by {upstream}"))
                        }
                    }
                    Ok(reply) => Err(format!("{} {}", reply.status, reply.text())),
                    Err(error) => Err(error),
                };
                results_in_pod.lock().unwrap().push((started, result));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        Self {
            begun: Instant::now(),
            results,
            stop,
            task,
        }
    }

    /// The results of the calls started at or after `since`.
    fn since(&self, since: Instant) -> Vec<Result<(), String>> {
        self.results
            .lock()
            .unwrap()
            .iter()
            .filter(|(started, _)| *started >= since)
            .map(|(_, result)| result.clone())
            .collect()
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the app's calls stop")
            .expect("the app's call task");
    }
}

/// A connection from pod B to A's app port: `Ok` when A's inbound side accepted it.
async fn connect_from_b(m: &MeshedPods, addr: SocketAddr) -> std::io::Result<()> {
    m.pods
        .b
        .run(async move {
            match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                .await
            {
                Ok(connected) => connected.map(drop),
                Err(_) => Err(std::io::Error::other("no answer within 1s")),
            }
        })
        .await
}

#[tokio::test]
async fn sigterm_to_an_intercepting_sidecar_refuses_inbound_and_keeps_every_outbound_call_of_the_app()
 {
    if skipped(
        "sigterm_to_an_intercepting_sidecar_refuses_inbound_and_keeps_every_outbound_call_of_the_app",
    ) {
        return;
    }
    let mut m = MeshedPods::builder()
        .b_init(&["--outbound-skip-ports", &A_APP_PORT.to_string()])
        .start()
        .await;
    let _b_app = http1_app(&m.pods.b, "b-app", B_APP_PORT).await;
    let _a_app = http1_app(&m.pods.a, "a-app", A_APP_PORT).await;

    // Before the drain, B reaches A's app through A's inbound listener.
    let a_app_url = format!("http://{}/", m.pods.a.addr_v4(A_APP_PORT));
    let inbound = m
        .pods
        .b
        .run(async move { HttpClient::h1_unpooled().get(&a_app_url).await })
        .await;
    assert_eq!(inbound.status, StatusCode::OK, "{}", inbound.text());
    assert_eq!(inbound.echo().upstream, "a-app");
    m.a_sidecar
        .scrape_when("A's inbound listener counting B's call", |s| {
            s.get_or_zero(
                "meshwork_downstream_connections_total",
                &[("listener", "inbound")],
            ) >= 1.0
        })
        .await;

    let calls = AppCalls::start(&m, format!("http://{}/", m.pods.b.addr_v4(B_APP_PORT)));
    let before = calls.begun;
    eventually(
        "A's app's calls to flow through its outbound sidecar",
        Duration::from_secs(10),
        || std::future::ready(calls.since(before).iter().filter(|r| r.is_ok()).count() >= 5),
    )
    .await;
    assert!(
        calls.since(before).iter().all(Result::is_ok),
        "{:?}",
        calls.since(before)
    );

    let signalled = Instant::now();
    m.a_sidecar.sigterm();

    // Inbound: refused (nothing listens behind the redirect any more).
    let a_app = m.pods.a.addr_v4(A_APP_PORT);
    eventually(
        "A's inbound interception to refuse B's connection",
        Duration::from_secs(5),
        || async {
            connect_from_b(&m, a_app)
                .await
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        },
    )
    .await;
    let refused = Instant::now();

    // Outbound: the app's shutdown calls, new connections each, all go out, including
    // those made after inbound was refused.
    eventually(
        "A's app to make its shutdown calls",
        Duration::from_secs(15),
        || std::future::ready(calls.since(signalled).len() >= SHUTDOWN_CALLS),
    )
    .await;
    let after_sigterm = calls.since(signalled);
    let after_refusal = calls.since(refused);
    calls.stop().await;
    let failed: Vec<_> = after_sigterm
        .iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls after SIGTERM failed: {failed:?}",
        failed.len(),
        after_sigterm.len()
    );
    assert!(
        !after_refusal.is_empty(),
        "the app called out after inbound was refused"
    );
    // And B's client is still refused while the outbound side serves.
    let still = connect_from_b(&m, a_app).await;
    assert!(
        still
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{still:?}"
    );

    // The app stopped calling: the sidecar notices and exits 0.
    let status = m.a_sidecar.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    eventually(
        "A's sidecar to log how its drain ended",
        Duration::from_secs(5),
        || std::future::ready(m.a_sidecar.log().contains("INFO stopped")),
    )
    .await;
    let log = m.a_sidecar.log();
    assert!(log.contains("reason=AppQuiet"), "{log}");
}
