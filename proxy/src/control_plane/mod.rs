//! The proxy's side of the control plane: subscribe to `meshwork-control`, apply what it
//! pushes through the same path as a file reload, ACK or NACK, and keep serving the last
//! good snapshot whenever the control plane is gone.
//!
//! [`Link`] holds what was applied from the control plane; [`session`] runs one
//! discovery stream; [`spawn`] keeps one running, reconnecting with exponential backoff
//! and full jitter.

mod dump;
mod last_good;
mod link;
mod session;
pub mod tls;
mod xds;

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshwork_config::discovery::Node;
use meshwork_config::model::{Backoff, ControlPlaneProtocol};
use tokio::task::JoinHandle;

pub use last_good::LastGood;

/// Largest control-plane response accepted, by either protocol: a big mesh's first
/// response runs to megabytes (100,000 endpoints are about 10 MB; tonic's default of
/// 4 MiB is too small for it, or for istiod's CDS). A larger response is an error that
/// ends the stream.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
pub use link::{Link, Update};
pub use tls::ControlPlaneTls;

use crate::dataplane::ApplyConfig;
use crate::readiness::Readiness;

/// Reconnect backoff: first retry within 250ms, then doubling, capped at 30s.
const RECONNECT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(250),
    max: Duration::from_secs(30),
};

/// A stream that stayed up this long was healthy: the next reconnect starts the backoff
/// over.
const HEALTHY_STREAM: Duration = Duration::from_secs(30);

/// Keeps a discovery stream to the control plane open for the life of the proxy (over
/// TLS when `tls` is given), speaking `protocol`, applying what it sends to
/// `dataplane`; each response applied tells `readiness` the first snapshot is in.
pub fn spawn(
    dataplane: Arc<dyn ApplyConfig>,
    readiness: Arc<Readiness>,
    link: Arc<Link>,
    node: &meshwork_config::model::Node,
    protocol: ControlPlaneProtocol,
    tls: Option<Arc<ControlPlaneTls>>,
) -> JoinHandle<()> {
    let meshwork_node = Node {
        id: node.id.clone(),
        labels: node.labels.clone().into_iter().collect(),
    };
    let xds_node = xds::node(node);
    tokio::spawn(async move {
        let mut retry: u32 = 0;
        // What an xDS subscription learned: a new stream resumes from it.
        let mut xds_state = xds::XdsState::default();
        loop {
            let started = Instant::now();
            let result = match protocol {
                ControlPlaneProtocol::Meshwork => {
                    session::run(
                        &dataplane,
                        &readiness,
                        &link,
                        meshwork_node.clone(),
                        tls.as_ref(),
                    )
                    .await
                }
                ControlPlaneProtocol::Xds => {
                    xds::run(
                        &dataplane,
                        &readiness,
                        &link,
                        &mut xds_state,
                        &xds_node,
                        tls.as_ref(),
                    )
                    .await
                }
            };
            link.set_connected(false);
            match result {
                Ok(()) => {
                    tracing::warn!(address = %link.address, "control plane closed the stream; keeping the active config")
                }
                Err(error) => match tls::failure_reason(&error) {
                    Some(reason) => {
                        link.metrics()
                            .tls_handshake_failures_total
                            .with_label_values(&[reason])
                            .inc();
                        tracing::warn!(address = %link.address, reason, %error, "TLS with the control plane failed; keeping the active config")
                    }
                    None => {
                        tracing::warn!(address = %link.address, %error, "control plane unavailable; keeping the active config")
                    }
                },
            }
            if started.elapsed() >= HEALTHY_STREAM {
                retry = 0;
            }
            retry = retry.saturating_add(1);
            let wait = crate::policy::backoff::delay(&RECONNECT_BACKOFF, retry, &mut rand::rng());
            tracing::debug!(?wait, retry, "reconnecting to the control plane");
            tokio::time::sleep(wait).await;
        }
    })
}
