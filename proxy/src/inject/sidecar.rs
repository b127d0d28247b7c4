//! What `inject` adds to a pod: the `meshwork init` init container, the proxy as a native
//! sidecar, and the volumes of its config and identity. The same settings, with a comment
//! on each, are in deploy/kubernetes/example-app.yaml; a test checks that the two agree.

use std::time::Duration;

use serde_json::{Value, json};

/// The init container that programs the pod's interception.
pub const INIT_CONTAINER: &str = "meshwork-init";
/// The init container that proves the interception works (`meshwork init --validate`)
/// before anything else of the pod runs.
pub const VALIDATE_CONTAINER: &str = "meshwork-validate";
/// The proxy's container: an init container with `restartPolicy: Always` (a native
/// sidecar), started before the app and stopped after it.
pub const PROXY_CONTAINER: &str = "meshwork-proxy";
/// The user `meshwork init --validate` runs as: `nobody`, anything but the proxy's UID.
pub const VALIDATE_UID: u32 = 65534;
/// The volume of the proxy's config (a ConfigMap with a `config.yaml` key).
pub const CONFIG_VOLUME: &str = "meshwork-config";
/// The volume of the proxy's identity (a Secret with `cert.pem`, `key.pem`, `ca.pem`).
pub const IDENTITY_VOLUME: &str = "meshwork-identity";
/// The volume where the proxy keeps its last known good control-plane snapshot (an
/// `emptyDir`: the root filesystem is read-only, and the snapshot must outlive a restart
/// of the proxy's container, not of the pod).
pub const STATE_VOLUME: &str = "meshwork-state";
/// The proxy's admin port in a pod: `/ready`, `/live`, `POST /drain`. The sidecar's config
/// binds its admin to `0.0.0.0:4191` so the kubelet can probe it.
pub const ADMIN_PORT: u16 = 4191;
/// Where the config volume is mounted; the proxy runs on `config.yaml` in it.
pub const CONFIG_DIR: &str = "/etc/meshwork";
/// Where the identity volume is mounted (the `identity` section of the config names
/// `cert.pem`, `key.pem` and `ca.pem` in it).
pub const IDENTITY_DIR: &str = "/var/run/meshwork/identity";

/// What the added containers and volumes are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarSpec {
    pub image: String,
    pub config_map: String,
    pub identity_secret: String,
    /// Pod ports `meshwork init` leaves alone (the admin port and the kubelet's ports).
    pub inbound_skip_ports: Vec<u16>,
    pub drain_timeout: Duration,
}

impl SidecarSpec {
    /// `meshwork init`, run as root with NET_ADMIN and nothing else.
    pub fn init_container(&self) -> Value {
        let skip = self
            .inbound_skip_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        json!({
            "name": INIT_CONTAINER,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["init", "--inbound-skip-ports", skip],
            "securityContext": {
                "runAsUser": 0,
                "runAsGroup": 0,
                "runAsNonRoot": false,
                "privileged": false,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "resources": one_shot_resources(),
        })
    }

    /// `meshwork init --validate`, as a user other than the proxy's (whose connections are
    /// never captured): a pod whose rules are missing fails here instead of starting an
    /// app that believes it is meshed. It runs before the proxy, whose outbound port it
    /// briefly listens on.
    pub fn validate_container(&self) -> Value {
        json!({
            "name": VALIDATE_CONTAINER,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["init", "--validate"],
            "securityContext": unprivileged(VALIDATE_UID),
            "resources": one_shot_resources(),
        })
    }

    /// The proxy, as a native sidecar.
    pub fn proxy_container(&self) -> Value {
        let admin = |path: &str| json!({"path": path, "port": ADMIN_PORT});
        json!({
            "name": PROXY_CONTAINER,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "restartPolicy": "Always",
            "args": [
                "run", "-c", format!("{CONFIG_DIR}/config.yaml"),
                "--drain-timeout", duration_arg(self.drain_timeout),
            ],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ],
            "ports": [{"name": "meshwork-admin", "containerPort": ADMIN_PORT}],
            "startupProbe": {
                "httpGet": admin("/ready"),
                "periodSeconds": 1,
                "failureThreshold": 120,
            },
            "readinessProbe": {"httpGet": admin("/ready"), "periodSeconds": 5},
            "livenessProbe": {"httpGet": admin("/live"), "periodSeconds": 10, "failureThreshold": 3},
            "lifecycle": {"preStop": {"exec": {"command": ["meshwork", "drain", "--admin", format!("127.0.0.1:{ADMIN_PORT}")]}}},
            "securityContext": unprivileged(crate::init::DEFAULT_PROXY_ID),
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"},
            },
            "volumeMounts": [
                {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": true},
                {"name": IDENTITY_VOLUME, "mountPath": IDENTITY_DIR, "readOnly": true},
                {"name": STATE_VOLUME, "mountPath": meshwork_config::model::DEFAULT_STATE_DIR},
            ],
        })
    }

    /// The config, identity and state volumes.
    pub fn volumes(&self) -> [Value; 3] {
        [
            json!({"name": CONFIG_VOLUME, "configMap": {"name": self.config_map}}),
            json!({"name": IDENTITY_VOLUME, "secret": {"secretName": self.identity_secret}}),
            json!({"name": STATE_VOLUME, "emptyDir": {}}),
        ]
    }
}

/// A container running as `uid` (and the same GID) with no capability, no way to gain
/// one, and a read-only root filesystem.
fn unprivileged(uid: u32) -> Value {
    json!({
        "runAsUser": uid,
        "runAsGroup": uid,
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The init containers run for a moment and hold almost nothing.
fn one_shot_resources() -> Value {
    json!({
        "requests": {"cpu": "10m", "memory": "16Mi"},
        "limits": {"memory": "64Mi"},
    })
}

/// A duration as `meshwork run --drain-timeout` reads it: whole seconds as `25s`.
fn duration_arg(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_timeouts_are_written_as_run_reads_them() {
        for (duration, text) in [
            (Duration::from_secs(25), "25s"),
            (Duration::from_millis(1500), "1500ms"),
        ] {
            assert_eq!(duration_arg(duration), text);
            assert_eq!(meshwork_config::units::parse_duration(text), Ok(duration));
        }
    }
}
