//! `keys.verifyKey`. Every verification outcome is a 200; only a malformed request or a
//! root-key problem is an error.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keywarden_core::id::ApiId;
use keywarden_core::meta::Meta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plaintext_key;
use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::ApiJson;
use crate::http::fields::Fields;
use crate::http::wire::parse_id;
use crate::service::{Caller, Verification, VerifyInput};
use crate::state::AppState;

const MAX_COST: i64 = 1_000_000_000_000;

#[derive(Debug, Deserialize)]
pub struct VerifyCreditsBody {
    cost: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyKeyBody {
    key: Option<String>,
    tags: Option<Vec<String>>,
    permissions: Option<String>,
    credits: Option<VerifyCreditsBody>,
    ratelimits: Option<Vec<Value>>,
    migration_id: Option<String>,
    keyspaces: Option<Vec<String>>,
}

impl TryFrom<VerifyKeyBody> for VerifyInput {
    type Error = ApiError;

    fn try_from(body: VerifyKeyBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let key = plaintext_key(&mut f, body.key);
        if let Some(tags) = &body.tags {
            if tags.len() > 20 {
                f.error("body.tags", "must have at most 20 items");
            }
            for (i, tag) in tags.iter().enumerate() {
                f.length(&format!("body.tags[{i}]"), tag, 1, 512);
            }
        }
        if body.permissions.is_some() {
            f.unsupported("body.permissions", "permission queries");
        }
        f.unsupported_items("body.ratelimits", body.ratelimits.as_deref(), "rate limits");
        let cost = body.credits.and_then(|c| {
            let cost = f.required("body.credits.cost", c.cost)?;
            f.range("body.credits.cost", cost, 0, MAX_COST)
        });
        if let Some(id) = &body.migration_id {
            // Only SHA-256 hashes are stored, so there is no legacy scheme to migrate from;
            // the field is accepted for compatibility.
            f.length("body.migrationId", id, 0, 256);
        }
        let keyspaces = body.keyspaces.map(|spaces| {
            spaces
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    parse_id(&mut f, &format!("body.keyspaces[{i}]"), s, 1, ApiId::parse)
                })
                .collect()
        });
        f.finish(key.map(|key| VerifyInput {
            key,
            cost,
            keyspaces,
        }))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyKeyData<'a> {
    valid: bool,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyspace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<[&'a str; 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<[&'a str; 0]>,
}

impl<'a> VerifyKeyData<'a> {
    fn of(v: &'a Verification) -> Self {
        let key = v.key.as_deref();
        Self {
            valid: v.code == keywarden_core::verify::VerifyCode::Valid,
            code: v.code.as_str(),
            key_id: key.map(|k| k.id.as_str()),
            keyspace_id: key.map(|k| k.api_id.as_str()),
            name: key.and_then(|k| k.name.as_ref()).map(|n| n.as_str()),
            meta: key.and_then(|k| k.meta.as_ref()),
            expires: key.and_then(|k| k.expires).map(|e| e.as_millis()),
            credits: v.credits,
            enabled: key.map(|k| k.enabled),
            permissions: key.map(|_| []),
            roles: key.map(|_| []),
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyKeyBody>,
) -> Result<Response, ApiError> {
    let verification = state.service.verify(&caller, body.try_into()?).await?;
    Ok(Data(VerifyKeyData::of(&verification)).into_response())
}
