//! `meshwork explain DESTINATION`: what an `auto` listener does with a connection going to
//! an address, as it would decide it: the port's protocol (a `ports` hint, the built-in
//! server-first list, or detection), where HTTP goes, and whether the destination is
//! meshed.

use std::fmt::Write;
use std::net::SocketAddr;

use meshwork_config::Config;
use meshwork_config::model::{
    Direction, Listener, ListenerProtocol, PortProtocol, SERVER_FIRST_PORTS, port_protocol,
};

/// The explanation for a connection to `destination` through the `auto` listener
/// `listener` (default: the first outbound one, else the first).
///
/// # Errors
/// No `auto` listener, or none of that name.
pub fn explain_destination(
    config: &Config,
    destination: SocketAddr,
    listener: Option<&str>,
) -> Result<String, String> {
    let auto: Vec<&Listener> = config
        .listeners
        .iter()
        .filter(|l| matches!(l.protocol, ListenerProtocol::Auto { .. }))
        .collect();
    let listener = match listener {
        Some(name) => *auto.iter().find(|l| l.name == name).ok_or_else(|| {
            let have: Vec<&str> = auto.iter().map(|l| l.name.as_str()).collect();
            format!(
                "no auto listener named {name:?} (have: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            )
        })?,
        None => *auto
            .iter()
            .find(|l| l.direction == Direction::Outbound)
            .or(auto.first())
            .ok_or("the config has no auto listener (protocol: auto) to take a destination")?,
    };
    let route_table = match &listener.protocol {
        ListenerProtocol::Auto { route_table } => route_table.as_deref(),
        _ => None,
    };
    let port = destination.port();
    let mut out = String::new();
    let _ = writeln!(out, "destination: {destination}");
    let direction = match listener.direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    };
    let _ = writeln!(out, "listener:    {} (auto, {direction})", listener.name);
    let http = match route_table {
        Some(table) => format!(
            "HTTP goes through route table {table:?} (try: meshwork explain -l {} --destination {destination} 'GET http://HOST/PATH'); what matches none of its routes goes to {destination}",
            listener.name
        ),
        None => format!("HTTP goes to {destination} through the request path"),
    };
    let decision = match port_protocol(&listener.ports, port) {
        PortProtocol::Opaque => {
            let why = if listener.ports.contains_key(&port) {
                "the listener's `ports` hint".to_string()
            } else {
                let name = SERVER_FIRST_PORTS
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map_or("a server-first protocol", |(_, name)| name);
                format!("{name}, on the built-in server-first list")
            };
            format!("opaque ({why}): connected to {destination} at once and relayed unread")
        }
        PortProtocol::Http => format!("http (the listener's `ports` hint): {http}"),
        PortProtocol::Auto => format!(
            "detected per connection, without a timeout: the connection to {destination} is opened while the client's first bytes are awaited.\n             Client first: {http}; TLS is relayed unread; anything else is relayed opaque.\n             Server first (a greeting): relayed opaque, the greeting forwarded at once."
        ),
    };
    let _ = writeln!(out, "port {port:<6}  {decision}");
    let meshed = match &config.mesh {
        Some(mesh) if mesh.is_meshed(destination.ip()) => format!(
            "{} is in mesh.networks: the connection is mutual TLS with this proxy's identity (ALPN meshwork/1)",
            destination.ip()
        ),
        Some(_) => format!("{} is not in mesh.networks: plain TCP", destination.ip()),
        None => "no `mesh`: plain TCP".into(),
    };
    if listener.direction == Direction::Outbound {
        let _ = writeln!(out, "mesh:        {meshed}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        meshwork_config::load_str("test.yaml", yaml, std::path::Path::new("."), &|_| None)
            .expect("valid")
    }

    const SIDECAR: &str = "version: 1
listeners:
  - name: outbound
    address: 127.0.0.1:15001
    direction: outbound
    protocol: auto
    original_destination: true
    ports: { 9092: opaque }
identity: { cert: c.pem, key: k.pem, trust_bundle: ca.pem }
mesh: { networks: [10.0.0.0/8] }
";

    #[test]
    fn a_server_first_port_is_opaque_and_says_which_protocol() {
        let out =
            explain_destination(&config(SIDECAR), "10.0.0.5:3306".parse().unwrap(), None).unwrap();
        assert!(
            out.contains("opaque (MySQL, on the built-in server-first list)"),
            "{out}"
        );
        assert!(out.contains("10.0.0.5 is in mesh.networks"), "{out}");
    }

    #[test]
    fn a_hinted_port_and_an_undetected_one() {
        let c = config(SIDECAR);
        let hinted = explain_destination(&c, "192.168.1.1:9092".parse().unwrap(), None).unwrap();
        assert!(
            hinted.contains("opaque (the listener's `ports` hint)"),
            "{hinted}"
        );
        assert!(hinted.contains("not in mesh.networks"), "{hinted}");
        let detected = explain_destination(&c, "10.0.0.5:8080".parse().unwrap(), None).unwrap();
        assert!(
            detected.contains("detected per connection, without a timeout"),
            "{detected}"
        );
    }

    #[test]
    fn a_config_without_auto_listeners_says_so() {
        let c = config(
            "version: 1
listeners: [{ name: edge, address: 127.0.0.1:8080, route_table: t }]
route_tables: { t: [] }
",
        );
        let error = explain_destination(&c, "10.0.0.5:80".parse().unwrap(), None).unwrap_err();
        assert!(error.contains("no auto listener"), "{error}");
    }
}
