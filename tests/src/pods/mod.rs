//! Two "pods" for the sidecar traffic tests: network namespaces A and B on one veth link
//! (IPv4 and IPv6), each with a tokio runtime living inside it, so the test's own async
//! servers and clients run in a pod unchanged, next to real `meshwork` sidecars.
//!
//! A socket belongs to the network namespace of the thread that created it, for its
//! whole life. Each [`Pod`] owns one thread that entered the namespace (`setns`) and
//! drives a current-thread runtime there: whatever runs on it — an upstream's listener, an
//! HTTP client's connections, a TLS handshake — lives in that pod. The test itself stays
//! in the root namespace and awaits the pod's tasks across runtimes.
//!
//! Requirements as in [`crate::netns`]: root, iproute2 and nftables; skipped only when
//! `MESHWORK_SKIP_NETNS=1`.

mod apps;
mod meshed;
mod sidecar;

pub use apps::{GreetingServer, TlsHelloServer, echo_round_trip, read_greeting};
pub use meshed::{Identities, MeshedPods, MeshedPodsBuilder, SPIFFE_A, SPIFFE_B};
pub use sidecar::{PROXY_UID, Sidecar, SidecarConfig};

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::binary::meshwork_bin;
use crate::netns::{Netns, PEER_V4, PEER_V6, POD_V4, POD_V6, PodLink};

/// The networks both pods live in (`mesh.networks` of their sidecars).
pub const POD_NETWORKS: [&str; 2] = ["10.200.0.0/24", "fd00:200::/64"];

/// One pod: a network namespace, its addresses, and a runtime running inside it.
///
/// Dropping it stops the runtime (every server and client task in the pod) before the
/// namespace is deleted.
#[derive(Debug)]
pub struct Pod {
    runtime: PodRuntime,
    pub ns: Netns,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

impl Pod {
    fn new(ns: Netns, v4: Ipv4Addr, v6: Ipv6Addr) -> Self {
        let runtime = PodRuntime::start(&ns.name);
        Self {
            runtime,
            ns,
            v4,
            v6,
        }
    }

    /// This pod's IPv4 address with `port`.
    pub fn addr_v4(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.v4), port)
    }

    /// This pod's IPv6 address with `port`.
    pub fn addr_v6(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(self.v6), port)
    }

    /// Runs `future` inside this pod (on its runtime) and returns its output.
    ///
    /// # Panics
    /// When the future panics (the panic is carried over to the caller).
    pub async fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.runtime.handle.spawn(future).await {
            Ok(output) => output,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => panic!("a task in pod {} was cancelled: {error}", self.ns.name),
        }
    }

    /// Starts `future` inside this pod (on its runtime) and returns at once: for a task
    /// that runs while the test goes on (an app's steady calls).
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.handle.spawn(future)
    }

    /// `meshwork init ARGS` in this pod (programs its interception rules).
    ///
    /// # Panics
    /// When it fails, with its output.
    pub fn init(&self, args: &[&str]) -> String {
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        self.ns.run_ok(&meshwork_bin().to_string_lossy(), &all)
    }
}

/// A current-thread tokio runtime on a thread that entered a network namespace.
#[derive(Debug)]
struct PodRuntime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PodRuntime {
    fn start(netns: &str) -> Self {
        let path = format!("/run/netns/{netns}");
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("pod-{netns}"))
            .spawn(move || {
                let entered = File::open(&path)
                    .map_err(|e| format!("open {path}: {e}"))
                    .and_then(|ns| {
                        setns(&ns, CloneFlags::CLONE_NEWNET)
                            .map_err(|e| format!("setns {path}: {e} (needs CAP_SYS_ADMIN)"))
                    });
                if let Err(error) = entered {
                    let _ = handle_tx.send(Err(error));
                    return;
                }
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the pod");
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Drives every task spawned on the handle until the pod is dropped.
                let _ = runtime.block_on(stopped);
            })
            .expect("spawn the pod's thread");
        let handle = match handle_rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(error)) => panic!("cannot enter network namespace {netns}: {error}"),
            Err(_) => panic!("the thread of pod {netns} died before its runtime started"),
        };
        Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for PodRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Pods A (10.200.0.1, fd00:200::1) and B (10.200.0.2, fd00:200::2) on one veth link;
/// A's default routes go via B, so any destination has a route from A.
///
/// Namespace names are unique per process and test (see [`Netns::new`]); the addresses
/// can repeat across tests because every pair lives in namespaces of its own.
#[derive(Debug)]
pub struct Pods {
    pub a: Pod,
    pub b: Pod,
}

impl Pods {
    /// # Panics
    /// When the namespaces or the link cannot be made (not root, no iproute2), saying so.
    pub fn new() -> Self {
        let PodLink { pod, peer } = PodLink::new();
        Self {
            a: Pod::new(pod, POD_V4, POD_V6),
            b: Pod::new(peer, PEER_V4, PEER_V6),
        }
    }
}

impl Default for Pods {
    fn default() -> Self {
        Self::new()
    }
}
