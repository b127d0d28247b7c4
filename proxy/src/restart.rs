//! Settings the process reads once, at startup: a reload that changes one is applied
//! for everything else, and the change itself waits for a restart. Rather than show the
//! new value in `/config` while silently running the old one, the proxy says which
//! fields wait, with both values, in the log and in `/config`'s `pending_restart`.
//!
//! The startup-only fields: `admin.address` (the admin server is bound once),
//! `runtime.worker_threads` (the runtime is built once), `node.id` and `node.labels`
//! (sent to the control plane when the stream opens), and `control_plane` (its address
//! and TLS: the stream is set up once; a file that gains or loses the section too).

use meshwork_config::Config;
use meshwork_config::model::{Admin, ControlPlane, Node, Runtime};
use serde::Serialize;

/// One field whose configured value waits for a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingRestart {
    /// The field's path in the config, e.g. `admin.address`.
    pub field: &'static str,
    /// The value the process runs with.
    pub running: String,
    /// The value the applied config sets.
    pub configured: String,
}

/// The startup-only part of the config the process started with.
#[derive(Debug)]
pub struct StartupSettings {
    admin: Admin,
    runtime: Runtime,
    node: Node,
    control_plane: Option<ControlPlane>,
}

impl StartupSettings {
    pub fn of(config: &Config) -> Self {
        Self {
            admin: config.admin.clone(),
            runtime: config.runtime.clone(),
            node: config.node.clone(),
            control_plane: config.control_plane.clone(),
        }
    }

    /// The startup-only fields `config` sets differently from what runs, in config
    /// order (empty when it changes none).
    pub fn differences(&self, config: &Config) -> Vec<PendingRestart> {
        let mut out = Vec::new();
        let mut compare = |field: &'static str, running: &dyn Shown, configured: &dyn Shown| {
            let (running, configured) = (running.shown(), configured.shown());
            if running != configured {
                out.push(PendingRestart {
                    field,
                    running,
                    configured,
                });
            }
        };
        compare("node.id", &self.node.id, &config.node.id);
        compare("node.labels", &self.node.labels, &config.node.labels);
        compare(
            "runtime.worker_threads",
            &self.runtime.worker_threads,
            &config.runtime.worker_threads,
        );
        compare("admin.address", &self.admin.address, &config.admin.address);
        match (&self.control_plane, &config.control_plane) {
            (Some(running), Some(configured)) => {
                compare(
                    "control_plane.address",
                    &running.address,
                    &configured.address,
                );
                compare("control_plane.tls", &running.tls, &configured.tls);
            }
            (running, configured) => compare("control_plane", running, configured),
        }
        out
    }
}

/// A value as the log and `/config` show it: text as is, absent as `none`, anything
/// else as compact JSON.
trait Shown {
    fn shown(&self) -> String;
}

impl<T: Serialize> Shown for T {
    fn shown(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(text)) => text,
            Ok(serde_json::Value::Null) => "none".into(),
            Ok(other) => other.to_string(),
            Err(error) => format!("(cannot be shown: {error})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Config {
        meshwork_config::load_str("t.yaml", text, Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_startup_fields_that_changed_are_pending_with_both_values() {
        let started = load("version: 1\nnode: { id: a }\nadmin: { address: 127.0.0.1:9901 }\n");
        let settings = StartupSettings::of(&started);
        assert!(settings.differences(&started).is_empty());
        let changed = load(
            "version: 1\nnode: { id: b, labels: { zone: eu } }\nruntime: { worker_threads: auto }\n\
             admin: { address: 127.0.0.1:9902 }\ncontrol_plane: { address: http://127.0.0.1:18000 }\n",
        );
        let pending = settings.differences(&changed);
        let shown: Vec<(&str, &str, &str)> = pending
            .iter()
            .map(|p| (p.field, p.running.as_str(), p.configured.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("node.id", "a", "b"),
                ("node.labels", "{}", r#"{"zone":"eu"}"#),
                ("runtime.worker_threads", "1", "auto"),
                ("admin.address", "127.0.0.1:9901", "127.0.0.1:9902"),
                (
                    "control_plane",
                    "none",
                    r#"{"address":"http://127.0.0.1:18000","tls":null,"protocol":"meshwork","state_dir":"/var/lib/meshwork"}"#
                ),
            ]
        );
    }
}
