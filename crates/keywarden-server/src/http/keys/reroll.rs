//! `keys.rerollKey`: a new key with the old one's configuration; the old one keeps working
//! for `expiration` milliseconds, but never longer than it already would have.

use axum::extract::State;
use keywarden_core::key::MAX_EXPIRES;
use serde::{Deserialize, Serialize};

use super::key_id;
use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::ApiJson;
use crate::http::fields::Fields;
use crate::service::Caller;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RerollKeyBody {
    key_id: Option<String>,
    expiration: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RerollKeyData {
    key_id: String,
    key: String,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn reroll_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RerollKeyBody>,
) -> Result<Data<RerollKeyData>, ApiError> {
    let mut f = Fields::new();
    let id = key_id(&mut f, body.key_id);
    let grace = f
        .required("body.expiration", body.expiration)
        .and_then(|g| f.range("body.expiration", g, 0, MAX_EXPIRES));
    let (id, grace) = f.finish(id.zip(grace))?;
    let created = state.service.reroll_key(&caller, &id, grace).await?;
    Ok(Data(RerollKeyData {
        key_id: created.key_id.to_string(),
        key: created.key.expose().to_owned(),
    }))
}
