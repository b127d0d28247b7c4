//! The `meshwork-control` binary: parse arguments, start.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// meshwork's control plane: serves a directory of YAML fragments to meshwork proxies.
#[derive(Debug, Parser)]
#[command(name = "meshwork-control", version)]
struct Cli {
    /// The directory of fragment files (`*.yaml`, `*.yml`) holding listeners,
    /// route_tables and clusters; watched for changes.
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,
    /// Where proxies connect (gRPC over h2c, or over TLS with `--tls-cert`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18000")]
    listen: SocketAddr,
    /// Serve the discovery port over TLS with this certificate chain (PEM); needs
    /// `--tls-key`. Proxies then use an https:// address and `control_plane.tls`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require proxies to present a client certificate chaining to this CA bundle (PEM):
    /// mTLS. Needs `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Also serve a cluster per Kubernetes Service port (`NAME.NAMESPACE.svc:PORT`),
    /// its endpoints from EndpointSlices, watched with the pod's service account (or
    /// `--kubeconfig`). See docs/control-plane.md, "Kubernetes".
    #[arg(long)]
    kubernetes: bool,
    /// With `--kubernetes`: reach the API server as this kubeconfig file says (its
    /// current context) instead of the in-cluster service account.
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,
    /// The admin server (`/ready`, `/metrics`, `/status`); none when absent.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Write the bound addresses here (`listen ADDR`, `admin ADDR` lines), useful with
    /// port 0.
    #[arg(long, value_name = "FILE")]
    address_file: Option<PathBuf>,
    /// Read and validate the directory once, print every problem, and exit (1 when there
    /// is any): for CI, before the files are shipped.
    #[arg(long)]
    check: bool,
    /// Log filter (`info`, `debug`, `meshwork_control=debug`); `RUST_LOG` wins.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if cli.check {
        return check(cli.config_dir);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = meshwork_control::Options {
        config_dir: cli.config_dir,
        listen: cli.listen,
        admin: cli.admin,
        address_file: cli.address_file,
        tls: match (cli.tls_cert, cli.tls_key) {
            (Some(cert), Some(key)) => Some(meshwork_control::tls::TlsFiles {
                cert,
                key,
                client_ca: cli.client_ca,
            }),
            _ => None,
        },
        kubernetes: match (cli.kubernetes, cli.kubeconfig) {
            (false, _) => None,
            (true, None) => Some(meshwork_control::kubernetes::ApiAccess::InCluster),
            (true, Some(path)) => Some(meshwork_control::kubernetes::ApiAccess::Kubeconfig(path)),
        },
    };
    match runtime.block_on(meshwork_control::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--check`: one reading of the directory, its problems on stderr.
fn check(dir: PathBuf) -> ExitCode {
    let mut reader = meshwork_control::catalog::Reader::new(dir.clone());
    let catalog = match reader.read(&std::collections::BTreeMap::new()) {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", dir.display());
            return ExitCode::from(2);
        }
    };
    for problem in &catalog.problems {
        eprintln!("{}", problem.error);
    }
    if catalog.is_clean() {
        eprintln!(
            "{}: ok, {} resources (version {})",
            dir.display(),
            catalog.served.len(),
            catalog.version
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
