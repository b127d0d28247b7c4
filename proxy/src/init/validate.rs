//! `meshwork init --validate`: proves that the app's outbound connections are redirected,
//! so a pod whose rules are missing never starts its app believing it is meshed.
//!
//! It listens on the outbound port itself (the proxy is not running yet) and connects to
//! an address nothing answers (TEST-NET-1 by default). Only the redirect can complete
//! that connection; the accepted side checks that conntrack recorded the address that
//! was dialled as the original destination, and a random token echoed back proves the
//! client reached this very listener.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::InterceptRules;
use crate::listener::original_destination;

/// The address `--validate` dials by default: TEST-NET-1 (RFC 5737), never routed.
pub const DEFAULT_VALIDATE_ADDRESS: &str = "192.0.2.1:9";

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(
        "--validate runs as UID {0}, the proxy's: the proxy's own connections are never \
         redirected, so this proves nothing; run it as the app's user"
    )]
    RunAsProxy(u32),
    #[error(
        "{0} is skipped by the rules (--outbound-skip-ports / --outbound-skip-cidrs): pick \
         a --validate-address that the redirect captures"
    )]
    TargetSkipped(SocketAddr),
    #[error(
        "cannot listen on the outbound port {port} to validate: {source} (validate before \
         the proxy starts, e.g. in an init container after `meshwork init`)"
    )]
    Listen { port: u16, source: std::io::Error },
    #[error(
        "outbound connections are NOT redirected: a connection to {target} failed ({source}) \
         instead of reaching port {port}; the interception rules are missing or do not \
         apply to this process (run `meshwork init` with NET_ADMIN in this pod's network \
         namespace first; `meshwork init --dry-run` shows the rules)"
    )]
    NotRedirected {
        target: SocketAddr,
        port: u16,
        source: std::io::Error,
    },
    #[error(
        "outbound connections are NOT redirected to port {port}: the connection to {target} \
         was answered by something else ({detail})"
    )]
    AnsweredElsewhere {
        target: SocketAddr,
        port: u16,
        detail: String,
    },
}

/// What the listening side saw of the validation connection.
#[derive(Debug)]
struct Accepted {
    original: std::io::Result<SocketAddr>,
}

/// Validates the outbound redirect with a connection to `target`; returns the report.
///
/// # Errors
/// See [`ValidateError`]: every way the redirect can be missing names what to do.
pub fn outbound(
    rules: &InterceptRules,
    target: SocketAddr,
    timeout: Duration,
) -> Result<String, ValidateError> {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == rules.proxy_uid {
        return Err(ValidateError::RunAsProxy(uid));
    }
    if rules.outbound_skip_ports.contains(&target.port())
        || rules
            .outbound_skip_cidrs
            .iter()
            .any(|c| c.contains(&target.ip()))
    {
        return Err(ValidateError::TargetSkipped(target));
    }
    let port = rules.outbound_port;
    let any: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let listener =
        TcpListener::bind((any, port)).map_err(|source| ValidateError::Listen { port, source })?;
    let token = format!("meshwork-validate-{:032x}\n", rand::random::<u128>());
    let (tx, rx) = mpsc::channel();
    // The listening side: accept one connection, echo its first line.
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let original = stream
            .local_addr()
            .and_then(|local| original_destination(&stream, local));
        let _ = tx.send(Accepted { original });
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_ok() {
            let _ = (&stream).write_all(line.as_bytes());
        }
    });

    let deadline = Instant::now() + timeout;
    let not_redirected = |source| ValidateError::NotRedirected {
        target,
        port,
        source,
    };
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(not_redirected)?;
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let _ = stream.set_read_timeout(Some(remaining));
    stream.write_all(token.as_bytes()).map_err(not_redirected)?;
    let mut echoed = String::new();
    let _ = BufReader::new(&stream).read_line(&mut echoed);
    let elsewhere = |detail: String| ValidateError::AnsweredElsewhere {
        target,
        port,
        detail,
    };
    let accepted = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .map_err(|_| elsewhere("nothing reached the validation listener".to_owned()))?;
    if echoed != token {
        return Err(elsewhere(format!("it answered {echoed:?}")));
    }
    match accepted.original {
        Ok(original) if original == target => Ok(format!(
            "outbound redirect works: a connection to {target} reached port {port}"
        )),
        Ok(original) => Err(elsewhere(format!(
            "the listener saw original destination {original}"
        ))),
        Err(error) => Err(elsewhere(format!(
            "the listener found no original destination: {error}"
        ))),
    }
}
