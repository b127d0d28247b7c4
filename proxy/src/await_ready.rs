//! `meshwork await`: waits until the local proxy's `/ready` answers 200, then runs the
//! app in this process's place (exec), so the app is the container's process and gets
//! its signals directly. Alone (no command) it only waits: a postStart hook.
//!
//! For images that cannot use Kubernetes native sidecars: the app's entrypoint becomes
//! `meshwork await -- app args...`, and the app never starts before the proxy is ready.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

/// Default of `--timeout`.
pub const DEFAULT_AWAIT_TIMEOUT: &str = "2m";

/// The first retry waits this long; each next one twice as long, up to
/// [`MAX_RETRY_INTERVAL`].
const FIRST_RETRY_INTERVAL: Duration = Duration::from_millis(50);
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// How much of a not-ready answer is read (its reason).
const MAX_REASON_BYTES: usize = 4096;

/// How long one `/ready` request may take (a proxy that accepts but never answers).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// `meshwork await [--timeout D] [--admin ADDR] [-- CMD ARGS...]`.
#[derive(Debug, clap::Args)]
pub struct AwaitArgs {
    /// How long to wait for `/ready` before giving up with exit status 1.
    #[arg(long, default_value = DEFAULT_AWAIT_TIMEOUT, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// The proxy's admin address (`admin.address` in its config).
    #[arg(long, default_value = meshwork_config::model::DEFAULT_ADMIN_ADDRESS, value_name = "ADDR")]
    pub admin: SocketAddr,
    /// The command to run once the proxy is ready, after `--` (exec'd: it replaces
    /// `meshwork await`). Without one, `meshwork await` exits 0 once ready.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    meshwork_config::units::parse_duration(text)
}

/// Why `meshwork await` did not hand over to the command.
#[derive(Debug, thiserror::Error)]
pub enum AwaitError {
    #[error("the proxy at {admin} was not ready within {timeout:?} (last: {last})")]
    NotReady {
        admin: SocketAddr,
        timeout: Duration,
        last: String,
    },
    #[error("cannot run {command:?}: {error}")]
    Exec {
        command: OsString,
        error: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl AwaitError {
    /// The exit status, as shells use them: 127 for a command not found, 126 for one
    /// that cannot be run, 1 for a proxy that was not ready.
    pub fn exit_code(&self) -> u8 {
        match self {
            AwaitError::Exec { error, .. } if error.kind() == std::io::ErrorKind::NotFound => 127,
            AwaitError::Exec { .. } => 126,
            AwaitError::NotReady { .. } | AwaitError::Runtime(_) => 1,
        }
    }
}

/// Waits for `/ready`, then execs the command (returning only if that fails) or, without
/// one, returns.
///
/// # Errors
/// See [`AwaitError`].
pub fn run(args: &AwaitArgs) -> Result<(), AwaitError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AwaitError::Runtime)?;
    let waited = runtime.block_on(wait_ready(args.admin, args.timeout))?;
    drop(runtime);
    eprintln!(
        "meshwork await: the proxy at {} is ready (after {waited:?})",
        args.admin
    );
    let Some((program, rest)) = args.command.split_first() else {
        return Ok(());
    };
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(program).args(rest).exec();
    Err(AwaitError::Exec {
        command: program.clone(),
        error,
    })
}

/// Asks `/ready` until it answers 200, backing off between attempts, for at most
/// `timeout`. Returns how long it took.
///
/// # Errors
/// [`AwaitError::NotReady`] with the last answer or failure.
pub async fn wait_ready(admin: SocketAddr, timeout: Duration) -> Result<Duration, AwaitError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut interval = FIRST_RETRY_INTERVAL;
    let mut last = String::from("no attempt finished");
    loop {
        let attempt_deadline = deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
        match tokio::time::timeout_at(attempt_deadline, ask_ready(admin)).await {
            Ok(Ok(())) => return Ok(started.elapsed()),
            Ok(Err(why)) => last = why,
            // Cut by the overall deadline: the previous failure says more.
            Err(_) if attempt_deadline == deadline => {}
            Err(_) => last = format!("no answer within {ATTEMPT_TIMEOUT:?}"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(AwaitError::NotReady {
                admin,
                timeout,
                last,
            });
        }
        tokio::time::sleep_until(deadline.min(now + interval)).await;
        interval = (interval * 2).min(MAX_RETRY_INTERVAL);
    }
}

/// One `GET /ready`: `Ok` on 200, else what was answered or what failed.
async fn ask_ready(admin: SocketAddr) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(admin)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::get("/ready")
        .header(http::header::HOST, admin.to_string())
        .header(http::header::USER_AGENT, "meshwork-await")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let rsp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if rsp.status() == http::StatusCode::OK {
        return Ok(());
    }
    let status = rsp.status();
    // The reason, for the timeout message: a few lines at most, whatever answers there.
    let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
        rsp.into_body(),
        MAX_REASON_BYTES,
    ))
    .await
    .map(|b| b.to_bytes())
    .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_owned();
    Err(format!("{status} {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_proxy_that_never_listens_times_out_naming_the_last_failure() {
        // A port nothing listens on: bound, then closed.
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = wait_ready(admin, Duration::from_millis(300))
            .await
            .expect_err("nothing answers");
        let text = error.to_string();
        assert!(text.contains(&admin.to_string()), "{text}");
        assert!(text.contains("cannot connect"), "{text}");
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn a_command_that_cannot_be_run_exits_like_a_shell_would() {
        let not_found = AwaitError::Exec {
            command: "nope".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(not_found.exit_code(), 127);
        let denied = AwaitError::Exec {
            command: "/etc".into(),
            error: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(denied.exit_code(), 126);
    }
}
