//! HTTP building blocks shared by the layers: bodies, errors, header semantics, path
//! normalization.

pub mod body;
pub mod error;
pub mod headers;
pub mod path;
pub mod response;
pub mod tee;

pub use body::{RequestBody, ResponseBody};
pub use error::{ERROR_HEADER, ProxyError};
