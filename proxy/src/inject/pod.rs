//! Injecting one pod (a Pod's or a template's `metadata` and `spec`): what an earlier
//! injection added is taken out first, then added again from the current options, so
//! injecting twice gives the same pod.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value};

use super::InjectOptions;
use super::probes::{self, InvalidProbePort};
use super::sidecar::{
    ADMIN_PORT, CONFIG_VOLUME, IDENTITY_VOLUME, INIT_CONTAINER, PROXY_CONTAINER, STATE_VOLUME,
    SidecarSpec, VALIDATE_CONTAINER,
};

/// Set on the pod by `inject`: an injected pod is re-injected, not injected twice.
pub const INJECTED_ANNOTATION: &str = "meshwork.io/injected";
/// `meshwork.io/inject: disabled` on a pod keeps `inject` away from it.
pub const INJECT_ANNOTATION: &str = "meshwork.io/inject";
/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Time the pod's grace period keeps after the proxy's drain deadline: for the proxy to
/// close what is left at the deadline and exit before the kubelet's SIGKILL.
pub const EXIT_MARGIN: Duration = Duration::from_secs(5);

/// The pod ports the sidecar itself listens on, in the pod's one network namespace.
const SIDECAR_PORTS: [u16; 3] = [
    ADMIN_PORT,
    crate::init::DEFAULT_OUTBOUND_PORT,
    crate::init::DEFAULT_INBOUND_PORT,
];
const SIDECAR_NAMES: [&str; 3] = [INIT_CONTAINER, VALIDATE_CONTAINER, PROXY_CONTAINER];
const SIDECAR_VOLUMES: [&str; 3] = [CONFIG_VOLUME, IDENTITY_VOLUME, STATE_VOLUME];

/// What happened to a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodOutcome {
    Injected {
        /// The kubelet's ports, left out of interception: they reach the app without the
        /// proxy, from any client.
        bypassed_ports: BTreeSet<u16>,
    },
    /// `meshwork.io/inject: disabled`.
    Disabled,
}

/// Why a pod cannot be injected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidPod {
    #[error("`{0}` is missing or not a mapping")]
    NoSpec(&'static str),
    #[error("the pod has no containers (`spec.containers` is missing or empty)")]
    NoContainers,
    #[error("`spec.{0}` is not a list")]
    NotAList(&'static str),
    #[error(
        "the pod uses `hostNetwork: true`: it shares the node's network namespace, and \
         `meshwork init` would redirect the node's own traffic; such pods cannot have a sidecar"
    )]
    HostNetwork,
    #[error(
        "the pod already has a {what} named {name:?} that `meshwork inject` did not add \
         (no {INJECTED_ANNOTATION} annotation); rename it"
    )]
    NameTaken { what: &'static str, name: String },
    #[error(
        "container {container:?} uses port {port}, which the sidecar listens on in the pod \
         (admin 4191, outbound 15001, inbound 15006)"
    )]
    PortTaken { container: String, port: u16 },
    #[error(
        "container {container:?} runs with {field} {id}, the proxy's: `meshwork init` never \
         captures its traffic, so it would bypass the proxy unseen; run it as another user"
    )]
    RunsAsProxy {
        container: String,
        field: &'static str,
        id: u64,
    },
    #[error(transparent)]
    ProbePort(#[from] InvalidProbePort),
    #[error(
        "terminationGracePeriodSeconds is {0}: it leaves the proxy no time to drain; set it \
         to at least {min} or pass --drain-timeout", min = EXIT_MARGIN.as_secs() + 1
    )]
    GraceTooShort(u64),
}

/// Injects the pod whose `metadata` and `spec` are in `pod`.
///
/// # Errors
/// See [`InvalidPod`].
pub fn inject(pod: &mut Value, options: &InjectOptions) -> Result<PodOutcome, InvalidPod> {
    let pod = pod.as_object_mut().ok_or(InvalidPod::NoSpec("template"))?;
    let annotations = pod
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or(InvalidPod::NoSpec("metadata"))?
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or(InvalidPod::NoSpec("metadata.annotations"))?;
    if annotations.get(INJECT_ANNOTATION).and_then(Value::as_str) == Some("disabled") {
        return Ok(PodOutcome::Disabled);
    }
    let injected_before = annotations.contains_key(INJECTED_ANNOTATION);
    annotations.insert(INJECTED_ANNOTATION.into(), Value::String("true".into()));

    let spec = pod
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or(InvalidPod::NoSpec("spec"))?;
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Err(InvalidPod::HostNetwork);
    }
    if spec
        .get("containers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Err(InvalidPod::NoContainers);
    }
    remove_or_refuse(
        spec,
        "initContainers",
        "container",
        &SIDECAR_NAMES,
        injected_before,
    )?;
    remove_or_refuse(
        spec,
        "containers",
        "container",
        &SIDECAR_NAMES,
        injected_before,
    )?;
    remove_or_refuse(spec, "volumes", "volume", &SIDECAR_VOLUMES, injected_before)?;

    refuse_proxy_identity(spec)?;
    let kubelet_ports = kubelet_ports(spec)?;
    let (drain_timeout, grace) = drain_and_grace(spec, options.drain_timeout)?;
    let sidecar = SidecarSpec {
        image: options.image.clone(),
        config_map: options.config_map.clone(),
        identity_secret: options.identity_secret.clone().unwrap_or_else(|| {
            let account = ["serviceAccountName", "serviceAccount"]
                .iter()
                .find_map(|k| spec.get(*k)?.as_str().filter(|s| !s.is_empty()))
                .unwrap_or("default");
            format!("meshwork-identity-{account}")
        }),
        inbound_skip_ports: std::iter::once(ADMIN_PORT)
            .chain(kubelet_ports.iter().copied())
            .collect(),
        drain_timeout,
    };
    spec.insert("terminationGracePeriodSeconds".into(), grace.into());
    let init = list(spec, "initContainers")?;
    // First, so that the app's own init containers already run meshed.
    init.splice(
        0..0,
        [
            sidecar.init_container(),
            sidecar.validate_container(),
            sidecar.proxy_container(),
        ],
    );
    list(spec, "volumes")?.extend(sidecar.volumes());
    Ok(PodOutcome::Injected {
        bypassed_ports: kubelet_ports,
    })
}

/// The list at `spec.<key>`, created empty when absent.
fn list<'a>(
    spec: &'a mut Map<String, Value>,
    key: &'static str,
) -> Result<&'a mut Vec<Value>, InvalidPod> {
    let value = spec.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if value.is_null() {
        *value = Value::Array(Vec::new());
    }
    value.as_array_mut().ok_or(InvalidPod::NotAList(key))
}

/// Takes out the entries of `spec.<key>` named like ours when the pod was injected
/// before; refuses them when it was not (they are someone else's). An emptied list stays,
/// so re-adding puts everything where it was.
fn remove_or_refuse(
    spec: &mut Map<String, Value>,
    key: &'static str,
    what: &'static str,
    ours: &[&str],
    injected_before: bool,
) -> Result<(), InvalidPod> {
    let Some(value) = spec.get_mut(key).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let items = value.as_array_mut().ok_or(InvalidPod::NotAList(key))?;
    let is_ours = |item: &Value| {
        item.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| ours.contains(&n))
    };
    if injected_before {
        items.retain(|item| !is_ours(item));
    } else if let Some(taken) = items.iter().find(|item| is_ours(item)) {
        return Err(InvalidPod::NameTaken {
            what,
            name: taken["name"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(())
}

/// The ports the kubelet connects to in the app's containers (and its own native
/// sidecars). A container declaring or probing a port the sidecar listens on is refused.
fn kubelet_ports(spec: &Map<String, Value>) -> Result<BTreeSet<u16>, InvalidPod> {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k)?.as_array())
        .flatten();
    let mut kubelet = BTreeSet::new();
    for container in containers {
        let name = container.get("name").and_then(Value::as_str).unwrap_or("");
        let own_ports = probes::declared_ports(container);
        let probed = probes::kubelet_ports(container)?;
        if let Some(&port) = own_ports.union(&probed).find(|p| SIDECAR_PORTS.contains(p)) {
            return Err(InvalidPod::PortTaken {
                container: name.to_owned(),
                port,
            });
        }
        kubelet.extend(probed);
    }
    Ok(kubelet)
}

/// Refuses an app container whose UID or GID (its own, or the pod's default) is the
/// proxy's: the interception rules exempt that identity, so the app's connections would
/// silently skip the proxy — no mTLS, no policy. (An image whose own `USER` is 1337 cannot
/// be seen from here; docs/kubernetes.md says so.)
fn refuse_proxy_identity(spec: &Map<String, Value>) -> Result<(), InvalidPod> {
    let proxy_id = u64::from(crate::init::DEFAULT_PROXY_ID);
    let pod_context = spec.get("securityContext");
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k)?.as_array())
        .flatten();
    for container in containers {
        for field in ["runAsUser", "runAsGroup"] {
            let id = container
                .pointer(&format!("/securityContext/{field}"))
                .or_else(|| pod_context?.get(field))
                .and_then(Value::as_u64);
            if id == Some(proxy_id) {
                return Err(InvalidPod::RunsAsProxy {
                    container: container["name"].as_str().unwrap_or_default().to_owned(),
                    field,
                    id: proxy_id,
                });
            }
        }
    }
    Ok(())
}

/// The proxy's drain deadline and the pod's grace period, made consistent: the grace
/// period covers the drain deadline plus [`EXIT_MARGIN`]. Without `--drain-timeout`, the
/// pod's grace period (default 30 s) sets it; with it, the grace period grows if needed.
fn drain_and_grace(
    spec: &Map<String, Value>,
    drain_timeout: Option<Duration>,
) -> Result<(Duration, u64), InvalidPod> {
    let grace = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_GRACE_PERIOD.as_secs());
    match drain_timeout {
        Some(drain) => {
            let needed =
                drain.as_secs() + u64::from(drain.subsec_nanos() > 0) + EXIT_MARGIN.as_secs();
            Ok((drain, grace.max(needed)))
        }
        None if grace > EXIT_MARGIN.as_secs() => {
            Ok((Duration::from_secs(grace - EXIT_MARGIN.as_secs()), grace))
        }
        None => Err(InvalidPod::GraceTooShort(grace)),
    }
}
