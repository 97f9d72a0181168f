//! `keys.getKey` and `keys.whoami`: a key by id, or by its plaintext.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{key_id, plaintext_key};
use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::ApiJson;
use crate::http::fields::Fields;
use crate::http::wire::KeyData;
use crate::service::Caller;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetKeyBody {
    key_id: Option<String>,
    #[serde(default)]
    decrypt: bool,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<GetKeyBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let id = key_id(&mut f, body.key_id);
    let id = f.finish(id)?;
    let key = state.service.get_key(&caller, &id, body.decrypt).await?;
    Ok(Data(KeyData::read(&key)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct WhoamiBody {
    key: Option<super::SubmittedKey>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<WhoamiBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let key = plaintext_key(&mut f, body.key);
    let key = f.finish(key)?;
    let record = state.service.whoami(&caller, &key).await?;
    Ok(Data(KeyData::of(&record)).into_response())
}
