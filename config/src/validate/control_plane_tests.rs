//! `control_plane`: the address scheme goes with `tls`, and `tls` needs a CA unless the
//! mesh identity gives one.

use std::path::Path;

use crate::model::Config;

fn load(control_plane: &str, identity: bool) -> Result<Config, Vec<String>> {
    let mut text = format!("version: 1\ncontrol_plane:\n{control_plane}");
    if identity {
        text.push_str("identity: { cert: id.pem, key: id-key.pem, trust_bundle: bundle.pem }\n");
    }
    crate::load_str("f.yaml", &text, Path::new("/etc/mw"), &|_| None)
        .map_err(|d| d.0.iter().map(ToString::to_string).collect())
}

#[test]
fn https_with_a_ca_and_a_client_certificate_loads_with_paths_resolved() {
    let config = load(
        "  address: https://control:18000\n  tls: { ca: ca.pem, cert: c.pem, key: k.pem }\n",
        false,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let cp = config.control_plane.expect("control plane");
    assert_eq!(cp.address, "https://control:18000");
    let tls = cp.tls.expect("tls");
    assert_eq!(tls.ca.as_deref(), Some(Path::new("/etc/mw/ca.pem")));
    assert_eq!(tls.cert.as_deref(), Some(Path::new("/etc/mw/c.pem")));
    assert_eq!(tls.key.as_deref(), Some(Path::new("/etc/mw/k.pem")));
}

#[test]
fn an_empty_tls_uses_the_identity() {
    let config = load("  address: https://control:18000\n  tls: {}\n", true)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let tls = config.control_plane.and_then(|c| c.tls).expect("tls");
    assert_eq!((tls.ca, tls.cert, tls.key), (None, None, None));
}

#[test]
fn the_scheme_must_match_tls() {
    let e = load("  address: https://control:18000\n", false).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "f.yaml:3:12: control_plane.address: an https:// control plane needs `tls`"
        ),
        "{e:?}"
    );
    let e = load(
        "  address: http://control:18000\n  tls: { ca: ca.pem }\n",
        false,
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("control_plane.address: with `tls` the address must be https://"),
        "{e:?}"
    );
    assert!(load("  address: http://control:18000\n", false).is_ok());
}

#[test]
fn tls_needs_a_ca_without_identity_and_a_whole_client_pair() {
    let e = load("  address: https://c:1\n  tls: {}\n", false).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("control_plane.tls: missing field \"ca\""),
        "{e:?}"
    );
    let e = load(
        "  address: https://c:1\n  tls: { ca: ca.pem, key: k.pem }\n",
        false,
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("missing field \"cert\""), "{e:?}");
}

#[test]
fn the_protocol_defaults_to_meshwork_and_the_state_dir_resolves_against_the_file() {
    use crate::model::{ControlPlaneProtocol, DEFAULT_STATE_DIR};
    let cp = load("  address: http://control:18000\n", false)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .control_plane
        .expect("control plane");
    assert_eq!(cp.protocol, ControlPlaneProtocol::Meshwork);
    assert_eq!(cp.state_dir, Path::new(DEFAULT_STATE_DIR));
    let cp = load(
        "  address: http://istiod:15010\n  protocol: xds\n  state_dir: state\n",
        false,
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
    .control_plane
    .expect("control plane");
    assert_eq!(cp.protocol, ControlPlaneProtocol::Xds);
    assert_eq!(cp.state_dir, Path::new("/etc/mw/state"));
}

#[test]
fn an_unknown_protocol_or_an_empty_state_dir_is_an_error() {
    let errors = load("  address: http://c:1\n  protocol: xdz\n", false).expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("f.yaml:4:13: control_plane.protocol: "),
        "{errors:?}"
    );
    assert!(
        errors[0].contains("xds"),
        "a hint names the right value: {errors:?}"
    );
    let errors = load("  address: http://c:1\n  state_dir: \"\"\n", false).expect_err("refused");
    assert!(
        errors[0].contains("control_plane.state_dir: expected a file path"),
        "{errors:?}"
    );
}
