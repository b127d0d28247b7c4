//! The nftables ruleset of `meshwork init`, as the text `nft -f -` loads.
//!
//! Order inside each chain matters: everything that must never be captured returns
//! first (non-TCP, loopback, the proxy's own sockets, skipped ports and networks), and
//! the last rule captures what is left.

use std::fmt::Write as _;

use ipnet::IpNet;

use super::{InterceptMode, InterceptRules};

/// The table every rule of `meshwork init` lives in (family `inet`: IPv4 and IPv6).
pub const TABLE: &str = "meshwork";

pub fn ruleset(r: &InterceptRules) -> String {
    let mut s = String::new();
    // Declaring the table before deleting it makes the load a replacement: `delete` alone
    // fails (and takes the whole transaction with it) when the table does not exist yet.
    let _ = writeln!(s, "table inet {TABLE}");
    let _ = writeln!(s, "delete table inet {TABLE}");
    let _ = writeln!(s, "table inet {TABLE} {{");
    inbound_chain(&mut s, r);
    outbound_chain(&mut s, r);
    if r.mode == InterceptMode::Tproxy {
        reply_chain(&mut s, r);
    }
    s.push_str("}\n");
    s
}

/// Connections arriving at the pod, to the inbound port.
fn inbound_chain(s: &mut String, r: &InterceptRules) {
    let _ = writeln!(s, "\tchain inbound {{");
    match r.mode {
        InterceptMode::Redirect => rule(
            s,
            "type nat hook prerouting priority dstnat; policy accept;",
        ),
        // TPROXY runs before routing, in the mangle position.
        InterceptMode::Tproxy => rule(
            s,
            "type filter hook prerouting priority mangle; policy accept;",
        ),
    }
    rule(s, "meta l4proto != tcp return");
    // The proxy's own connections to the app, and the app's to itself.
    rule(s, "iifname \"lo\" return");
    ports_rule(s, "tcp dport", &r.inbound_skip_ports);
    cidr_rules(s, "saddr", &r.inbound_skip_cidrs);
    match r.mode {
        InterceptMode::Redirect => {
            let _ = writeln!(s, "\t\tmeta l4proto tcp redirect to :{}", r.inbound_port);
        }
        InterceptMode::Tproxy => {
            // Later packets of a connection the transparent listener already accepted.
            let _ = writeln!(
                s,
                "\t\tmeta l4proto tcp socket transparent 1 meta mark set {:#x} accept",
                r.tproxy_mark
            );
            let _ = writeln!(
                s,
                "\t\tmeta l4proto tcp tproxy to :{} meta mark set {:#x} accept",
                r.inbound_port, r.tproxy_mark
            );
        }
    }
    let _ = writeln!(s, "\t}}");
}

/// The app's connections leaving the pod, to the outbound port.
fn outbound_chain(s: &mut String, r: &InterceptRules) {
    let _ = writeln!(s, "\tchain outbound {{");
    rule(s, "type nat hook output priority -100; policy accept;");
    rule(s, "meta l4proto != tcp return");
    rule(s, "oifname \"lo\" return");
    // The proxy's own connections (it runs as this UID/GID) go where they were going.
    let _ = writeln!(s, "\t\tmeta skuid {} return", r.proxy_uid);
    let _ = writeln!(s, "\t\tmeta skgid {} return", r.proxy_gid);
    rule(s, "ip daddr 127.0.0.0/8 return");
    rule(s, "ip6 daddr ::1 return");
    ports_rule(s, "tcp dport", &r.outbound_skip_ports);
    cidr_rules(s, "daddr", &r.outbound_skip_cidrs);
    let _ = writeln!(s, "\t\tmeta l4proto tcp redirect to :{}", r.outbound_port);
    let _ = writeln!(s, "\t}}");
}

/// TPROXY mode: the proxy connects to the app from the client's own address, with its
/// socket marked. The mark is remembered on the connection so that the app's replies —
/// addressed to the client, off the pod — are marked too and routed back to the proxy
/// by the policy routing table instead of leaving the pod.
fn reply_chain(s: &mut String, r: &InterceptRules) {
    let _ = writeln!(s, "\tchain reply_to_proxy {{");
    rule(s, "type route hook output priority mangle; policy accept;");
    rule(s, "meta l4proto != tcp return");
    let _ = writeln!(
        s,
        "\t\tmeta mark {m:#x} ct mark set {m:#x} return",
        m = r.tproxy_mark
    );
    let _ = writeln!(
        s,
        "\t\tct mark {m:#x} meta mark set {m:#x}",
        m = r.tproxy_mark
    );
    let _ = writeln!(s, "\t}}");
}

fn rule(s: &mut String, text: &str) {
    let _ = writeln!(s, "\t\t{text}");
}

fn ports_rule(s: &mut String, selector: &str, ports: &[u16]) {
    if ports.is_empty() {
        return;
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let _ = writeln!(s, "\t\t{selector} {{ {} }} return", list.join(", "));
}

/// `ip saddr { ... } return` and `ip6 saddr { ... } return`, for the networks of each
/// family (a set may not mix them).
fn cidr_rules(s: &mut String, field: &str, cidrs: &[IpNet]) {
    let v4: Vec<String> = cidrs
        .iter()
        .filter(|c| matches!(c, IpNet::V4(_)))
        .map(|c| c.trunc().to_string())
        .collect();
    let v6: Vec<String> = cidrs
        .iter()
        .filter(|c| matches!(c, IpNet::V6(_)))
        .map(|c| c.trunc().to_string())
        .collect();
    if !v4.is_empty() {
        let _ = writeln!(s, "\t\tip {field} {{ {} }} return", v4.join(", "));
    }
    if !v6.is_empty() {
        let _ = writeln!(s, "\t\tip6 {field} {{ {} }} return", v6.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::defaults;
    use super::*;

    #[test]
    fn default_ruleset_captures_both_directions_and_spares_the_proxy_and_loopback() {
        let expected = "\
table inet meshwork
delete table inet meshwork
table inet meshwork {
\tchain inbound {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tmeta l4proto != tcp return
\t\tiifname \"lo\" return
\t\tmeta l4proto tcp redirect to :15006
\t}
\tchain outbound {
\t\ttype nat hook output priority -100; policy accept;
\t\tmeta l4proto != tcp return
\t\toifname \"lo\" return
\t\tmeta skuid 1337 return
\t\tmeta skgid 1337 return
\t\tip daddr 127.0.0.0/8 return
\t\tip6 daddr ::1 return
\t\tmeta l4proto tcp redirect to :15001
\t}
}
";
        assert_eq!(ruleset(&defaults()), expected);
    }

    #[test]
    fn skipped_ports_and_networks_return_before_the_capture_per_family() {
        let mut r = defaults();
        r.outbound_skip_ports = vec![3306, 5432];
        r.outbound_skip_cidrs = vec!["10.96.0.1/12".parse().unwrap(), "fd00::/8".parse().unwrap()];
        r.inbound_skip_ports = vec![4191];
        r.inbound_skip_cidrs = vec!["192.168.0.0/16".parse().unwrap()];
        let text = ruleset(&r);
        let outbound = text.split("chain outbound").nth(1).unwrap();
        // Host bits are cleared: nft refuses a prefix with them set.
        for line in [
            "tcp dport { 3306, 5432 } return",
            "ip daddr { 10.96.0.0/12 } return",
            "ip6 daddr { fd00::/8 } return",
        ] {
            let at = outbound
                .find(line)
                .unwrap_or_else(|| panic!("{line} in {outbound}"));
            assert!(at < outbound.find("redirect").unwrap());
        }
        let inbound = text.split("chain outbound").next().unwrap();
        assert!(inbound.contains("tcp dport { 4191 } return"), "{inbound}");
        assert!(
            inbound.contains("ip saddr { 192.168.0.0/16 } return"),
            "{inbound}"
        );
        assert!(!inbound.contains("ip6 saddr"), "no empty set: {inbound}");
    }

    #[test]
    fn tproxy_mode_diverts_inbound_and_routes_the_apps_replies_back() {
        let mut r = defaults();
        r.mode = InterceptMode::Tproxy;
        let text = ruleset(&r);
        assert!(
            text.contains("type filter hook prerouting priority mangle;"),
            "{text}"
        );
        assert!(text.contains("meta l4proto tcp tproxy to :15006 meta mark set 0x539 accept"));
        assert!(!text.contains("redirect to :15006"), "{text}");
        assert!(
            text.contains("meta mark 0x539 ct mark set 0x539 return"),
            "{text}"
        );
        assert!(text.contains("ct mark 0x539 meta mark set 0x539"), "{text}");
        // Outbound is still a redirect: TPROXY only exists before routing.
        assert!(
            text.contains("meta l4proto tcp redirect to :15001"),
            "{text}"
        );
    }
}
