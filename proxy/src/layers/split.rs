//! Split: picks the backend cluster of the route by weight (`backends[].weight`).

use std::sync::Arc;

use rand::Rng;

use super::ProxyRequest;
use super::step::{Decision, Step, StepLayer};
use crate::cluster::ClusterRuntime;
use crate::http::ProxyError;

#[derive(Debug)]
pub struct Split;

pub type SplitLayer = StepLayer<Split>;

/// The backend whose cumulative weight range holds `point` (`0 <= point < total`).
pub fn pick_weighted(
    backends: &[(Arc<ClusterRuntime>, u32)],
    mut point: u64,
) -> Option<&Arc<ClusterRuntime>> {
    for (cluster, weight) in backends {
        let w = u64::from(*weight);
        if point < w {
            return Some(cluster);
        }
        point -= w;
    }
    None
}

impl Step for Split {
    fn decide(req: &mut ProxyRequest) -> Decision {
        let cluster = req
            .ctx
            .route
            .as_ref()
            .and_then(|route| match route.backends.as_slice() {
                [(only, _)] => Some(only.clone()),
                many if route.total_weight > 0 => {
                    let point = rand::rng().random_range(0..route.total_weight);
                    pick_weighted(many, point).cloned()
                }
                _ => None,
            });
        match cluster {
            Some(cluster) => {
                req.ctx.cluster = Some(cluster);
                Decision::Continue
            }
            None => Decision::Answer(Err(ProxyError::NoHealthyEndpoint)),
        }
    }
}
