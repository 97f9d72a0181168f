//! APIs: create, read, delete, and list their keys.

use keywarden_core::api::{Api, ApiUpdate, ApiUpdateError};
use keywarden_core::audit::AuditAction;
use keywarden_core::change::Change;
use keywarden_core::id::ApiId;
use keywarden_core::identity::ExternalId;
use keywarden_core::key::Patch;
use keywarden_core::key_format::{ByteLength, KeyPrefix};
use keywarden_core::key_lifetime::{KeyLifetime, Lifetime};
use keywarden_core::restriction::Restrictions;
use keywarden_core::root_key::ops;
use keywarden_core::store::{Page, PageRequest};
use keywarden_core::text::ApiName;

use super::{Caller, Keywarden, ReadKey};
use crate::error::ApiError;

/// A new API. Defaults and delete protection are Keywarden extensions to `apis.createApi`.
#[derive(Debug)]
pub struct NewApi {
    pub name: ApiName,
    pub default_prefix: Option<KeyPrefix>,
    pub default_byte_length: Option<ByteLength>,
    pub delete_protection: bool,
    pub restrictions: Option<Restrictions>,
    pub key_lifetime: KeyLifetime,
}

impl Keywarden {
    pub async fn create_api(&self, caller: &Caller, new: NewApi) -> Result<ApiId, ApiError> {
        caller.require_everywhere(ops::CREATE_API)?;
        let now = self.now();
        let api = Api {
            id: ApiId::generate(now),
            workspace_id: caller.workspace().clone(),
            name: new.name,
            default_prefix: new.default_prefix,
            default_byte_length: new.default_byte_length.unwrap_or(ByteLength::DEFAULT),
            delete_protection: new.delete_protection,
            created_at: now,
            restrictions: new.restrictions,
            key_lifetime: new.key_lifetime,
        };
        let audit = caller
            .audit(now, AuditAction::ApiCreate)
            .target("api", api.id.as_str(), Some(api.name.as_str()))
            .change("name", api.name.as_str())
            .change(
                "defaultPrefix",
                api.default_prefix.as_ref().map(|p| p.as_str()),
            )
            .change("defaultByteLength", api.default_byte_length.get())
            .change("deleteProtection", api.delete_protection)
            .change(
                "restrictions",
                api.restrictions.as_ref().map(Restrictions::to_json),
            )
            .change(
                "defaultKeyLifetimeMs",
                api.key_lifetime.default_lifetime().map(Lifetime::as_millis),
            )
            .change(
                "maxKeyLifetimeMs",
                api.key_lifetime.max_lifetime().map(Lifetime::as_millis),
            );
        self.store.insert_api(&api, &audit).await?;
        tracing::info!(api_id = %api.id, "api created");
        Ok(api.id)
    }

    pub async fn get_api(&self, caller: &Caller, id: &ApiId) -> Result<Api, ApiError> {
        caller.require_on(ops::READ_API, id.as_str(), ApiError::api_not_found)?;
        self.store
            .api(caller.workspace(), id)
            .await?
            .ok_or_else(ApiError::api_not_found)
    }

    /// Changes an API's restrictions or expiry policy (`apis.updateApi`, a Keywarden
    /// extension). New restrictions reach every node's cached keys at once; a new policy
    /// applies to keys created, updated or rerolled from now on.
    pub async fn update_api(
        &self,
        caller: &Caller,
        id: &ApiId,
        update: ApiUpdate,
    ) -> Result<Api, ApiError> {
        caller.require_on(ops::UPDATE_API, id.as_str(), ApiError::api_not_found)?;
        let now = self.now();
        let mut audit = caller
            .audit(now, AuditAction::ApiUpdate)
            .target("api", id.as_str(), None);
        let restrictions_changed = update.restrictions != Patch::Keep;
        if let Some(value) = patch_json(&update.restrictions, Restrictions::to_json) {
            audit = audit.change("restrictions", value);
        }
        if let Some(value) = patch_json(&update.default_key_lifetime, |l| l.as_millis().into()) {
            audit = audit.change("defaultKeyLifetimeMs", value);
        }
        if let Some(value) = patch_json(&update.max_key_lifetime, |l| l.as_millis().into()) {
            audit = audit.change("maxKeyLifetimeMs", value);
        }
        let api = self
            .store
            .update_api(caller.workspace(), id, update, &audit)
            .await?
            .map_err(|e| match e {
                ApiUpdateError::NotFound => ApiError::api_not_found(),
                ApiUpdateError::Lifetime(e) => {
                    ApiError::invalid_field("body.defaultKeyLifetimeMs", e.to_string())
                }
            })?;
        if restrictions_changed {
            // Cached keys carry their API's restrictions. Changing them is a rare admin
            // operation, so every node drops all cached records rather than tracking which
            // belong to the API.
            self.announce(vec![Change::AllKeysChanged]).await;
        }
        tracing::info!(api_id = %id, "api updated");
        Ok(api)
    }

    pub async fn delete_api(&self, caller: &Caller, id: &ApiId) -> Result<(), ApiError> {
        caller.require_on(ops::DELETE_API, id.as_str(), ApiError::api_not_found)?;
        let api = self
            .store
            .api(caller.workspace(), id)
            .await?
            .ok_or_else(ApiError::api_not_found)?;
        if api.delete_protection {
            return Err(ApiError::Protected(
                "The API has delete protection enabled; it cannot be deleted.".into(),
            ));
        }
        let now = self.now();
        let audit = caller.audit(now, AuditAction::ApiDelete).target(
            "api",
            id.as_str(),
            Some(api.name.as_str()),
        );
        let digests = self
            .store
            .delete_api(caller.workspace(), id, now, &audit)
            .await?
            .ok_or_else(ApiError::api_not_found)?;
        self.announce(digests.iter().map(|d| Change::KeyChanged(*d)).collect())
            .await;
        tracing::info!(api_id = %id, keys = digests.len(), "api deleted");
        Ok(())
    }

    /// A page of an API's live keys. `decrypt` needs `decrypt_key`, and adds the plaintext of
    /// recoverable keys.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        api_id: &ApiId,
        external_id: Option<&ExternalId>,
        page: PageRequest,
        decrypt: bool,
    ) -> Result<Page<ReadKey>, ApiError> {
        caller.require_on(ops::READ_KEY, api_id.as_str(), ApiError::api_not_found)?;
        if decrypt {
            caller.require_on(ops::DECRYPT_KEY, api_id.as_str(), ApiError::api_not_found)?;
        }
        self.store
            .api(caller.workspace(), api_id)
            .await?
            .ok_or_else(ApiError::api_not_found)?;
        let page = self
            .store
            .keys_of_api(caller.workspace(), api_id, external_id, page)
            .await?;
        let plaintexts = if decrypt {
            self.open_keys(caller.workspace(), &page.items).await?
        } else {
            vec![None; page.items.len()]
        };
        Ok(Page {
            items: page
                .items
                .into_iter()
                .zip(plaintexts)
                .map(|(key, plaintext)| ReadKey {
                    key: self.as_of_now(key),
                    plaintext,
                })
                .collect(),
            next: page.next,
        })
    }
}

/// What an audit entry records for a patched field: the new value, `null` for a clear,
/// nothing when the field is kept.
fn patch_json<T>(
    patch: &Patch<T>,
    value: impl FnOnce(&T) -> serde_json::Value,
) -> Option<serde_json::Value> {
    match patch {
        Patch::Keep => None,
        Patch::Clear => Some(serde_json::Value::Null),
        Patch::Set(v) => Some(value(v)),
    }
}
