//! Loading: file -> env substitution -> YAML tree -> raw structs -> checks -> model.

use std::path::Path;

use crate::de;
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, Sink};
use crate::env;
use crate::model::Config;
use crate::raw::RawConfig;
use crate::spanned::Spanned;
use crate::unsupported;
use crate::validate::{self, Context};
use crate::yaml;

/// Node id used when `node.id` is absent and the hostname cannot be found.
pub const FALLBACK_NODE_ID: &str = "meshwork";

/// Reads a config file, substitutes `${VAR}` from the process environment, parses and
/// validates it.
///
/// Relative file paths in the config (certificates, keys, the access log file) are
/// resolved against the directory holding `path`. Diagnostics name the file as `path`
/// is written.
///
/// # Errors
/// Every problem found (a file that cannot be read is one diagnostic at line 0).
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    let file_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(
            file_name.clone(),
            Pos::new(0, 0),
            "",
            format!("cannot read the config file: {e}"),
        )])
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    load_str(&file_name, &text, &base_dir, &|name| {
        std::env::var(name).ok()
    })
}

/// Substitutes, parses and validates `text`, the pure core of [`load_file`].
///
/// `file_name` is only used in diagnostics. Relative file paths in the config
/// (certificates, keys, the access log file) are resolved against `base_dir` (give the
/// config file's directory). `env` answers `${VAR}` lookups. The only other outside fact
/// read is the hostname (default `node.id`).
///
/// # Errors
/// Every problem found, sorted by position.
pub fn load_str(
    file_name: &str,
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    let (substituted, columns, env_problems) = env::substitute(text, env);
    let mut sink = Sink::default();
    let parsed = yaml::parse(&substituted);
    let root = match &parsed {
        Ok((Some(root), _)) => Some(root),
        _ => None,
    };
    // Positions are kept in the substituted text until the end.
    let env_failed = !env_problems.is_empty();
    for (pos, message) in env_problems {
        let at = columns.substituted(pos);
        let path = root.and_then(|r| yaml::path_at(r, at)).unwrap_or_default();
        sink.push(at, &path, message);
    }
    let config = match parsed {
        Err((pos, message)) => {
            sink.push(pos, "", message);
            None
        }
        Ok((None, _)) => {
            if !env_failed {
                sink.push(
                    Pos::new(1, 1),
                    "",
                    "the file is empty (expected a mapping starting with `version: 1`)",
                );
            }
            None
        }
        // Stop before validating: an unset variable would cause follow-on errors.
        Ok((Some(_), _)) if env_failed => None,
        Ok((Some(root), problems)) => {
            for (pos, path, message) in problems {
                sink.push(pos, &path, message);
            }
            check(&root, base_dir, &mut sink)
        }
    };
    match config {
        Some(config) if sink.is_empty() => Ok(config),
        _ => {
            let list = sink
                .into_vec(file_name)
                .into_iter()
                .map(|mut d| {
                    let pos = columns.original(d.pos());
                    d.line = pos.line;
                    d.column = pos.column;
                    d
                })
                .collect();
            Err(Diagnostics::new(list))
        }
    }
}

/// Structural checks, refusals of unsupported fields, validation.
fn check(root: &yaml::Node, base_dir: &Path, sink: &mut Sink) -> Option<Config> {
    let raw: Spanned<RawConfig> = de::from_node(root, sink)?;
    let cx = Context {
        base_dir,
        default_node_id: hostname(),
    };
    let config = validate::validate(&raw, &cx, sink);
    // A field that is also wrong in itself gets only that message.
    let mut refusals = Sink::default();
    unsupported::check(root, unsupported::NOT_SUPPORTED_YET, &mut refusals);
    for d in refusals.into_vec("") {
        if !sink.has_at(d.pos()) {
            sink.push(d.pos(), &d.path, d.message);
        }
    }
    config
}

/// The machine's hostname: /proc/sys/kernel/hostname, else `$HOSTNAME`, else "meshwork".
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| FALLBACK_NODE_ID.to_string())
}
