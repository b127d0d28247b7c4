//! Route: finds the first route of the listener's table that matches the request
//! (404 `no-route` when none does) and records it for the layers below; on an outbound
//! `auto` listener, a request matching none of its own routes takes its destination
//! VIP's route when it has one.

use super::ProxyRequest;
use super::step::{Decision, Step, StepLayer};
use crate::http::ProxyError;
use crate::router::RouteRequest;

#[derive(Debug)]
pub struct Route;

pub type RouteLayer = StepLayer<Route>;

impl Step for Route {
    fn decide(req: &mut ProxyRequest) -> Decision {
        let route = req.ctx.plan.as_ref().and_then(|plan| {
            let view = RouteRequest::new(req.http.method(), req.http.uri(), req.http.headers());
            // What matches no route of an auto listener goes to the cluster of the VIP
            // its connection was going to, if any (the policy already decided on it).
            plan.table
                .find_for(&view, req.ctx.original_destination)
                .cloned()
        });
        match route {
            Some(route) => {
                let _ = req.ctx.record.route.set(route.clone());
                req.ctx.route = Some(route);
                Decision::Continue
            }
            None => Decision::Answer(Err(ProxyError::NoRoute)),
        }
    }
}
