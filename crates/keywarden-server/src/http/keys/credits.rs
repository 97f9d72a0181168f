//! `keys.updateCredits`: set, increment or decrement a key's balance.

use axum::extract::State;
use keywarden_core::credits::CreditAdjustment;
use serde::Deserialize;

use super::key_id;
use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::ApiJson;
use crate::http::fields::{Fields, Nullable};
use crate::http::wire::CreditsData;
use crate::service::{Caller, CreditsOperation};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCreditsBody {
    key_id: Option<String>,
    operation: Option<String>,
    #[serde(default)]
    value: Nullable<i64>,
}

fn operation(
    f: &mut Fields,
    name: Option<String>,
    value: Nullable<i64>,
) -> Option<CreditsOperation> {
    let name = f.required("body.operation", name)?;
    let mut amount = |value: Option<i64>| f.range("body.value", value?, 0, i64::MAX);
    match (name.as_str(), value) {
        // `set` needs `value` to be present so that forgetting it cannot make a key
        // unlimited; an explicit `null` does.
        ("set", Nullable::Absent) => {
            f.error(
                "body.value",
                "is required for set; send null for unlimited usage",
            );
            None
        }
        ("set", Nullable::Null) => Some(CreditsOperation::Set(None)),
        ("set", Nullable::Value(v)) => Some(CreditsOperation::Set(Some(amount(Some(v))?))),
        ("increment" | "decrement", Nullable::Absent | Nullable::Null) => {
            f.error("body.value", format!("is required for {name}"));
            None
        }
        ("increment", Nullable::Value(v)) => Some(CreditsOperation::Adjust(
            CreditAdjustment::Increment(amount(Some(v))?),
        )),
        ("decrement", Nullable::Value(v)) => Some(CreditsOperation::Adjust(
            CreditAdjustment::Decrement(amount(Some(v))?),
        )),
        _ => {
            f.error(
                "body.operation",
                "must be one of \"set\", \"increment\", \"decrement\"",
            );
            None
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn update_credits(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateCreditsBody>,
) -> Result<Data<CreditsData>, ApiError> {
    let mut f = Fields::new();
    let id = key_id(&mut f, body.key_id);
    let op = operation(&mut f, body.operation, body.value);
    let (id, op) = f.finish(id.zip(op))?;
    let credits = state.service.update_credits(&caller, &id, op).await?;
    Ok(Data(CreditsData::of(credits.as_ref())))
}
