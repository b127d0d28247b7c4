//! `inject` over whole YAML streams: what is added, idempotence, every workload kind and
//! every refusal.

use super::*;
use serde_json::json;

fn options() -> InjectOptions {
    InjectOptions {
        image: "meshwork:test".into(),
        config_map: DEFAULT_CONFIG_MAP.into(),
        identity_secret: None,
        drain_timeout: None,
    }
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      serviceAccountName: web
      containers:
        - name: web
          image: example/web:1
          ports: [{name: http, containerPort: 8080}]
          livenessProbe: {httpGet: {path: /healthz, port: 8081}}
";

fn first(output: &str) -> Value {
    yaml::parse_documents(output).unwrap().remove(0).unwrap()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_deployment_gets_init_validate_and_the_native_sidecar_first_and_its_volumes() {
    let injected = inject(DEPLOYMENT, &options()).unwrap();
    let doc = first(&injected.yaml);
    let pod = &doc["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"][INJECTED_ANNOTATION], "true");
    let spec = &pod["spec"];
    assert_eq!(
        names(&spec["initContainers"]),
        [INIT_CONTAINER, VALIDATE_CONTAINER, PROXY_CONTAINER]
    );
    assert_eq!(names(&spec["containers"]), ["web"], "the app is untouched");
    let init = &spec["initContainers"][0];
    assert_eq!(
        init["args"],
        json!(["init", "--inbound-skip-ports", "4191,8081"])
    );
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN"])
    );
    assert_eq!(init["securityContext"]["privileged"], false);
    let proxy = &spec["initContainers"][2];
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337);
    assert_eq!(
        proxy["startupProbe"]["httpGet"],
        json!({"path": "/ready", "port": 4191})
    );
    assert_eq!(
        proxy["livenessProbe"]["httpGet"],
        json!({"path": "/live", "port": 4191})
    );
    assert_eq!(
        proxy["args"],
        json!([
            "run",
            "-c",
            "/etc/meshwork/config.yaml",
            "--drain-timeout",
            "25s"
        ])
    );
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(
        spec["volumes"],
        json!([
            {"name": CONFIG_VOLUME, "configMap": {"name": "meshwork-sidecar"}},
            {"name": IDENTITY_VOLUME, "secret": {"secretName": "meshwork-identity-web"}},
            {"name": STATE_VOLUME, "emptyDir": {}},
        ])
    );
    let at = Location {
        document: 1,
        item: None,
    };
    let resource = "Deployment \"web\"".to_owned();
    assert_eq!(
        injected.notes,
        [
            Note {
                at,
                resource: resource.clone(),
                what: NoteKind::Injected,
            },
            Note {
                at,
                resource,
                what: NoteKind::ProbePortsBypassed(vec![8081]),
            },
        ]
    );
}

#[test]
fn injecting_twice_gives_the_same_bytes_and_new_options_replace_old_ones() {
    let once = inject(DEPLOYMENT, &options()).unwrap().yaml;
    let twice = inject(&once, &options()).unwrap().yaml;
    assert_eq!(once, twice);
    let mut newer = options();
    newer.image = "meshwork:next".into();
    let updated = first(&inject(&once, &newer).unwrap().yaml);
    let init = &updated["spec"]["template"]["spec"]["initContainers"];
    assert_eq!(init.as_array().unwrap().len(), 3, "replaced, not added");
    assert!(
        init.as_array()
            .unwrap()
            .iter()
            .all(|c| c["image"] == "meshwork:next")
    );
}

#[test]
fn the_app_keeps_its_own_init_containers_and_volumes_after_the_sidecar() {
    let input = "\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers: [{name: migrate, image: m}]
  containers: [{name: app, image: a}]
  volumes: [{name: data, emptyDir: {}}]
";
    let once = inject(input, &options()).unwrap().yaml;
    let doc = first(&once);
    assert_eq!(
        names(&doc["spec"]["initContainers"]),
        [
            INIT_CONTAINER,
            VALIDATE_CONTAINER,
            PROXY_CONTAINER,
            "migrate"
        ]
    );
    assert_eq!(
        names(&doc["spec"]["volumes"]),
        ["data", CONFIG_VOLUME, IDENTITY_VOLUME, STATE_VOLUME]
    );
    assert_eq!(inject(&once, &options()).unwrap().yaml, once);
}

#[test]
fn every_workload_kind_is_injected_where_its_pod_is() {
    let pod_spec = json!({"containers": [{"name": "app", "image": "a"}]});
    let template = json!({"spec": pod_spec});
    let cases = [
        ("v1", "Pod", json!({"spec": pod_spec}), "/spec"),
        (
            "apps/v1",
            "Deployment",
            json!({"spec": {"template": template}}),
            "/spec/template/spec",
        ),
        (
            "apps/v1",
            "StatefulSet",
            json!({"spec": {"template": template}}),
            "/spec/template/spec",
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"spec": {"template": template}}),
            "/spec/template/spec",
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"spec": {"template": template}}),
            "/spec/template/spec",
        ),
        (
            "batch/v1",
            "Job",
            json!({"spec": {"template": template}}),
            "/spec/template/spec",
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
            "/spec/jobTemplate/spec/template/spec",
        ),
    ];
    for (api, kind, mut body, spec_at) in cases {
        body["apiVersion"] = api.into();
        body["kind"] = kind.into();
        body["metadata"] = json!({"name": "x"});
        let out = inject(&yaml::emit_documents(&[body]), &options()).unwrap();
        let doc = first(&out.yaml);
        let spec = doc
            .pointer(spec_at)
            .unwrap_or_else(|| panic!("{kind}: {}", out.yaml));
        assert_eq!(spec["initContainers"][2]["name"], PROXY_CONTAINER, "{kind}");
        assert_eq!(spec["volumes"][0]["name"], CONFIG_VOLUME, "{kind}");
    }
}

#[test]
fn other_documents_pass_through_and_list_items_are_injected() {
    let input = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n---\n\
         apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {{name: c}}\n\
           \x20 - apiVersion: v1\n    kind: Pod\n    metadata: {{name: p}}\n    spec: {{containers: [{{name: a, image: a}}]}}\n---\n{DEPLOYMENT}"
    );
    let out = inject(&input, &options()).unwrap();
    let docs: Vec<Value> = yaml::parse_documents(&out.yaml)
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0], first(&input), "the Service is unchanged");
    assert_eq!(
        docs[1]["items"][0],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    );
    assert_eq!(
        docs[1]["items"][1]["spec"]["initContainers"][2]["name"],
        PROXY_CONTAINER
    );
    let notes: Vec<String> = out.notes.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "document 1: Service \"web\": not a workload, unchanged",
            "document 2, items[0]: ConfigMap \"c\": not a workload, unchanged",
            "document 2, items[1]: Pod \"p\": injected",
            "document 3: Deployment \"web\": injected",
            "document 3: Deployment \"web\": port(s) 8081 of the kubelet's probes and hooks \
             are left out of interception, so every client reaches them without the proxy (no \
             mTLS, no authorization): serve probes on a port that serves nothing else",
        ]
    );
}

#[test]
fn probe_ports_are_skipped_and_named_in_a_note() {
    let input = "\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: app
      image: a
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /ready, port: http}}
      startupProbe: {tcpSocket: {port: 9000}}
";
    let out = inject(input, &options()).unwrap();
    let doc = first(&out.yaml);
    assert_eq!(
        doc["spec"]["initContainers"][0]["args"][2],
        "4191,8080,9000"
    );
    assert_eq!(
        out.notes[1].to_string(),
        "document 1: Pod \"p\": port(s) 8080, 9000 of the kubelet's probes and hooks are \
         left out of interception, so every client reaches them without the proxy (no mTLS, \
         no authorization): serve probes on a port that serves nothing else"
    );
}

#[test]
fn the_grace_period_covers_the_drain_deadline_plus_the_exit_margin() {
    let with = |grace: Option<u64>, drain: Option<Duration>| {
        let mut spec = json!({"containers": [{"name": "a", "image": "a"}]});
        if let Some(g) = grace {
            spec["terminationGracePeriodSeconds"] = g.into();
        }
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
        let mut o = options();
        o.drain_timeout = drain;
        inject(&yaml::emit_documents(&[pod]), &o).map(|out| {
            let doc = first(&out.yaml);
            (
                doc["spec"]["terminationGracePeriodSeconds"]
                    .as_u64()
                    .unwrap(),
                doc["spec"]["initContainers"][2]["args"][4]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
    };
    assert_eq!(with(None, None).unwrap(), (30, "25s".into()));
    assert_eq!(with(Some(120), None).unwrap(), (120, "115s".into()));
    assert_eq!(
        with(Some(30), Some(Duration::from_secs(60))).unwrap(),
        (65, "60s".into())
    );
    assert_eq!(
        with(Some(30), Some(Duration::from_millis(2500))).unwrap(),
        (30, "2500ms".into())
    );
    assert_eq!(
        with(Some(3), Some(Duration::from_millis(1500))).unwrap(),
        (7, "1500ms".into())
    );
    let err = with(Some(5), None).unwrap_err();
    assert!(
        matches!(&err, InjectError::Pod { source, .. } if **source == InvalidPod::GraceTooShort(5)),
        "{err}"
    );
}

#[test]
fn disabled_pods_are_left_alone() {
    let input = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {meshwork.io/inject: disabled}\nspec: {containers: [{name: a, image: a}]}\n";
    let out = inject(input, &options()).unwrap();
    assert_eq!(first(&out.yaml), first(input));
    assert_eq!(out.notes[0].what, NoteKind::Disabled);
}

#[test]
fn bad_input_is_refused_naming_the_document_and_the_problem() {
    let pod = |spec: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\n"
        )
    };
    let cases = [
        ("kind: [\n".to_owned(), "line 2, column 1: not valid YAML"),
        (
            "apiVersion: v1\nkind: Service\n---\njust text\n".into(),
            "document 2: not a Kubernetes resource",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n".into(),
            "no workload in the input (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob in apps/v1, batch/v1 or v1); found: Service \"s\"",
        ),
        ("".into(), "found: nothing"),
        (
            pod("{containers: []}"),
            "document 2: Pod \"p\": the pod has no containers",
        ),
        (
            pod("{}"),
            "document 2: Pod \"p\": the pod has no containers",
        ),
        (
            pod("{hostNetwork: true, containers: [{name: a}]}"),
            "document 2: Pod \"p\": the pod uses `hostNetwork: true`",
        ),
        (
            pod("{containers: [{name: a, ports: [{containerPort: 15006}]}]}"),
            "container \"a\" uses port 15006, which the sidecar listens on",
        ),
        (
            pod("{containers: [{name: a, livenessProbe: {httpGet: {port: 4191}}}]}"),
            "container \"a\" uses port 4191",
        ),
        (
            pod("{containers: [{name: a, livenessProbe: {httpGet: {port: http}}}]}"),
            "livenessProbe.httpGet.port names the port \"http\"",
        ),
        (
            pod("{containers: [{name: a, securityContext: {runAsUser: 1337}}]}"),
            "container \"a\" runs with runAsUser 1337, the proxy's",
        ),
        (
            pod("{securityContext: {runAsGroup: 1337}, containers: [{name: a}]}"),
            "container \"a\" runs with runAsGroup 1337, the proxy's",
        ),
        (
            pod("{containers: [{name: meshwork-proxy}]}"),
            "already has a container named \"meshwork-proxy\" that `meshwork inject` did not add",
        ),
        (
            pod("{containers: [{name: a}], volumes: [{name: meshwork-config}]}"),
            "already has a volume named \"meshwork-config\"",
        ),
        (
            pod("{containers: [{name: a}], initContainers: {}}"),
            "`spec.initContainers` is not a list",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n".into(),
            "document 1: Deployment \"d\": no pod template at `spec.template`",
        ),
    ];
    for (input, expected) in cases {
        let err = inject(&input, &options()).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "input:\n{input}\nerror: {err}\nexpected: {expected}"
        );
    }
}
