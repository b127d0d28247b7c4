//! `control_plane.protocol: xds`: the proxy takes its config from a standard xDS v3
//! server (istiod, go-control-plane, meshwork-control's xDS side) over the Aggregated
//! Discovery Service, State of the World.
//!
//! [`session`] runs one ADS stream; [`state`] holds what it learned between responses
//! and streams; [`cluster`], [`listener`] and [`route`] translate Envoy's resources into
//! meshwork's format, refusing by field what meshwork cannot represent ([`leftover`]).
//! The translated resources are applied through the same [`Link`](super::Link) as
//! meshwork's own protocol, so they are validated by the same code, a rejected one keeps
//! its previous version, and the last good snapshot is kept on disk alike.

mod cluster;
mod fields;
mod leftover;
mod listener;
mod resource;
mod route;
mod route_policy;
mod session;
mod state;
mod units;
mod upstream;

pub(crate) use session::{node, run};
pub(crate) use state::XdsState;
