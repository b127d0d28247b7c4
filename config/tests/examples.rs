//! Every `config/examples/*.yaml` loads with `load_file` (only supported fields).

use std::path::PathBuf;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_loads() {
    let files = examples();
    assert!(
        files.len() >= 3,
        "expected the three examples, found {files:?}"
    );
    for file in files {
        if let Err(e) = meshwork_config::load_file(&file) {
            panic!("{} does not load:\n{e}", file.display());
        }
    }
}

#[test]
fn quickstart_routes_to_the_demo_upstream() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let config =
        meshwork_config::load_str("quickstart.yaml", &text, std::path::Path::new("."), &|_| {
            None
        })
        .expect("loads");
    assert_eq!(
        config.listeners[0].address,
        "127.0.0.1:8080".parse().expect("addr")
    );
    let a = config.cluster("backend-a").expect("cluster backend-a");
    assert_eq!(a.endpoints[0].address.to_string(), "127.0.0.1:8081");
    let b = config.cluster("backend-b").expect("cluster backend-b");
    assert_eq!(b.endpoints[0].address.to_string(), "127.0.0.1:8082");
    let routes = &config.route_tables["web"].routes;
    assert!(matches!(
        routes[0].action,
        meshwork_config::model::RouteAction::DirectResponse(_)
    ));
}
