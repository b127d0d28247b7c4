//! Which Kubernetes resources carry a pod, and where: a Pod is one, the workload
//! controllers hold a pod template (a CronJob one level deeper, in its job template).

use serde_json::Value;

/// A resource kind `inject` knows how to reach the pod of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    /// The kind of a resource, when it is one of the workloads (checked by API group too:
    /// a custom resource that happens to be called `Deployment` is not one).
    pub fn of(resource: &Value) -> Option<Self> {
        let kind = resource.get("kind")?.as_str()?;
        let api_version = resource.get("apiVersion")?.as_str()?;
        let (expected_api, workload) = match kind {
            "Pod" => ("v1", Self::Pod),
            "Deployment" => ("apps/v1", Self::Deployment),
            "StatefulSet" => ("apps/v1", Self::StatefulSet),
            "DaemonSet" => ("apps/v1", Self::DaemonSet),
            "ReplicaSet" => ("apps/v1", Self::ReplicaSet),
            "Job" => ("batch/v1", Self::Job),
            "CronJob" => ("batch/v1", Self::CronJob),
            _ => return None,
        };
        (api_version == expected_api).then_some(workload)
    }

    /// The JSON pointer of the object holding the pod's `metadata` and `spec`.
    pub fn pod_pointer(self) -> &'static str {
        match self {
            Self::Pod => "",
            Self::Deployment
            | Self::StatefulSet
            | Self::DaemonSet
            | Self::ReplicaSet
            | Self::Job => "/spec/template",
            Self::CronJob => "/spec/jobTemplate/spec/template",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workloads_are_recognized_by_kind_and_api_group() {
        let of =
            |api: &str, kind: &str| WorkloadKind::of(&json!({"apiVersion": api, "kind": kind}));
        assert_eq!(of("apps/v1", "Deployment"), Some(WorkloadKind::Deployment));
        assert_eq!(of("batch/v1", "CronJob"), Some(WorkloadKind::CronJob));
        assert_eq!(of("v1", "Pod"), Some(WorkloadKind::Pod));
        assert_eq!(of("example.com/v1", "Deployment"), None);
        assert_eq!(of("v1", "Service"), None);
        assert_eq!(WorkloadKind::of(&json!({"kind": "Pod"})), None);
    }
}
