//! Kubernetes Service ports as cluster names: `NAME.NAMESPACE.svc:PORT`, the name the
//! control plane gives the cluster it makes of each port of each Service (and the value
//! of a cluster's `discovery.kubernetes`).

use std::fmt;

/// One port of one Service.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(into = "String")]
pub struct ServicePort {
    pub name: String,
    pub namespace: String,
    pub port: u16,
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.svc:{}", self.name, self.namespace, self.port)
    }
}

impl From<ServicePort> for String {
    fn from(s: ServicePort) -> String {
        s.to_string()
    }
}

/// Parses `NAME.NAMESPACE.svc:PORT`; NAME and NAMESPACE are DNS labels as Kubernetes
/// requires of Service and namespace names (RFC 1123: lowercase letters, digits and
/// `-`, starting and ending with a letter or digit, at most 63 characters).
pub fn parse_service_port(text: &str) -> Result<ServicePort, String> {
    let shape = "expected NAME.NAMESPACE.svc:PORT (a Service port, e.g. web.default.svc:80)";
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: {shape}"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{text:?}: the port must be 1 to 65535"))?;
    let mut labels = host.split('.');
    let (Some(name), Some(namespace), Some("svc"), None) =
        (labels.next(), labels.next(), labels.next(), labels.next())
    else {
        return Err(format!("{text:?}: {shape}"));
    };
    for (what, label) in [("name", name), ("namespace", namespace)] {
        if !is_dns_label(label) {
            return Err(format!(
                "{text:?}: the {what} {label:?} is not a DNS label (lowercase letters, digits and '-', at most 63)"
            ));
        }
    }
    Ok(ServicePort {
        name: name.to_string(),
        namespace: namespace.to_string(),
        port,
    })
}

/// An RFC 1123 label, as Kubernetes checks Service and namespace names.
pub fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_port_round_trips() {
        let parsed = parse_service_port("web.default.svc:8080").expect("valid");
        assert_eq!(parsed.name, "web");
        assert_eq!(parsed.namespace, "default");
        assert_eq!(parsed.port, 8080);
        assert_eq!(parsed.to_string(), "web.default.svc:8080");
    }

    #[test]
    fn malformed_service_ports_are_refused_with_the_reason() {
        for (text, expected) in [
            ("web.default:80", "expected NAME.NAMESPACE.svc:PORT"),
            ("web.default.svc", "expected NAME.NAMESPACE.svc:PORT"),
            (
                "web.default.svc.cluster.local:80",
                "expected NAME.NAMESPACE.svc:PORT",
            ),
            ("web.default.svc:0", "the port must be 1 to 65535"),
            ("web.default.svc:70000", "the port must be 1 to 65535"),
            ("Web.default.svc:80", "the name \"Web\" is not a DNS label"),
            ("web.-x.svc:80", "the namespace \"-x\" is not a DNS label"),
            ("web..svc:80", "the namespace \"\" is not a DNS label"),
        ] {
            let error = parse_service_port(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_label(&"a".repeat(63)));
    }
}
