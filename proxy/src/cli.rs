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
        /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        drain_timeout: Duration,
    },
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
        /// The request, e.g. 'GET http://api.example.com/v1/users?debug=1'.
        #[arg(value_name = "REQUEST")]
        request: String,
        /// A request header, 'name: value' (repeatable).
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// The listener whose route table to use (default: the first HTTP listener).
        #[arg(short, long, value_name = "NAME")]
        listener: Option<String>,
    },
    /// Print the JSON Schema of the config format (for editors).
    Schema,
    /// Run the quickstart: the proxy plus two small example upstreams, all on localhost.
    Demo,
    /// Create development certificates: a CA, and workload certificates carrying SPIFFE
    /// IDs, to try mTLS between sidecars (not for production).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
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
