//! `analytics.getVerifications`: a query over the workspace's verification events, answered
//! with an array of row objects (see `docs/analytics.md`).

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use keywarden_core::analytics_query::MAX_QUERY_BYTES;
use keywarden_core::store::AnalyticsRow;
use serde::Deserialize;

use super::envelope::Data;
use super::extract::ApiJson;
use super::fields::Fields;
use crate::error::ApiError;
use crate::service::Caller;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/analytics.getVerifications", post(get_verifications))
}

#[derive(Debug, Deserialize)]
struct GetVerificationsBody {
    query: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_verifications(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<GetVerificationsBody>,
) -> Result<Data<Vec<AnalyticsRow>>, ApiError> {
    let mut f = Fields::new();
    let query = f.required("body.query", body.query);
    if let Some(query) = &query
        && (query.trim().is_empty() || query.len() > MAX_QUERY_BYTES)
    {
        f.error(
            "body.query",
            format!("must be a non-empty SQL query of at most {MAX_QUERY_BYTES} bytes"),
        );
    }
    let query = f.finish(query)?;
    let rows = state.service.get_verifications(&caller, &query).await?;
    Ok(Data(rows))
}
