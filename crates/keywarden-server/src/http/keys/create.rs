//! `keys.createKey`.

use axum::extract::State;
use keywarden_core::id::ApiId;
use keywarden_core::identity::ExternalId;
use keywarden_core::key_format::{ByteLength, KeyPrefix};
use keywarden_core::text::KeyName;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::ApiJson;
use crate::http::fields::Fields;
use crate::http::wire::{
    CreditsBody, LimitBody, RestrictionsBody, parse_expires, parse_id, parse_limits, parse_meta,
    parse_new_credits, parse_restrictions, parse_role_names, parse_slugs,
};
use crate::service::{Caller, NewKey};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyBody {
    api_id: Option<String>,
    prefix: Option<String>,
    name: Option<String>,
    byte_length: Option<i64>,
    external_id: Option<String>,
    meta: Option<Map<String, Value>>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
    expires: Option<i64>,
    credits: Option<CreditsBody>,
    ratelimits: Option<Vec<LimitBody>>,
    enabled: Option<bool>,
    recoverable: Option<bool>,
    /// Keywarden extension: where the key may be used from.
    restrictions: Option<RestrictionsBody>,
}

impl TryFrom<CreateKeyBody> for NewKey {
    type Error = ApiError;

    fn try_from(body: CreateKeyBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let api_id = f
            .required("body.apiId", body.api_id)
            .and_then(|s| parse_id(&mut f, "body.apiId", &s, 3, ApiId::parse));
        let prefix = body
            .prefix
            .and_then(|p| f.check("body.prefix", KeyPrefix::parse(&p)));
        let name = body
            .name
            .and_then(|n| f.check("body.name", KeyName::parse(&n)));
        let byte_length = body.byte_length.and_then(|n| {
            let n = f.range("body.byteLength", n, ByteLength::MIN, ByteLength::MAX)?;
            ByteLength::new(n)
        });
        let external_id = body
            .external_id
            .and_then(|e| f.check("body.externalId", ExternalId::parse(&e)));
        let roles = parse_role_names(&mut f, "body.roles", body.roles.unwrap_or_default());
        let permissions = parse_slugs(
            &mut f,
            "body.permissions",
            body.permissions.unwrap_or_default(),
        );
        let ratelimits = match body.ratelimits {
            Some(items) => parse_limits(&mut f, "body.ratelimits", items),
            None => Some(Vec::new()),
        };
        let meta = body.meta.and_then(|m| parse_meta(&mut f, "body.meta", m));
        let expires = body
            .expires
            .and_then(|e| parse_expires(&mut f, "body.expires", e));
        let credits = match body.credits {
            Some(c) => parse_new_credits(&mut f, "body.credits", c).flatten(),
            None => None,
        };
        let restrictions = match body.restrictions {
            Some(r) => parse_restrictions(&mut f, "body.restrictions", r),
            None => Some(None),
        };
        let access = roles.zip(permissions);
        f.finish(api_id.zip(ratelimits).zip(access).zip(restrictions).map(
            |(((api_id, ratelimits), (roles, permissions)), restrictions)| NewKey {
                restrictions,
                api_id,
                roles,
                permissions,
                external_id,
                ratelimits,
                prefix,
                byte_length,
                name,
                meta,
                expires,
                credits,
                enabled: body.enabled.unwrap_or(true),
                recoverable: body.recoverable.unwrap_or(false),
            },
        ))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyData {
    key_id: String,
    key: String,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<Data<CreateKeyData>, ApiError> {
    let created = state.service.create_key(&caller, body.try_into()?).await?;
    Ok(Data(CreateKeyData {
        key_id: created.key_id.to_string(),
        key: created.key.expose().to_owned(),
    }))
}
