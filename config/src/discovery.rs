//! The discovery API's wire types, generated from `proto/discovery.proto` by `build.rs`,
//! and their conversions to and from [`crate::resource`] types.

use crate::resource as res;

#[allow(missing_debug_implementations, clippy::all, rust_2018_idioms)]
mod generated {
    tonic::include_proto!("meshwork.discovery.v1");
}

pub use generated::*;

use generated as wire;

impl From<res::Kind> for wire::Kind {
    fn from(kind: res::Kind) -> Self {
        match kind {
            res::Kind::Listener => wire::Kind::Listener,
            res::Kind::RouteTable => wire::Kind::RouteTable,
            res::Kind::Cluster => wire::Kind::Cluster,
            res::Kind::Endpoints => wire::Kind::Endpoints,
        }
    }
}

/// The resource kind of a wire value; `None` for unspecified or unknown kinds.
pub fn kind_of(value: i32) -> Option<res::Kind> {
    match wire::Kind::try_from(value).ok()? {
        wire::Kind::Unspecified => None,
        wire::Kind::Listener => Some(res::Kind::Listener),
        wire::Kind::RouteTable => Some(res::Kind::RouteTable),
        wire::Kind::Cluster => Some(res::Kind::Cluster),
        wire::Kind::Endpoints => Some(res::Kind::Endpoints),
    }
}

impl From<&res::Source> for wire::Source {
    fn from(s: &res::Source) -> Self {
        wire::Source {
            file: s.file.clone(),
            line: u32::try_from(s.line).unwrap_or(u32::MAX),
            column: u32::try_from(s.column).unwrap_or(u32::MAX),
            path: s.path.clone(),
        }
    }
}

impl From<wire::Source> for res::Source {
    fn from(s: wire::Source) -> Self {
        res::Source {
            file: s.file,
            line: s.line as usize,
            column: s.column as usize,
            path: s.path,
        }
    }
}

impl From<&res::Resource> for wire::Resource {
    fn from(r: &res::Resource) -> Self {
        wire::Resource {
            kind: wire::Kind::from(r.key.kind).into(),
            name: r.key.name.clone(),
            version: r.version.clone(),
            body: r.body.clone(),
            source: Some((&r.source).into()),
        }
    }
}

impl wire::Resource {
    /// The resource, with its version checked against its content.
    ///
    /// # Errors
    /// An unknown kind, or a version that is not the hash of the content.
    pub fn into_resource(self) -> Result<res::Resource, String> {
        let kind = kind_of(self.kind)
            .ok_or_else(|| format!("resource {:?} has an unknown kind {}", self.name, self.kind))?;
        let resource = res::Resource::new(
            res::Key::new(kind, self.name),
            self.body,
            self.source.map(res::Source::from).unwrap_or_default(),
        );
        if resource.version != self.version {
            return Err(format!(
                "{} arrived with version {} but its content hashes to {}",
                resource.key, self.version, resource.version
            ));
        }
        Ok(resource)
    }
}

impl From<&res::Key> for wire::ResourceRef {
    fn from(k: &res::Key) -> Self {
        wire::ResourceRef {
            kind: wire::Kind::from(k.kind).into(),
            name: k.name.clone(),
            version: String::new(),
        }
    }
}

impl From<&res::Rejection> for wire::Rejection {
    fn from(r: &res::Rejection) -> Self {
        wire::Rejection {
            kind: wire::Kind::from(r.resource.key.kind).into(),
            name: r.resource.key.name.clone(),
            version: r.resource.version.clone(),
            error: r.error.clone(),
            source: Some((&r.resource.source).into()),
        }
    }
}
