//! Active health checking: each endpoint of a cluster with a `health_check` is probed
//! every `interval` (HTTP GET expecting a status, or a TCP connect), within `timeout`.
//! `unhealthy_threshold` failures in a row take it out of rotation, `healthy_threshold`
//! successes in a row bring it back. Endpoints start healthy, so traffic flows at once
//! (the first probe runs immediately). Changes are logged once and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use meshwork_config::model::{HealthCheck, HealthCheckKind, UpstreamProtocol};
use prometheus::{IntCounter, IntGauge};

use super::Endpoint;
use super::connector::open;
use crate::metrics::Metrics;

/// One endpoint's health as the checker sees it.
#[derive(Debug)]
pub struct Health {
    healthy: AtomicBool,
    successes: AtomicU32,
    failures: AtomicU32,
    checks_ok: IntCounter,
    checks_failed: IntCounter,
    gauge: IntGauge,
}

impl Health {
    pub fn new(metrics: &Metrics, cluster: &str, endpoint: &str) -> Self {
        let h = &metrics.health;
        let gauge = h.endpoint_healthy.with_label_values(&[cluster, endpoint]);
        gauge.set(1);
        Self {
            healthy: AtomicBool::new(true),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            checks_ok: h
                .checks_total
                .with_label_values(&[cluster, endpoint, "success"]),
            checks_failed: h
                .checks_total
                .with_label_values(&[cluster, endpoint, "failure"]),
            gauge,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records a probe; returns the new state when it changed.
    fn record(&self, ok: bool, config: &HealthCheck) -> Option<bool> {
        if ok {
            self.checks_ok.inc();
            self.failures.store(0, Ordering::Relaxed);
            let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.is_healthy() && n >= config.healthy_threshold.max(1) {
                self.healthy.store(true, Ordering::Relaxed);
                self.gauge.set(1);
                return Some(true);
            }
        } else {
            self.checks_failed.inc();
            self.successes.store(0, Ordering::Relaxed);
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.is_healthy() && n >= config.unhealthy_threshold.max(1) {
                self.healthy.store(false, Ordering::Relaxed);
                self.gauge.set(0);
                return Some(false);
            }
        }
        None
    }
}

/// Probes every endpoint of a cluster until the returned task is aborted.
pub fn spawn(
    cluster: String,
    config: HealthCheck,
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    endpoints: Vec<Arc<Endpoint>>,
) -> Option<tokio::task::JoinHandle<()>> {
    // `meshwork explain` builds clusters without a runtime: nothing to probe there.
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(async move {
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let probes = endpoints.iter().map(|ep| async {
                let timeout = config.timeout.min(config.interval);
                let ok = tokio::time::timeout(timeout, probe(ep, &config.kind, protocol, connect_timeout))
                    .await
                    .unwrap_or(false);
                if let Some(healthy) = ep.health.as_ref().and_then(|h| h.record(ok, &config)) {
                    if healthy {
                        tracing::info!(cluster = %cluster, endpoint = %ep.address, "endpoint healthy again");
                    } else {
                        tracing::warn!(cluster = %cluster, endpoint = %ep.address, "endpoint unhealthy: out of rotation");
                    }
                }
            });
            futures_util::future::join_all(probes).await;
        }
    }))
}

async fn probe(
    endpoint: &Endpoint,
    kind: &HealthCheckKind,
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
) -> bool {
    // Over TLS when the cluster originates it, as its requests go.
    let Ok(stream) = open(&endpoint.address, connect_timeout, endpoint.tls.as_deref()).await else {
        return false;
    };
    let h2 = protocol == UpstreamProtocol::Http2 || stream.negotiated_h2();
    let scheme = if endpoint.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let HealthCheckKind::Http {
        path,
        expected_status,
    } = kind
    else {
        return true;
    };
    let io = TokioIo::new(stream);
    let req = http::Request::get(path.as_str())
        .header(http::header::HOST, endpoint.address.to_string())
        .header(http::header::USER_AGENT, "meshwork-health-check")
        .body(Empty::<Bytes>::new());
    let Ok(mut req) = req else { return false };
    let status = if h2 {
        let Ok((mut send, conn)) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await
        else {
            return false;
        };
        tokio::spawn(conn);
        let uri = format!("{scheme}://{}{}", endpoint.address, path);
        if let Ok(uri) = uri.parse() {
            *req.uri_mut() = uri;
        }
        send.send_request(req).await.map(|r| r.status())
    } else {
        let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(io).await else {
            return false;
        };
        tokio::spawn(conn);
        send.send_request(req).await.map(|r| r.status())
    };
    status.is_ok_and(|s| expected_status.contains(&s.as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_take_an_endpoint_out_and_bring_it_back() {
        let metrics = Metrics::new();
        let h = Health::new(&metrics, "c", "e:1");
        let config = HealthCheck {
            kind: HealthCheckKind::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        };
        assert!(h.is_healthy(), "endpoints start healthy");
        assert_eq!(h.record(false, &config), None);
        assert_eq!(h.record(false, &config), None);
        assert_eq!(
            h.record(true, &config),
            None,
            "a success resets the failure streak"
        );
        assert_eq!(h.record(false, &config), None);
        assert_eq!(h.record(false, &config), None);
        assert_eq!(h.record(false, &config), Some(false));
        assert!(!h.is_healthy());
        assert_eq!(h.record(true, &config), None);
        assert_eq!(h.record(true, &config), Some(true));
        assert!(h.is_healthy());
        assert_eq!(h.checks_failed.get(), 5);
        assert_eq!(h.checks_ok.get(), 3);
    }
}
