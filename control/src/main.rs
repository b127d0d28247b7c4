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
    /// Where proxies connect (gRPC, h2c).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18000")]
    listen: SocketAddr,
    /// The admin server (`/ready`, `/metrics`, `/status`); none when absent.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Write the bound addresses here (`listen ADDR`, `admin ADDR` lines), useful with
    /// port 0.
    #[arg(long, value_name = "FILE")]
    address_file: Option<PathBuf>,
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
    };
    match runtime.block_on(meshwork_control::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
