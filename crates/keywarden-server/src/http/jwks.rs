//! `GET /.well-known/jwks.json`: the public keys that verify short-lived tokens (RFC 7517),
//! without authentication. Not in the Unkey envelope: JWT libraries read this shape.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keywarden_core::token::Jwk;
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let body = JwkSet {
        keys: state.service.published_signing_keys(),
    };
    (
        StatusCode::OK,
        // Short, so a verifier that cached the set sees a new key soon; one that meets an
        // unknown `kid` should fetch again anyway.
        [(header::CACHE_CONTROL, "public, max-age=60")],
        axum::Json(body),
    )
        .into_response()
}
