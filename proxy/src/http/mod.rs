//! HTTP building blocks shared by the layers: bodies, errors, header semantics, the
//! request target's normalization.

pub mod authority;
pub mod body;
pub mod client_fault;
pub mod error;
pub mod extended_connect;
pub mod headers;
pub mod made_values;
pub mod request_id;
pub mod response;
pub mod target;
pub mod tee;
pub mod tunnel;
pub mod upgrade;

pub use body::{RequestBody, ResponseBody};
pub use error::{Blame, ERROR_HEADER, ProxyError};
