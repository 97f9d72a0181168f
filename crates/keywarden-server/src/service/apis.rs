//! APIs: create, read, delete, and list their keys.

use keywarden_core::api::Api;
use keywarden_core::audit::AuditAction;
use keywarden_core::change::Change;
use keywarden_core::id::ApiId;
use keywarden_core::identity::ExternalId;
use keywarden_core::key_format::{ByteLength, KeyPrefix};
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
            .change("deleteProtection", api.delete_protection);
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
