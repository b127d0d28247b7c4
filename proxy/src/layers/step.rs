//! Layers that decide on the spot: look at the request, then either answer it (a local
//! response or an error) or change it and pass it on. Route, authorize, rate limit,
//! respond, split and balance are such steps; this is their one `Layer`/`Service` pair,
//! so each file holds only its decision.

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::task::{Context, Poll};

use futures_util::future::Either;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse};
use crate::http::ProxyError;

/// What a step decided.
#[derive(Debug)]
pub enum Decision {
    /// Pass the (possibly changed) request to the next layer.
    Continue,
    /// Answer now; the layers below never see the request.
    Answer(Result<ProxyResponse, ProxyError>),
}

/// One step's decision. The step borrows the request rather than taking and giving it
/// back: the request (its head and context, several hundred bytes) then moves once per
/// layer, into the next layer's `call`, instead of three times.
pub trait Step {
    fn decide(req: &mut ProxyRequest) -> Decision;
}

/// The layer of step `T`.
pub struct StepLayer<T>(PhantomData<fn() -> T>);

impl<T> StepLayer<T> {
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for StepLayer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for StepLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

impl<T, S> Layer<S> for StepLayer<T> {
    type Service = StepService<T, S>;
    fn layer(&self, inner: S) -> StepService<T, S> {
        StepService {
            inner,
            step: PhantomData,
        }
    }
}

pub struct StepService<T, S> {
    inner: S,
    step: PhantomData<fn() -> T>,
}

impl<T, S: Clone> Clone for StepService<T, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            step: PhantomData,
        }
    }
}

impl<T, S: std::fmt::Debug> std::fmt::Debug for StepService<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepService")
            .field("step", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T, S> Service<ProxyRequest> for StepService<T, S>
where
    T: Step,
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError>,
{
    type Response = ProxyResponse;
    type Error = ProxyError;
    type Future = Either<Ready<Result<ProxyResponse, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ProxyRequest) -> Self::Future {
        match T::decide(&mut req) {
            Decision::Continue => Either::Right(self.inner.call(req)),
            Decision::Answer(answer) => Either::Left(ready(answer)),
        }
    }
}
