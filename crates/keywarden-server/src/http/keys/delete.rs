//! `keys.deleteKey`: soft by default (the row stays, verification says `NOT_FOUND`), or
//! permanent.

use axum::extract::State;
use serde::Deserialize;

use super::key_id;
use crate::error::ApiError;
use crate::http::envelope::{Data, Empty};
use crate::http::extract::ApiJson;
use crate::http::fields::Fields;
use crate::service::Caller;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteKeyBody {
    key_id: Option<String>,
    #[serde(default)]
    permanent: bool,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DeleteKeyBody>,
) -> Result<Data<Empty>, ApiError> {
    let mut f = Fields::new();
    let id = key_id(&mut f, body.key_id);
    let id = f.finish(id)?;
    state
        .service
        .delete_key(&caller, &id, body.permanent)
        .await?;
    Ok(Data(Empty {}))
}
