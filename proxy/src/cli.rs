//! Command-line interface of the `meshwork` binary.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// meshwork: a service-mesh data-plane proxy (sidecar and edge).
#[derive(Debug, Parser)]
#[command(name = "meshwork", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing's env-filter syntax); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy on a config file (reloaded on change and on SIGHUP).
    Run {
        /// The YAML routing file (format v1).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Write the admin server's bound address here once it is listening
        /// (useful with `admin.address: 127.0.0.1:0`).
        #[arg(long, value_name = "PATH")]
        admin_address_file: Option<PathBuf>,
        /// The drain's one deadline, from SIGTERM/SIGINT or POST /drain: inbound
        /// connections finish and outbound listeners serve the app until it is gone.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// During the drain, how long the app must make no call (once inbound drained)
        /// to count as gone.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        app_quiet_period: Duration,
    },
    /// Wait until the local proxy's /ready answers 200, then run CMD in this process's
    /// place (`meshwork await -- CMD ARGS...`); without CMD, only wait.
    Await(crate::await_ready::AwaitArgs),
    /// Validate config files; print every error as file:line:col: field: message.
    Check {
        /// Files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also read the certificate, key and CA files the config names, as `run` does
        /// (where they exist: a config checked in CI may name files only its pods have).
        #[arg(long)]
        read_certificates: bool,
    },
    /// Show which route a request would take, and why earlier routes did not match.
    Explain {
        /// The YAML routing file (format v1).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The request, e.g. 'GET http://api.example.com/v1/users?debug=1'; or a
        /// destination, e.g. 10.0.0.5:8080, for what an auto listener does with a
        /// connection going there.
        #[arg(value_name = "REQUEST")]
        request: String,
        /// A request header, 'name: value' (repeatable).
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// The listener whose route table to use (default: the first HTTP listener; for a
        /// destination, the first outbound auto listener).
        #[arg(short, long, value_name = "NAME")]
        listener: Option<String>,
        /// Auto listeners: where the request's connection was going (what matches none
        /// of the routes goes there).
        #[arg(long, value_name = "ADDRESS")]
        destination: Option<std::net::SocketAddr>,
    },
    /// Print the JSON Schema of the config format (for editors).
    Schema,
    /// Run the quickstart: the proxy plus two small example upstreams, all on localhost.
    Demo,
    /// Program this network namespace so the pod's TCP traffic reaches the sidecar
    /// (run as the pod's init container, with NET_ADMIN), or prove that it does.
    Init(InitArgs),
    /// Print Kubernetes resources with meshwork injected into their pods (init container,
    /// native sidecar, config and identity volumes); other resources pass through.
    Inject(crate::inject::cli::InjectArgs),
    /// Ask the local proxy to start draining (`POST /drain` on its admin port): the
    /// sidecar's preStop hook.
    Drain {
        /// The proxy's admin address (`admin.address` in its config; as `meshwork await`).
        #[arg(long, value_name = "ADDR", default_value = meshwork_config::model::DEFAULT_ADMIN_ADDRESS)]
        admin: std::net::SocketAddr,
        /// How long connecting and the answer may take.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Create development certificates: a CA, and workload certificates carrying SPIFFE
    /// IDs, to try mTLS between sidecars (not for production).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

/// `meshwork init`: the interception rules, and what to do with them.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where the app's outbound TCP connections are redirected (the outbound listener).
    #[arg(long, default_value_t = crate::init::DEFAULT_OUTBOUND_PORT, value_name = "PORT")]
    pub outbound_port: u16,
    /// Where TCP connections to the pod are redirected (the inbound listener).
    #[arg(long, default_value_t = crate::init::DEFAULT_INBOUND_PORT, value_name = "PORT")]
    pub inbound_port: u16,
    /// The proxy's UID: its own connections are never captured.
    #[arg(long, default_value_t = crate::init::DEFAULT_PROXY_ID, value_name = "UID")]
    pub proxy_uid: u32,
    /// The proxy's GID: connections of processes in this group are never captured.
    #[arg(long, default_value_t = crate::init::DEFAULT_PROXY_ID, value_name = "GID")]
    pub proxy_gid: u32,
    /// Destination ports the app's connections reach directly (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub outbound_skip_ports: Vec<u16>,
    /// Destination networks the app's connections reach directly, e.g. 10.96.0.0/12.
    #[arg(long, value_delimiter = ',', value_name = "CIDRS")]
    pub outbound_skip_cidrs: Vec<ipnet::IpNet>,
    /// Pod ports that connections reach directly (default: the sidecar admin port 4191,
    /// so kubelet probes reach /ready).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "4191",
        value_name = "PORTS"
    )]
    pub inbound_skip_ports: Vec<u16>,
    /// Source networks whose connections to the pod are not captured.
    #[arg(long, value_delimiter = ',', value_name = "CIDRS")]
    pub inbound_skip_cidrs: Vec<ipnet::IpNet>,
    /// redirect: nat REDIRECT (the app sees the proxy as its client); tproxy: inbound
    /// connections keep the client's address, for the proxy to connect to the app from it.
    #[arg(long, value_enum, default_value = "redirect")]
    pub mode: crate::init::InterceptMode,
    /// TPROXY mode: the firewall mark of diverted packets.
    #[arg(long, default_value_t = crate::init::DEFAULT_TPROXY_MARK, value_name = "MARK")]
    pub tproxy_mark: u32,
    /// TPROXY mode: the routing table that delivers marked packets locally.
    #[arg(long, default_value_t = crate::init::DEFAULT_TPROXY_TABLE, value_name = "TABLE")]
    pub tproxy_table: u32,
    /// Print the rules (an nftables ruleset and any `ip` commands), change nothing.
    #[arg(long, conflicts_with_all = ["cleanup", "validate"])]
    pub dry_run: bool,
    /// Remove the rules `meshwork init` programmed.
    #[arg(long, conflicts_with = "validate")]
    pub cleanup: bool,
    /// Change nothing; prove that the app's outbound connections reach the outbound port
    /// (exit status 1 with the reason if not). Run it as the app's user, before the proxy
    /// starts.
    #[arg(long)]
    pub validate: bool,
    /// With --validate: an address only the redirect can answer.
    #[arg(long, default_value = crate::init::DEFAULT_VALIDATE_ADDRESS, value_name = "ADDR")]
    pub validate_address: std::net::SocketAddr,
    /// With --validate: how long the connection may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub validate_timeout: Duration,
}

impl InitArgs {
    pub fn rules(&self) -> crate::init::InterceptRules {
        crate::init::InterceptRules {
            outbound_port: self.outbound_port,
            inbound_port: self.inbound_port,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            outbound_skip_ports: self.outbound_skip_ports.clone(),
            outbound_skip_cidrs: self.outbound_skip_cidrs.clone(),
            inbound_skip_ports: self.inbound_skip_ports.clone(),
            inbound_skip_cidrs: self.inbound_skip_cidrs.clone(),
            mode: self.mode,
            tproxy_mark: self.tproxy_mark,
            tproxy_table: self.tproxy_table,
        }
    }

    pub fn action(&self) -> crate::init::InitAction {
        use crate::init::InitAction;
        if self.dry_run {
            InitAction::DryRun
        } else if self.cleanup {
            InitAction::Cleanup
        } else if self.validate {
            InitAction::Validate {
                target: self.validate_address,
                timeout: self.validate_timeout,
            }
        } else {
            InitAction::Apply
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// A new CA: writes DIR/ca.pem and DIR/ca-key.pem.
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "meshwork development CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
        /// Replace files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// A workload certificate signed by the CA: writes DIR/cert.pem, DIR/key.pem and
    /// DIR/ca.pem (the trust bundle), the three files of `identity`.
    Workload {
        /// Directory holding ca.pem and ca-key.pem (from `meshwork certs ca`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The workload's identity, e.g. spiffe://cluster.local/ns/default/sa/web.
        #[arg(long, value_name = "SPIFFE_ID")]
        spiffe_id: String,
        /// A DNS name to add (repeatable), for clients that verify names.
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
        /// Replace files that already exist.
        #[arg(long)]
        force: bool,
    },
}

/// Durations on the command line use the config's notation (`250ms`, `30s`, `2m`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    meshwork_config::units::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn drain_timeout_takes_a_duration_with_a_unit() {
        let cli = Cli::try_parse_from([
            "meshwork",
            "run",
            "-c",
            "x.yaml",
            "--drain-timeout",
            "250ms",
        ])
        .unwrap();
        match cli.command {
            Command::Run { drain_timeout, .. } => {
                assert_eq!(drain_timeout, Duration::from_millis(250))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["meshwork", "run", "-c", "x.yaml", "--drain-timeout", "30"])
                .is_err()
        );
    }
}
