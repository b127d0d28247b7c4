//! The last snapshot applied from the control plane, kept on disk: saved atomically
//! after every apply (written to a temporary file, synced, renamed over the last one),
//! and read back when a proxy starts, so a proxy restarted while its control plane is
//! down serves what it served before (reported stale until the control plane answers).
//!
//! One file per (protocol, control plane address, node id) in `control_plane.state_dir`:
//! a proxy never takes a snapshot made for another node or another control plane. Each
//! resource's version is its content hash, checked on reading, so a damaged file is
//! refused whole rather than half applied.

use std::io::Write;
use std::path::{Path, PathBuf};

use meshwork_config::resource::{Key, Kind, Resource, Source, content_version};
use serde::{Deserialize, Serialize};

/// The format of the file (bumped when it changes incompatibly).
const FORMAT: u32 = 1;

/// Where a link's last good snapshot lives.
#[derive(Debug, Clone)]
pub struct LastGood {
    path: PathBuf,
    /// `protocol address node`, written in the file and checked on reading.
    made_for: String,
}

/// A snapshot read back from disk.
#[derive(Debug)]
pub struct Saved {
    /// The control plane's version of it.
    pub version: String,
    /// When it was saved (seconds since the Unix epoch).
    pub saved_at: u64,
    pub resources: Vec<Resource>,
}

/// Why a saved snapshot was not read.
#[derive(Debug, thiserror::Error)]
pub enum LastGoodError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a saved snapshot: {reason}")]
    Malformed { path: String, reason: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: u32,
    /// What the snapshot was made for: a file for other ones is refused.
    made_for: String,
    version: String,
    saved_at: u64,
    resources: Vec<FileResource>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileResource {
    kind: Kind,
    name: String,
    version: String,
    body: String,
    source: Source,
}

impl LastGood {
    /// The file in `dir` for this protocol, control plane and node.
    pub fn new(dir: &Path, protocol: &str, address: &str, node_id: &str) -> Self {
        let id = content_version(&[protocol, address, node_id]);
        LastGood {
            path: dir.join(format!("last-good-{id}.json")),
            made_for: format!("{protocol} {address} {node_id}"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves `resources` at `version`, atomically.
    ///
    /// # Errors
    /// When the directory or the file cannot be written.
    pub fn save(&self, version: &str, resources: &[Resource]) -> std::io::Result<()> {
        let file = File {
            format: FORMAT,
            made_for: self.made_for.clone(),
            version: version.to_string(),
            saved_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            resources: resources
                .iter()
                .map(|r| FileResource {
                    kind: r.key.kind,
                    name: r.key.name.clone(),
                    version: r.version.clone(),
                    body: r.body.clone(),
                    source: r.source.clone(),
                })
                .collect(),
        };
        let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(&text)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }

    /// The saved snapshot, or `None` when there is none.
    ///
    /// # Errors
    /// A file that cannot be read, or is not a snapshot saved for this link.
    pub fn load(&self) -> Result<Option<Saved>, LastGoodError> {
        let path = self.path.display().to_string();
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LastGoodError::Read { path, source }),
        };
        let malformed = |reason: String| LastGoodError::Malformed {
            path: path.clone(),
            reason,
        };
        let file: File = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        if file.format != FORMAT {
            return Err(malformed(format!(
                "format {} (this meshwork reads {FORMAT})",
                file.format
            )));
        }
        if file.made_for != self.made_for {
            return Err(malformed(format!("it was saved as {:?}", file.made_for)));
        }
        let mut resources = Vec::with_capacity(file.resources.len());
        for r in file.resources {
            let resource = Resource::new(Key::new(r.kind, r.name), r.body, r.source);
            if resource.version != r.version {
                return Err(malformed(format!(
                    "{} does not hash to its version {} (damaged)",
                    resource.key, r.version
                )));
            }
            resources.push(resource);
        }
        Ok(Some(Saved {
            version: file.version,
            saved_at: file.saved_at,
            resources,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, body: &str) -> Resource {
        Resource::new(
            Key::new(Kind::Cluster, name),
            body.into(),
            Source {
                file: "clusters.yaml".into(),
                line: 3,
                column: 5,
                path: "clusters[0]".into(),
            },
        )
    }

    #[test]
    fn a_saved_snapshot_reads_back_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let last = LastGood::new(&dir.path().join("state"), "xds", "http://cp:1", "web");
        assert!(last.load().expect("no file is fine").is_none());
        let saved = vec![
            resource("api", "[1,1,\"=\",\"s\",\"x\"]"),
            resource("web", "[]"),
        ];
        last.save("v7", &saved).expect("save");
        let back = last.load().expect("load").expect("a snapshot");
        assert_eq!(back.version, "v7");
        assert_eq!(back.resources, saved);
        assert!(
            !last.path().with_extension("json.tmp").exists(),
            "renamed into place"
        );
    }

    #[test]
    fn each_link_has_its_own_file() {
        let dir = Path::new("/state");
        let a = LastGood::new(dir, "xds", "http://cp:1", "web");
        assert_ne!(
            a.path(),
            LastGood::new(dir, "xds", "http://cp:1", "api").path()
        );
        assert_ne!(
            a.path(),
            LastGood::new(dir, "meshwork", "http://cp:1", "web").path()
        );
        assert_ne!(
            a.path(),
            LastGood::new(dir, "xds", "http://cp:2", "web").path()
        );
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let last = LastGood::new(dir.path(), "xds", "http://cp:1", "web");
        last.save("v1", &[resource("api", "[]")]).expect("save");
        let text = std::fs::read_to_string(last.path()).expect("read");
        std::fs::write(
            last.path(),
            text.replace("\"body\":\"[]\"", "\"body\":\"[1]\""),
        )
        .expect("write");
        let error = last.load().expect_err("damaged").to_string();
        assert!(error.contains("does not hash to its version"), "{error}");

        let other = LastGood::new(dir.path(), "xds", "http://cp:1", "api");
        std::fs::copy(last.path(), other.path()).expect("copy");
        last.save("v1", &[resource("api", "[]")]).expect("save");
        std::fs::copy(last.path(), other.path()).expect("copy");
        let error = other.load().expect_err("foreign").to_string();
        assert!(error.contains("it was saved as"), "{error}");

        std::fs::write(last.path(), "{").expect("write");
        assert!(matches!(last.load(), Err(LastGoodError::Malformed { .. })));
    }
}
