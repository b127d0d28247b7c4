//! A tiny TCP endpoint for the network-namespace tests: `listen` answers every connection
//! with one line saying where it arrived (local address, original destination, peer);
//! `listen-http` answers every HTTP/1.1 request with one such line as its body, plus the
//! `x-meshwork-peer-identity` the proxy passed (or `-`); `connect` prints the line it is
//! answered with. Run inside a namespace with
//! `ip netns exec`, so one process is one host's view.
#![forbid(unsafe_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["listen", addr, tag, rest @ ..] => listen(addr, tag, rest.contains(&"--transparent")),
        ["listen-http", addr, tag] => listen_http(addr, tag),
        ["connect", addr] => connect(addr, None),
        ["connect", addr, "--uid", uid] => connect(addr, Some(uid)),
        _ => Err(
            "usage: netns-probe listen ADDR TAG [--transparent] | listen-http ADDR TAG | \
             connect ADDR [--uid N]"
                .into(),
        ),
    };
    if let Err(error) = result {
        eprintln!("netns-probe: {error}");
        std::process::exit(1);
    }
}

type Error = Box<dyn std::error::Error>;

fn listen(addr: &str, tag: &str, transparent: bool) -> Result<(), Error> {
    let addr: SocketAddr = addr.parse()?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if transparent {
        // TPROXY hands connections for other addresses only to transparent sockets.
        socket.set_ip_transparent_v4(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    let listener: std::net::TcpListener = socket.into();
    println!("ready {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let local = stream.local_addr()?;
        let original = meshwork_proxy::listener::original_destination(&stream, local)
            .map_or_else(|_| "-".to_owned(), |a| a.to_string());
        let peer = stream.peer_addr()?;
        let _ = writeln!(stream, "{tag} local={local} orig={original} peer={peer}");
    }
    Ok(())
}

fn listen_http(addr: &str, tag: &str) -> Result<(), Error> {
    let listener = std::net::TcpListener::bind(addr)?;
    println!("ready {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let peer = stream.peer_addr()?;
        let mut reader = BufReader::new(&stream);
        let mut identity = "-".to_owned();
        // The request head, bounded: a test's requests are small.
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("x-meshwork-peer-identity") {
                    identity = value.trim().to_owned();
                }
            }
        }
        let body = format!("{tag} peer-identity={identity} peer={peer}\n");
        let _ = write!(
            &stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}

fn connect(addr: &str, uid: Option<&str>) -> Result<(), Error> {
    if let Some(uid) = uid {
        let uid: u32 = uid.parse()?;
        nix::unistd::setgid(nix::unistd::Gid::from_raw(uid))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
    }
    let addr: SocketAddr = addr.parse()?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    print!("{line}");
    Ok(())
}
