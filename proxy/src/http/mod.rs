//! HTTP building blocks shared by the layers: bodies, errors, header semantics, the
//! request target's normalization.

pub mod body;
pub mod error;
pub mod headers;
pub mod response;
pub mod target;
pub mod tee;

pub use body::{RequestBody, ResponseBody};
pub use error::{ERROR_HEADER, ProxyError};
