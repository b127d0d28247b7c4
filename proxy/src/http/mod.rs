//! HTTP building blocks shared by the layers: bodies, errors, header semantics, the
//! request target's normalization.

pub mod authority;
pub mod body;
pub mod client_body;
pub mod client_fault;
pub mod client_upgrade;
pub mod error;
pub mod extended_connect;
pub mod h1_fields;
pub mod headers;
pub mod made_values;
pub mod request_id;
pub mod response;
pub mod stream_inbox;
pub mod target;
pub mod tee;
pub mod tunnel;
pub mod upgrade;

pub use body::{RequestBody, ResponseBody};

/// The error of a response body on its way to the client: hyper's (an HTTP/2 upstream's
/// stream, an upgrade's), or a pooled HTTP/1 exchange's. hyper's server only needs to
/// know that the body broke.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
pub use error::{Blame, ERROR_HEADER, ProxyError};
