//! The `meshwork` binary: parse arguments, load config, start.
// Denied, not forbidden: `float_symbols` allows it for one `#[unsafe(no_mangle)]`.
#![deny(unsafe_code)]

mod float_symbols;

use std::process::ExitCode;

use clap::Parser;
use meshwork_config::model::WorkerThreads;
use meshwork_proxy::cli::{Cli, Command};
use meshwork_proxy::lifecycle::{self, RunOptions};
use meshwork_proxy::{demo, explain};

/// jemalloc, with background threads purging freed pages within half a second
/// (`.cargo/config.toml`): glibc's malloc keeps what a burst of connections freed (after
/// waves of slowloris connections, 156 MiB instead of 10), and costs more instructions
/// per request. The measurements are in bench/RESULTS.md ("Choosing the allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match cli.command {
        Command::Check {
            files,
            read_certificates,
        } => check(&files, read_certificates),
        Command::Certs { command } => match meshwork_proxy::certs::run(&command) {
            Ok(written) => {
                for path in written {
                    eprintln!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&meshwork_config::json_schema()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Explain {
            config,
            request,
            headers,
            listener,
            destination,
        } => {
            let config = match meshwork_config::load_file(&config) {
                Ok(c) => c,
                Err(diagnostics) => return report(&diagnostics),
            };
            if let Ok(target) = request.trim().parse::<std::net::SocketAddr>() {
                return match explain::explain_destination(&config, target, listener.as_deref()) {
                    Ok(text) => {
                        print!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(error) => {
                        eprintln!("error: {error}");
                        ExitCode::from(2)
                    }
                };
            }
            match explain::explain(
                &config,
                &request,
                &headers,
                listener.as_deref(),
                destination,
            ) {
                Ok((text, matched)) => {
                    print!("{text}");
                    if matched {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Init(args) => match meshwork_proxy::init::run(&args.rules(), &args.action()) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Inject(args) => inject(&args),
        Command::Drain { admin, timeout } => {
            match meshwork_proxy::drain_request::drain(admin, timeout) {
                Ok(status) => {
                    eprintln!("{admin}: {status}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            config,
            admin_address_file,
            drain_timeout,
            app_quiet_period,
        } => run(
            RunOptions {
                config_path: config,
                admin_address_file,
                drain_timeout,
                app_quiet_period,
            },
            false,
        ),
        Command::Await(args) => match meshwork_proxy::await_ready::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("meshwork await: {error}");
                ExitCode::from(error.exit_code())
            }
        },
        Command::Demo => {
            let dir = std::env::temp_dir().join(format!("meshwork-demo-{}", std::process::id()));
            let path = dir.join("quickstart.yaml");
            if let Err(error) =
                std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, demo::QUICKSTART))
            {
                eprintln!("error: cannot write {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!("config: {}\n{}", path.display(), demo::BANNER);
            run(
                RunOptions {
                    config_path: path,
                    admin_address_file: None,
                    drain_timeout: std::time::Duration::from_secs(5),
                    app_quiet_period: meshwork_proxy::drain::DEFAULT_APP_QUIET_PERIOD,
                },
                true,
            )
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn report(diagnostics: &meshwork_config::Diagnostics) -> ExitCode {
    eprintln!("{diagnostics}");
    ExitCode::from(2)
}

fn check(files: &[std::path::PathBuf], read_certificates: bool) -> ExitCode {
    let mut failed = false;
    for file in files {
        // Structure first, then (when asked) the certificate files it names.
        match meshwork_config::load_file(file) {
            Ok(_) if !read_certificates => eprintln!("{}: ok", file.display()),
            Ok(config) => match meshwork_proxy::tls::plan::check_files(&config) {
                Ok(()) => eprintln!("{}: ok", file.display()),
                Err(error) => {
                    failed = true;
                    eprintln!("{}: {error}", file.display());
                }
            },
            Err(diagnostics) => {
                failed = true;
                eprintln!("{diagnostics}");
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn inject(args: &meshwork_proxy::inject::cli::InjectArgs) -> ExitCode {
    match args.run() {
        Ok(injected) => {
            for note in &injected.notes {
                eprintln!("{note}");
            }
            print!("{}", injected.yaml);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: RunOptions, with_demo_backends: bool) -> ExitCode {
    let config = match meshwork_config::load_file(&options.config_path) {
        Ok(c) => c,
        Err(diagnostics) => return report(&diagnostics),
    };
    let runtime = match config.runtime.worker_threads {
        WorkerThreads::Fixed(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        WorkerThreads::Fixed(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.into())
            .enable_all()
            .build(),
        WorkerThreads::Auto => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        if with_demo_backends {
            demo::start_backends().await?;
        }
        lifecycle::run(config, options).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
