//! A control plane served from a temporary directory of fragments, for the unit tests
//! that drive its streams over a real socket (meshwork's and Envoy's).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ControlPlane;
use crate::catalog::Reader;
use crate::metrics::Metrics;

/// The control plane serving `mesh.yaml` of a temporary directory on `127.0.0.1:0`,
/// stopped when dropped.
pub struct ServedFragment {
    dir: tempfile::TempDir,
    reader: Reader,
    pub control: Arc<ControlPlane>,
    pub address: SocketAddr,
    stop: CancellationToken,
}

impl ServedFragment {
    pub async fn start(fragment: &str) -> ServedFragment {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("mesh.yaml"), fragment).expect("write a fragment");
        let mut reader = Reader::new(dir.path().to_path_buf());
        let catalog = reader.read(&BTreeMap::new()).expect("read the directory");
        assert!(catalog.is_clean(), "{:?}", catalog.problems);
        let control = Arc::new(ControlPlane {
            catalog: watch::channel(Arc::new(catalog)).0,
            nodes: Default::default(),
            metrics: Metrics::new(),
            envoy: Default::default(),
            kubernetes: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("bound address");
        let stop = CancellationToken::new();
        tokio::spawn(crate::server::serve(
            listener,
            control.clone(),
            None,
            stop.clone(),
        ));
        ServedFragment {
            dir,
            reader,
            control,
            address,
            stop,
        }
    }

    /// Rewrites the fragment and publishes the new reading, as the directory watch does.
    pub fn edit(&mut self, text: &str) {
        std::fs::write(self.dir.path().join("mesh.yaml"), text).expect("write a fragment");
        let catalog = self
            .reader
            .read(&BTreeMap::new())
            .expect("read the directory");
        self.control.catalog.send_replace(Arc::new(catalog));
    }
}

impl Drop for ServedFragment {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
