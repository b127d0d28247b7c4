//! xDS v3 for the tests of `control_plane.protocol: xds`: a scripted ADS server
//! ([`XdsServer`]) and builders of the Envoy resources it serves ([`resources`]).

pub mod resources;
mod server;

pub use server::XdsServer;
