//! `keys.migrateKeys`: import keys from another system by their SHA-256 hashes.

use axum::extract::State;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::ApiId;
use keywarden_core::text::KeyName;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::ApiJson;
use crate::http::fields::Fields;
use crate::http::wire::{CreditsBody, parse_expires, parse_id, parse_meta, parse_new_credits};
use crate::service::{Caller, ImportedKey};
use crate::state::AppState;

/// Most keys one call imports; larger imports take several calls.
const MAX_KEYS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateKeyItem {
    hash: Option<String>,
    name: Option<String>,
    external_id: Option<String>,
    meta: Option<Map<String, Value>>,
    roles: Option<Vec<Value>>,
    permissions: Option<Vec<Value>>,
    expires: Option<i64>,
    enabled: Option<bool>,
    credits: Option<CreditsBody>,
    ratelimits: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateKeysBody {
    migration_id: Option<String>,
    api_id: Option<String>,
    keys: Option<Vec<MigrateKeyItem>>,
}

fn imported_key(f: &mut Fields, i: usize, item: MigrateKeyItem) -> Option<ImportedKey> {
    let at = |field: &str| format!("body.keys[{i}].{field}");
    let hash = f.required(at("hash"), item.hash)?;
    if !f.length(at("hash"), &hash, 3, 1024) {
        return None;
    }
    if item.external_id.is_some() {
        f.unsupported(&at("externalId"), "identities");
    }
    f.unsupported_items(&at("roles"), item.roles.as_deref(), "roles");
    f.unsupported_items(
        &at("permissions"),
        item.permissions.as_deref(),
        "permissions",
    );
    f.unsupported_items(&at("ratelimits"), item.ratelimits.as_deref(), "rate limits");
    let name = item
        .name
        .and_then(|n| f.check(at("name"), KeyName::parse(&n)));
    let meta = item.meta.and_then(|m| parse_meta(f, &at("meta"), m));
    let expires = item
        .expires
        .and_then(|e| parse_expires(f, &at("expires"), e));
    let credits = match item.credits {
        Some(c) => parse_new_credits(f, &at("credits"), c)?,
        None => None,
    };
    Some(ImportedKey {
        digest: KeyDigest::from_base64_or_hex(&hash).ok(),
        hash,
        name,
        meta,
        expires,
        enabled: item.enabled.unwrap_or(true),
        credits,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Migrated {
    hash: String,
    key_id: String,
}

#[derive(Serialize)]
pub struct MigrateKeysData {
    migrated: Vec<Migrated>,
    failed: Vec<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn migrate_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MigrateKeysBody>,
) -> Result<Data<MigrateKeysData>, ApiError> {
    let mut f = Fields::new();
    if let Some(id) = f.required("body.migrationId", body.migration_id) {
        f.length("body.migrationId", &id, 3, 255);
    }
    let api_id = f
        .required("body.apiId", body.api_id)
        .and_then(|s| parse_id(&mut f, "body.apiId", &s, 3, ApiId::parse));
    let items = f.required("body.keys", body.keys).unwrap_or_default();
    if !(1..=MAX_KEYS).contains(&items.len()) && f.is_ok() {
        f.error("body.keys", format!("must have 1 to {MAX_KEYS} items"));
    }
    let keys: Vec<ImportedKey> = items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| imported_key(&mut f, i, item))
        .collect();
    let api_id = f.finish(api_id)?;
    let report = state.service.migrate_keys(&caller, &api_id, keys).await?;
    Ok(Data(MigrateKeysData {
        migrated: report
            .migrated
            .into_iter()
            .map(|(hash, key_id)| Migrated {
                hash,
                key_id: key_id.to_string(),
            })
            .collect(),
        failed: report.failed,
    }))
}
