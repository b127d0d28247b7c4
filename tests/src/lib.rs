//! End-to-end test harness: the real `meshwork` binary against real upstreams and clients.
//!
//! Everything binds `127.0.0.1:0`, every wait is bounded, and every helper panics with
//! a message saying what it was waiting for (and, for the proxy, what it logged).
#![forbid(unsafe_code)]

pub mod access_log;
pub mod binary;
pub mod body;
pub mod cli;
pub mod client;
pub mod control;
pub mod envoy;
pub mod grpc;
pub mod h2_raw;
pub mod kube_api;
pub mod kubelet;
pub mod live_streams;
pub mod metrics;
pub mod netns;
pub mod nginx;
pub mod otlp;
pub mod output;
pub mod pods;
pub mod proxy;
pub mod raw;
pub mod raw_upstream;
pub mod tcp;
pub mod tls;
pub mod trace_context;
pub mod upstream;
pub mod wait;
pub mod ws;
pub mod xds;
pub mod yaml;

pub use access_log::AccessLogFile;
pub use binary::{meshwork_bin, meshwork_control_bin};
pub use body::{BoxError, GeneratedBody, RequestBody, empty, full};
pub use cli::{CliOutput, meshwork, meshwork_in, run_program};
pub use client::{HttpClient, Reply};
pub use control::{ControlPlane, ControlTls};
pub use grpc::{EchoReply, EchoRequest, GrpcClient, GrpcUpstream};
pub use live_streams::LiveStreams;
pub use metrics::{Scrape, labels_of, promtool_check_metrics};
pub use nginx::Nginx;
pub use otlp::{ExportedSpan, OtlpReceiver, SpanKind, SpanStatus};
pub use proxy::{ListenerInfo, Proxy, ProxyBuilder};
pub use raw::{RawConn, RawResponse};
pub use raw_upstream::{RawScript, RawUpstream};
pub use tcp::TcpEchoUpstream;
pub use tls::{
    CertFiles, TestCa, TlsClient, TlsReply, inbound_sidecar_yaml, outbound_sidecar_yaml,
};
pub use trace_context::{B3, TraceParent, random_span_id, random_trace_id};
pub use upstream::{Echo, Upstream, UpstreamBuilder, dead_endpoint};
pub use wait::{eventually, within};
pub use ws::{WsUpstream, ws_connect};
pub use yaml::{
    API_ROUTE, access_log_yaml, cluster_yaml, dedent, edge_config, edge_routes, indent,
    single_cluster_config, tracing_yaml, with_limits, with_tls,
};
