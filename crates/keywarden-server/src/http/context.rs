//! Per-request context that responses and records need: the request id, how errors should be
//! typed, and the client's address.
//!
//! A middleware sets it for the whole handling of a request (task-local), so every response,
//! including extractor rejections and the 404 fallback, carries the same `requestId`.

use std::net::{IpAddr, SocketAddr};

use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::ACCEPT;
use axum::middleware::Next;
use axum::response::Response;
use keywarden_core::id::new_request_id;
use keywarden_core::time::{Clock, SystemClock};

use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    /// Whether error bodies go out as `application/problem+json` (the client accepts it).
    pub problem_json: bool,
    /// The peer address of the connection; absent when the server was not served with
    /// connection info (some tests build the router alone).
    pub client_ip: Option<IpAddr>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The current request's context; outside a request, a fresh id.
pub fn current() -> RequestContext {
    CONTEXT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| RequestContext {
            request_id: new_request_id(SystemClock.now()),
            problem_json: false,
            client_ip: None,
        })
}

/// Errors are `application/problem+json` only when the client's `Accept` allows it, as Unkey
/// does; the SDKs send `Accept: application/json` and get plain JSON.
fn wants_problem_json(accept: &str) -> bool {
    accept.contains("application/problem+json")
        || accept.contains("application/*")
        || accept.contains("*/*")
}

/// Runs a request inside its context, and counts and times it for `/metrics` (one middleware
/// for both: every layer costs the hot path a boxed future).
pub async fn with_request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = state.requests.endpoint_of(&request);
    let started = Instant::now();
    let problem_json = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(wants_problem_json);
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let context = RequestContext {
        request_id: new_request_id(SystemClock.now()),
        problem_json,
        client_ip,
    };
    let response = CONTEXT.scope(context, next.run(request)).await;
    endpoint.record(response.status(), started.elapsed());
    state.requests.record_failure(&response);
    response
}
