//! deploy/kubernetes against the real tools: every manifest and every `meshwork inject`
//! output validated against the Kubernetes schemas of each version with native sidecars
//! (PyPI's `kubernetes-validate`, offline), every config they embed accepted by
//! `meshwork check` / `meshwork-control --check`, the commented example app equal to what
//! `inject` makes of its input, and `inject` idempotent and clear about bad input.
//!
//! The validator is found at `$MESHWORK_KUBERNETES_VALIDATE` or as `kubernetes-validate`
//! on PATH (`.ci/run` installs it in a venv); without it the validation test fails saying
//! what to install, unless `MESHWORK_SKIP_KUBERNETES_VALIDATE=1`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use meshwork_proxy::inject::yaml::parse_documents;
use meshwork_tests::{meshwork, meshwork_control_bin, run_program};
use serde_json::Value;

const VALIDATOR_ENV: &str = "MESHWORK_KUBERNETES_VALIDATE";
const SKIP_ENV: &str = "MESHWORK_SKIP_KUBERNETES_VALIDATE";
/// The version `.ci/run` installs; it bundles the schemas of Kubernetes 1.25 to 1.37.
const VALIDATOR_PACKAGE: &str = "kubernetes-validate==1.37.0";
/// Native sidecars (init containers with `restartPolicy: Always`) are on by default from
/// 1.29; every minor version from there to the newest the validator bundles.
const KUBERNETES_VERSIONS: std::ops::RangeInclusive<u32> = 29..=37;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The `*.yaml` files of `dir`, sorted; at least one.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yaml in {}", dir.display());
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_documents(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .flatten()
        .collect()
}

/// `meshwork inject -f FILE ARGS...`, which must succeed.
async fn inject(file: &Path, args: &[&str]) -> String {
    let mut all = vec![OsStr::new("inject"), OsStr::new("-f"), file.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    let output = meshwork(all).await;
    assert!(
        output.success(),
        "inject {}: {}",
        file.display(),
        output.describe()
    );
    output.stdout
}

/// The validator, or `None` when the skip variable says to do without it.
fn validator() -> Option<PathBuf> {
    let found = std::env::var_os(VALIDATOR_ENV)
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("kubernetes-validate"))
                    .find(|candidate| candidate.is_file())
            })
        });
    match found {
        Some(path) => {
            assert!(
                path.is_file(),
                "{VALIDATOR_ENV}={} is not a file",
                path.display()
            );
            Some(path)
        }
        None if std::env::var(SKIP_ENV).as_deref() == Ok("1") => {
            eprintln!("SKIPPED: kubernetes-validate not found; {SKIP_ENV}=1");
            None
        }
        None => panic!(
            "kubernetes-validate was not found (on PATH or at ${VALIDATOR_ENV}): install it \
             with `pip install {VALIDATOR_PACKAGE}` (`.ci/run` does, in a venv), or set \
             {SKIP_ENV}=1 to skip this test"
        ),
    }
}

#[tokio::test]
async fn manifests_and_injected_examples_validate_for_every_kubernetes_with_native_sidecars() {
    let Some(validator) = validator() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut files = yaml_files(&deploy_dir());
    for example in yaml_files(&deploy_dir().join("examples")) {
        let injected = out.path().join(example.file_name().unwrap());
        std::fs::write(&injected, inject(&example, &[]).await).unwrap();
        files.push(injected);
    }
    for minor in KUBERNETES_VERSIONS {
        let version = format!("1.{minor}.0");
        let mut args = vec![
            OsStr::new("--strict"),
            OsStr::new("--quiet"),
            OsStr::new("-k"),
            OsStr::new(&version),
        ];
        args.extend(files.iter().map(|f| f.as_os_str()));
        let output = run_program(&validator, None, args).await;
        assert!(
            output.success(),
            "Kubernetes {version}: {}",
            output.describe()
        );
    }
    // The same check refuses what it should: before native sidecars, an init container
    // had no restartPolicy.
    let output = run_program(
        &validator,
        None,
        [
            OsStr::new("--strict"),
            OsStr::new("-k"),
            OsStr::new("1.27.0"),
            out.path().join("web.yaml").as_os_str(),
        ],
    )
    .await;
    assert!(!output.success(), "{}", output.describe());
    assert!(
        output.stdout.contains("'restartPolicy' was unexpected"),
        "{}",
        output.describe()
    );
}

#[tokio::test]
async fn every_config_the_manifests_embed_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let (mut proxy_configs, mut fragment_dirs) = (0, 0);
    for file in yaml_files(&deploy_dir()) {
        for (index, document) in documents(&file).iter().enumerate() {
            if document["kind"] != "ConfigMap" {
                continue;
            }
            let data = document["data"].as_object().expect("a ConfigMap's data");
            let place = dir.path().join(format!(
                "{}-{index}",
                file.file_stem().unwrap().to_string_lossy()
            ));
            std::fs::create_dir(&place).unwrap();
            for (key, value) in data {
                std::fs::write(place.join(key), value.as_str().expect("text data")).unwrap();
            }
            // A proxy's config is the `config.yaml` key; any other map of YAML files is
            // a control plane's directory of fragments.
            let output = if data.contains_key("config.yaml") {
                proxy_configs += 1;
                meshwork([OsStr::new("check"), place.join("config.yaml").as_os_str()]).await
            } else {
                fragment_dirs += 1;
                run_program(
                    &meshwork_control_bin(),
                    None,
                    [
                        OsStr::new("--check"),
                        OsStr::new("--config-dir"),
                        place.as_os_str(),
                    ],
                )
                .await
            };
            assert!(
                output.success(),
                "{} (document {}): {}",
                file.display(),
                index + 1,
                output.describe()
            );
        }
    }
    assert!(
        proxy_configs > 0 && fragment_dirs > 0,
        "{proxy_configs} proxy configs, {fragment_dirs} fragment directories"
    );
}

#[tokio::test]
async fn the_commented_example_app_is_what_inject_makes_of_its_input() {
    let input = deploy_dir().join("examples/web.yaml");
    let injected = inject(&input, &["--config-map", "web-meshwork"]).await;
    let injected = parse_documents(&injected).unwrap().remove(0).unwrap();
    let example = documents(&deploy_dir().join("example-app.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("example-app.yaml has a Deployment");
    assert_eq!(
        example,
        injected,
        "deploy/kubernetes/example-app.yaml's Deployment differs from `meshwork inject -f \
         deploy/kubernetes/examples/web.yaml --config-map web-meshwork`; make them agree \
         (after a version bump: the image tags)\n--- inject ---\n{}",
        serde_json::to_string_pretty(&injected).unwrap()
    );
}

#[tokio::test]
async fn injecting_an_injected_example_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for example in yaml_files(&deploy_dir().join("examples")) {
        let once = inject(&example, &["--drain-timeout", "40s"]).await;
        let path = dir.path().join("once.yaml");
        std::fs::write(&path, &once).unwrap();
        let twice = inject(&path, &["--drain-timeout", "40s"]).await;
        assert_eq!(once, twice, "{}", example.display());
    }
}

#[tokio::test]
async fn bad_input_fails_with_the_document_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "not-yaml.yaml",
            "kind: [unclosed\n",
            "line 2, column 1: not valid YAML",
        ),
        (
            "no-workload.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
            "no workload in the input",
        ),
        (
            "no-containers.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: batch/v1\nkind: Job\n\
             metadata: {name: j}\nspec: {template: {spec: {restartPolicy: Never}}}\n",
            "document 2: Job \"j\": the pod has no containers",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let output = meshwork([OsStr::new("inject"), OsStr::new("-f"), path.as_os_str()]).await;
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: {}",
            output.describe()
        );
        assert!(
            output.stdout.is_empty(),
            "nothing printed on failure: {}",
            output.describe()
        );
        assert!(
            output
                .stderr
                .contains(&format!("{}: {expected}", path.display())),
            "{name}: {}",
            output.describe()
        );
    }
    let example = deploy_dir().join("examples/web.yaml");
    for flag in ["--image", "--config-map", "--identity-secret"] {
        let output = meshwork([
            OsStr::new("inject"),
            OsStr::new("-f"),
            example.as_os_str(),
            OsStr::new(flag),
            OsStr::new(""),
        ])
        .await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{flag} \"\": {}",
            output.describe()
        );
    }
    let missing = dir.path().join("missing.yaml");
    let output = meshwork([OsStr::new("inject"), OsStr::new("-f"), missing.as_os_str()]).await;
    assert!(
        output
            .stderr
            .contains(&format!("cannot read {}", missing.display())),
        "{}",
        output.describe()
    );
}

/// `meshwork-control --kubernetes` reads Services, Pods (metadata) and EndpointSlices by
/// list and watch (get for single objects): its ClusterRole grants exactly that, to the
/// service account its Deployment runs as, whose token is mounted.
#[test]
fn the_control_plane_cluster_role_grants_exactly_what_it_reads() {
    let documents = documents(&deploy_dir().join("control-plane.yaml"));
    let find = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in control-plane.yaml"))
    };
    let role = find("ClusterRole");
    let mut granted: Vec<(String, String, String)> = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none());
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                for verb in rule["verbs"].as_array().expect("verbs") {
                    granted.push((
                        group.as_str().expect("a group").into(),
                        resource.as_str().expect("a resource").into(),
                        verb.as_str().expect("a verb").into(),
                    ));
                }
            }
        }
    }
    granted.sort();
    let mut expected: Vec<(String, String, String)> = Vec::new();
    for (group, resource) in [
        ("", "services"),
        ("", "pods"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        for verb in ["get", "list", "watch"] {
            expected.push((group.into(), resource.into(), verb.into()));
        }
    }
    expected.sort();
    assert_eq!(granted, expected);

    let binding = find("ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let deployment = find("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let subject = &binding["subjects"][0];
    assert_eq!(subject["kind"], "ServiceAccount");
    assert_eq!(subject["name"], pod["serviceAccountName"]);
    assert_eq!(subject["namespace"], deployment["metadata"]["namespace"]);
    assert_eq!(pod["automountServiceAccountToken"], true);
    let args = pod["containers"][0]["args"].as_array().expect("args");
    assert!(args.iter().any(|a| a == "--kubernetes"), "{args:?}");
}
