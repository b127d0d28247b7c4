//! The pod ports the kubelet itself connects to: the app's probes and lifecycle hooks.
//!
//! The kubelet probes from the node to the pod's IP, so with interception on its
//! connections would be redirected to the sidecar's inbound port like any other client's;
//! under a `strict` mesh or a deny-by-default authorization they would be refused and the
//! app never become ready. `inject` lists these ports so that `meshwork init
//! --inbound-skip-ports` lets them through untouched (see docs/kubernetes.md for why this
//! rather than Istio's rewrite of probes onto the agent).

use std::collections::BTreeSet;

use serde_json::Value;

/// A probe or hook port that cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidProbePort {
    #[error(
        "container {container:?}: {field}.port names the port {name:?}, which the container \
         does not declare in `ports`"
    )]
    UnknownName {
        container: String,
        field: String,
        name: String,
    },
    #[error(
        "container {container:?}: {field}.port is {value}, not a port (1-65535) or a port name"
    )]
    NotAPort {
        container: String,
        field: String,
        value: String,
    },
}

/// Where in a container the kubelet connects: the three probes and the two hooks.
const HANDLERS: [&str; 5] = [
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle/postStart",
    "lifecycle/preStop",
];

/// The ways a handler reaches the pod over TCP (`exec` and `sleep` do not).
const NETWORK_ACTIONS: [&str; 3] = ["httpGet", "tcpSocket", "grpc"];

/// The ports the kubelet connects to in `container`, named ports resolved against the
/// container's own `ports`. A handler with a `host` goes elsewhere and is left out.
///
/// # Errors
/// A port name the container does not declare, or a value that is not a port.
pub fn kubelet_ports(container: &Value) -> Result<BTreeSet<u16>, InvalidProbePort> {
    let name = container.get("name").and_then(Value::as_str).unwrap_or("");
    let mut ports = BTreeSet::new();
    for handler in HANDLERS {
        let Some(handler_value) = container.pointer(&format!("/{handler}")) else {
            continue;
        };
        for action in NETWORK_ACTIONS {
            let Some(target) = handler_value.get(action) else {
                continue;
            };
            if target
                .get("host")
                .and_then(Value::as_str)
                .is_some_and(|h| !h.is_empty())
            {
                continue;
            }
            let field = format!("{}.{action}", handler.replace('/', "."));
            if let Some(port) = target.get("port") {
                ports.insert(resolve(container, name, &field, port)?);
            }
        }
    }
    Ok(ports)
}

/// The ports a container declares (`ports[].containerPort`).
pub fn declared_ports(container: &Value) -> BTreeSet<u16> {
    container
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("containerPort")?.as_u64()?.try_into().ok())
        .collect()
}

fn resolve(
    container: &Value,
    name: &str,
    field: &str,
    port: &Value,
) -> Result<u16, InvalidProbePort> {
    let not_a_port = || InvalidProbePort::NotAPort {
        container: name.to_owned(),
        field: field.to_owned(),
        value: port.to_string(),
    };
    match port {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n != 0)
            .ok_or_else(not_a_port),
        Value::String(port_name) if !port_name.is_empty() => container
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(port_name))
            .and_then(|p| p.get("containerPort")?.as_u64()?.try_into().ok())
            .filter(|&n: &u16| n != 0)
            .ok_or_else(|| InvalidProbePort::UnknownName {
                container: name.to_owned(),
                field: field.to_owned(),
                name: port_name.clone(),
            }),
        _ => Err(not_a_port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_probe_and_hook_port_is_found_and_names_are_resolved() {
        let container = json!({
            "name": "app",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9090}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
            "readinessProbe": {"tcpSocket": {"port": 8081}},
            "startupProbe": {"grpc": {"port": 9000}},
            "lifecycle": {
                "preStop": {"httpGet": {"path": "/quit", "port": "admin"}},
                "postStart": {"exec": {"command": ["true"]}},
            },
        });
        assert_eq!(
            kubelet_ports(&container)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [8080, 8081, 9000, 9090]
        );
        assert_eq!(
            declared_ports(&container).into_iter().collect::<Vec<_>>(),
            [8080, 9090]
        );
    }

    #[test]
    fn handlers_that_go_to_another_host_or_run_a_command_are_left_out() {
        let container = json!({
            "name": "app",
            "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
            "readinessProbe": {"exec": {"command": ["check"]}},
        });
        assert!(kubelet_ports(&container).unwrap().is_empty());
    }

    #[test]
    fn unknown_names_and_non_ports_are_refused_naming_the_field() {
        let container = json!({"name": "app", "livenessProbe": {"httpGet": {"port": "web"}}});
        assert_eq!(
            kubelet_ports(&container).unwrap_err().to_string(),
            "container \"app\": livenessProbe.httpGet.port names the port \"web\", which the \
             container does not declare in `ports`"
        );
        for bad in [json!(0), json!(70000), json!(-1), json!(""), json!(true)] {
            let container =
                json!({"name": "app", "lifecycle": {"preStop": {"tcpSocket": {"port": bad}}}});
            let err = kubelet_ports(&container).unwrap_err();
            assert!(
                matches!(&err, InvalidProbePort::NotAPort { field, .. } if field == "lifecycle.preStop.tcpSocket"),
                "{err}"
            );
        }
    }
}
