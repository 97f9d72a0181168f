//! The HTTP edge: routes in the Unkey v2 style (`POST /v2/<group>.<operation>`), extractors,
//! and the success and error envelopes.

mod analytics;
mod anomalies;
mod apis;
mod audit;
mod context;
mod envelope;
mod error;
mod extract;
mod fields;
mod health;
mod identities;
mod jwks;
mod keys;
mod leaks;
mod liveness;
mod metrics;

pub use metrics::{keep_up as keep_metrics_up, recorder as metrics_recorder};
pub use request_metrics::RequestMetrics;
mod permissions;
mod ratelimit;
mod request_metrics;
mod root_keys;
mod webhooks;
mod wire;

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;

pub use extract::MAX_BODY_BYTES;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2/liveness", get(liveness::liveness))
        .route("/v2/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .merge(analytics::routes())
        .merge(apis::routes())
        .merge(keys::routes())
        .merge(identities::routes())
        .merge(ratelimit::routes())
        .merge(permissions::routes())
        .merge(root_keys::routes())
        .merge(audit::routes())
        .merge(anomalies::routes())
        .merge(webhooks::routes())
        .merge(leaks::routes())
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            context::with_request_context,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn route_not_found(request: Request) -> ApiError {
    ApiError::RouteNotFound(request.uri().path().to_owned())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// A panic is a bug; the client gets the generic 500 and the log gets the message.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
