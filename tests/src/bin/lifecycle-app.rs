//! A small app for the sidecar lifecycle tests, started the way a pod starts its app:
//! `meshwork await --admin ADDR -- lifecycle-app ...`.
//!
//! It serves `GET /` on `--listen` (answering `app`) and calls `--call` through the
//! proxy's outbound listener every `--interval`, with a pooled keep-alive client as
//! real apps do. In `service` mode it keeps calling until SIGTERM, then makes
//! `--shutdown-calls` more (its shutdown work: the calls a sidecar must not drop) and
//! exits. In `job` mode it makes `--shutdown-calls` calls, then `POST /shutdown` to the
//! proxy's admin server (a Job's last step), and exits.
//!
//! stdout: `listening ADDR` once serving, `sigterm` when the signal arrives, and a last
//! line `summary ok=N failed=N ok_after_sigterm=N`; every failed call is on stderr.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use meshwork_tests::HttpClient;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    mode: String,
    listen: SocketAddr,
    call: String,
    admin: SocketAddr,
    interval: Duration,
    shutdown_calls: u32,
}

fn parse() -> Result<Args, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Result<String, String> {
        let at = args
            .iter()
            .position(|a| a == name)
            .ok_or(format!("missing {name}"))?;
        args.get(at + 1)
            .cloned()
            .ok_or(format!("{name} needs a value"))
    };
    let mode = args.first().cloned().ok_or("missing mode (service|job)")?;
    if mode != "service" && mode != "job" {
        return Err(format!("unknown mode {mode:?}"));
    }
    Ok(Args {
        mode,
        listen: value("--listen")?
            .parse()
            .map_err(|e| format!("--listen: {e}"))?,
        call: value("--call")?,
        admin: value("--admin")?
            .parse()
            .map_err(|e| format!("--admin: {e}"))?,
        interval: Duration::from_millis(
            value("--interval-ms")?
                .parse()
                .map_err(|e| format!("--interval-ms: {e}"))?,
        ),
        shutdown_calls: value("--shutdown-calls")?
            .parse()
            .map_err(|e| format!("--shutdown-calls: {e}"))?,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("lifecycle-app: {error}");
            std::process::exit(2);
        }
    };
    let mut sigterm = signal(SignalKind::terminate()).expect("listen for SIGTERM");
    let listener = TcpListener::bind(args.listen).await.expect("bind --listen");
    tokio::spawn(serve(listener));
    println!("listening {}", args.listen);

    let client = HttpClient::h1();
    let mut calls = Calls::default();
    if args.mode == "job" {
        for _ in 0..args.shutdown_calls {
            calls.make(&client, &args.call, false).await;
            tokio::time::sleep(args.interval).await;
        }
        let shutdown = HttpClient::h1_unpooled()
            .request(
                http::Method::POST,
                &format!("http://{}/shutdown", args.admin),
            )
            .try_send()
            .await;
        match shutdown {
            Ok(reply) => println!("shutdown {}", reply.status.as_u16()),
            Err(error) => println!("shutdown failed: {error}"),
        }
    } else {
        loop {
            tokio::select! {
                _ = sigterm.recv() => break,
                () = tokio::time::sleep(args.interval) => calls.make(&client, &args.call, false).await,
            }
        }
        println!("sigterm");
        for _ in 0..args.shutdown_calls {
            calls.make(&client, &args.call, true).await;
            tokio::time::sleep(args.interval).await;
        }
    }
    println!(
        "summary ok={} failed={} ok_after_sigterm={}",
        calls.ok, calls.failed, calls.ok_after_sigterm
    );
}

#[derive(Default)]
struct Calls {
    ok: u32,
    failed: u32,
    ok_after_sigterm: u32,
}

impl Calls {
    async fn make(&mut self, client: &HttpClient, url: &str, after_sigterm: bool) {
        let result = client
            .request(http::Method::GET, url)
            .timeout(Duration::from_secs(5))
            .try_send()
            .await;
        match result {
            Ok(reply) if reply.status == http::StatusCode::OK => {
                self.ok += 1;
                if after_sigterm {
                    self.ok_after_sigterm += 1;
                }
            }
            Ok(reply) => {
                self.failed += 1;
                eprintln!(
                    "lifecycle-app: call answered {}: {}",
                    reply.status,
                    reply.text()
                );
            }
            Err(error) => {
                self.failed += 1;
                eprintln!("lifecycle-app: call failed: {error}");
            }
        }
    }
}

async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"app"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
