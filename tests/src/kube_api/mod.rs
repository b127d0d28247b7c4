//! A fake Kubernetes API server for tests (never a product feature): list and watch of
//! Services, EndpointSlices and Pods across namespaces, honest to the API's shapes (the
//! objects are `k8s-openapi` types) and behaviour (resourceVersions, label selectors,
//! bookmarks, 410 Gone after compaction), with failures on demand (watch connections
//! dropped, the whole server gone). [`FakeApiServer::kubeconfig`] points the real
//! `meshwork-control --kubernetes --kubeconfig` at it.
//!
//! ```text
//! let api = FakeApiServer::start().await;
//! api.apply(&service);                 // ADDED / MODIFIED to every watch
//! let kubeconfig = api.kubeconfig(dir);
//! api.compact_and_drop_watches();      // clients re-watch, get 410, relist
//! ```

mod server;
mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use server::Shared;
pub use store::{Collection, selector_matches};
use store::{Live, Store};

/// A running fake API server; stopped when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts on `127.0.0.1:0`, with no objects.
    pub async fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let address = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            requests: Mutex::default(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        FakeApiServer {
            address,
            shared,
            server: Some(server),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Writes a kubeconfig naming this server (plain HTTP, no credentials) at
    /// `dir/kubeconfig` and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.address
        );
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    /// Creates or replaces a Service, EndpointSlice or Pod (namespace and name set);
    /// returns its resourceVersion.
    pub fn apply<K>(&self, object: &K) -> u64
    where
        K: k8s_openapi::Resource + Serialize,
    {
        let value = serde_json::to_value(object).expect("an object serializes");
        self.shared.store().apply(collection_of::<K>(), value)
    }

    /// Deletes an object; false when there was none.
    pub fn delete<K: k8s_openapi::Resource>(&self, namespace: &str, name: &str) -> bool {
        self.shared
            .store()
            .delete(collection_of::<K>(), namespace, name)
    }

    /// Sends a BOOKMARK at the current resourceVersion to the watches that asked.
    pub fn bookmark(&self) {
        let store = self.shared.store();
        let _ = store.live.send(Live::Bookmark(store.resource_version));
    }

    /// Aborts every open watch connection (clients re-watch from where they were).
    pub fn drop_watches(&self) {
        let _ = self.shared.store().live.send(Live::Drop);
    }

    /// Forgets the history and aborts the watches: re-watching from any version seen
    /// so far gets 410 Gone, so clients must list again.
    pub fn compact_and_drop_watches(&self) {
        let mut store = self.shared.store();
        store.compact();
        let _ = store.live.send(Live::Drop);
    }

    /// How many `list` (or `watch`) requests `collection` got.
    pub fn requests(&self, collection: Collection, what: &str) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((c, w), _)| *c == collection && *w == what)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Stops serving: the port is closed, every connection aborted.
    pub fn stop(&mut self) {
        let _ = self.shared.store().live.send(Live::Drop);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn collection_of<K: k8s_openapi::Resource>() -> Collection {
    match (K::GROUP, K::KIND) {
        ("", "Service") => Collection::Services,
        ("discovery.k8s.io", "EndpointSlice") => Collection::EndpointSlices,
        ("", "Pod") => Collection::Pods,
        (group, kind) => panic!("the fake API server does not serve {group}/{kind}"),
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(server::handle(shared, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}
