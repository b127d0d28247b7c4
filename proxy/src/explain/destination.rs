//! `meshwork explain DESTINATION`: what an `auto` listener does with a connection going to
//! an address, as it would decide it: the port's protocol (a `ports` hint, the built-in
//! server-first list, or detection), where HTTP goes, and whether the destination is
//! meshed.

use std::fmt::Write;
use std::net::SocketAddr;

use meshwork_config::Config;
use meshwork_config::model::{
    Direction, Listener, ListenerProtocol, PortProtocol, SERVER_FIRST_PORTS, destination_protocol,
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
    // Only outbound listeners look destinations up as VIPs (see `vip.rs`).
    let vip = config
        .clusters
        .iter()
        .filter(|_| listener.direction == Direction::Outbound)
        .find_map(|c| {
            let vip = c.vip.as_ref()?;
            vip.addresses.contains(&destination).then_some((c, vip))
        });
    let target = match vip {
        Some((cluster, _)) => format!("an endpoint of cluster {:?}", cluster.name),
        None => destination.to_string(),
    };
    if let Some((cluster, _)) = vip {
        let _ = writeln!(
            out,
            "vip:         {destination} stands for cluster {:?} ({} endpoints): connections go to an endpoint its balancer picks, never to {destination} itself",
            cluster.name,
            cluster.endpoints.len()
        );
    }
    let unrouted = match vip {
        Some((cluster, _)) => format!(
            "cluster {:?} (route {:?}: balanced, retried as `retry: {{}}`)",
            cluster.name, cluster.name
        ),
        None => destination.to_string(),
    };
    let http = match route_table {
        Some(table) => format!(
            "HTTP goes through route table {table:?} (try: meshwork explain -l {} --destination {destination} 'GET http://HOST/PATH'); what matches none of its routes goes to {unrouted}",
            listener.name
        ),
        None => format!("HTTP goes to {unrouted} through the request path"),
    };
    let vip_protocol = vip.map(|(_, v)| v.protocol);
    let vip_says = matches!(
        vip_protocol,
        Some(PortProtocol::Http | PortProtocol::Opaque)
    );
    let decision = match destination_protocol(&listener.ports, port, vip_protocol) {
        PortProtocol::Opaque => {
            let why = if vip_says {
                "the VIP's `protocol`".to_string()
            } else if listener.ports.contains_key(&port) {
                "the listener's `ports` hint".to_string()
            } else {
                let name = SERVER_FIRST_PORTS
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map_or("a server-first protocol", |(_, name)| name);
                format!("{name}, on the built-in server-first list")
            };
            format!("opaque ({why}): connected to {target} at once and relayed unread")
        }
        PortProtocol::Http if vip_says => format!("http (the VIP's `protocol`): {http}"),
        PortProtocol::Http => format!("http (the listener's `ports` hint): {http}"),
        PortProtocol::Auto => format!(
            "detected per connection, without a timeout: the connection to {target} is opened while the client's first bytes are awaited.\n             Client first: {http}; TLS is relayed unread; anything else is relayed opaque.\n             Server first (a greeting): relayed opaque, the greeting forwarded at once."
        ),
    };
    let _ = writeln!(out, "port {port:<6}  {decision}");
    let meshed = match (&config.mesh, vip) {
        (Some(mesh), Some((cluster, _))) => {
            let meshed = cluster
                .endpoints
                .iter()
                .filter(|e| e.meshed || e.address.host.parse().is_ok_and(|ip| mesh.is_meshed(ip)))
                .count();
            format!(
                "{meshed} of the {} endpoints run meshwork (marked `meshed` or in mesh.networks): connections to them are mutual TLS with this proxy's identity, to the others plain TCP",
                cluster.endpoints.len()
            )
        }
        (Some(mesh), None) if mesh.is_meshed(destination.ip()) => format!(
            "{} is in mesh.networks: the connection is mutual TLS with this proxy's identity (ALPN meshwork/1)",
            destination.ip()
        ),
        (Some(_), None) => format!("{} is not in mesh.networks: plain TCP", destination.ip()),
        (None, _) => "no `mesh`: plain TCP".into(),
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
    fn a_vip_says_its_cluster_and_its_protocol_wins_over_the_port_hint() {
        let c = config(&format!(
            "{SIDECAR}clusters:
  - name: web.shop.svc:9092
    endpoints: [{{ address: 10.1.0.1:8080, meshed: true }}, 192.168.0.1:8080]
    vip: {{ addresses: [10.96.0.10:9092], protocol: http }}
"
        ));
        let out = explain_destination(&c, "10.96.0.10:9092".parse().unwrap(), None).unwrap();
        assert!(
            out.contains("10.96.0.10:9092 stands for cluster \"web.shop.svc:9092\" (2 endpoints)"),
            "{out}"
        );
        assert!(out.contains("http (the VIP's `protocol`)"), "{out}");
        assert!(
            out.contains("HTTP goes to cluster \"web.shop.svc:9092\""),
            "{out}"
        );
        assert!(out.contains("1 of the 2 endpoints run meshwork"), "{out}");
        // Another port of the same address is no VIP: a passthrough, as hinted.
        let other = explain_destination(&c, "10.96.0.10:80".parse().unwrap(), None).unwrap();
        assert!(!other.contains("stands for"), "{other}");
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
