//! Keys: issue, read, change, delete, rotate, adjust credits and import.

use keywarden_core::api::Api;
use keywarden_core::audit::AuditAction;
use keywarden_core::change::Change;
use keywarden_core::credits::{CreditAdjustment, CreditRefill, Credits};
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, KeyId};
use keywarden_core::identity::ExternalId;
use keywarden_core::key::{KeyRecord, KeyUpdate, Patch, expiry_after_rotation};
use keywarden_core::key_change::{KeyChange, KeyChangeError};
use keywarden_core::key_format::{self, ByteLength, KeyPrefix};
use keywarden_core::key_lifetime::LifetimeError;
use keywarden_core::meta::Meta;
use keywarden_core::named_limit::{LimitSpec, replace_by_name};
use keywarden_core::rbac::{Permission, PermissionSlug, Role, RoleName};
use keywarden_core::restriction::Restrictions;
use keywarden_core::root_key::ops;
use keywarden_core::secret::PlaintextKey;
use keywarden_core::store::ImportOutcome;
use keywarden_core::text::KeyName;
use keywarden_core::time::UnixMillis;

use super::audit::{describe_key_update, describe_new_key};
use super::{Caller, Keywarden};
use crate::error::ApiError;

/// A starting credit balance with an optional refill.
#[derive(Debug, Clone, Copy)]
pub struct NewCredits {
    pub remaining: i64,
    pub refill: Option<CreditRefill>,
}

/// A key to issue (`keys.createKey`).
#[derive(Debug)]
pub struct NewKey {
    pub api_id: ApiId,
    pub prefix: Option<KeyPrefix>,
    pub byte_length: Option<ByteLength>,
    pub name: Option<KeyName>,
    pub meta: Option<Meta>,
    pub expires: Option<UnixMillis>,
    /// `None`: unlimited usage.
    pub credits: Option<NewCredits>,
    pub enabled: bool,
    pub recoverable: bool,
    /// Links the key to this identity, created if it does not exist yet.
    pub external_id: Option<ExternalId>,
    pub ratelimits: Vec<LimitSpec>,
    /// Held directly; missing slugs are created (with `rbac.*.create_permission`).
    pub permissions: Vec<PermissionSlug>,
    /// Must exist.
    pub roles: Vec<RoleName>,
    /// Keywarden extension: where the key may be used from.
    pub restrictions: Option<Restrictions>,
}

/// Replacements for what a key holds, as `keys.updateKey` asks for them (resolved to
/// stored permissions and roles before the update).
#[derive(Debug, Default)]
pub struct AccessUpdate {
    pub permissions: Option<Vec<PermissionSlug>>,
    pub roles: Option<Vec<RoleName>>,
}

/// A key as `keys.getKey` and `apis.listKeys` show it: the record, and the plaintext when
/// the caller asked to decrypt a recoverable key.
#[derive(Debug)]
pub struct ReadKey {
    pub key: KeyRecord,
    pub plaintext: Option<PlaintextKey>,
}

/// A key just issued: its id and the plaintext, returned this once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key_id: KeyId,
    pub key: PlaintextKey,
}

/// `keys.updateCredits`.
#[derive(Debug, Clone, Copy)]
pub enum CreditsOperation {
    /// `None`: unlimited.
    Set(Option<i64>),
    Adjust(CreditAdjustment),
}

/// A key imported by hash (`keys.migrateKeys`); `digest` is `None` when the given hash is not
/// a SHA-256 digest, which fails that key alone.
#[derive(Debug)]
pub struct ImportedKey {
    pub hash: String,
    pub digest: Option<KeyDigest>,
    pub name: Option<KeyName>,
    pub meta: Option<Meta>,
    pub expires: Option<UnixMillis>,
    pub enabled: bool,
    pub credits: Option<NewCredits>,
}

/// What `keys.migrateKeys` did: imported keys with their new ids, and the hashes that failed.
#[derive(Debug, Default)]
pub struct MigrationReport {
    pub migrated: Vec<(String, KeyId)>,
    pub failed: Vec<String>,
}

fn credits_of(new: Option<NewCredits>, now: UnixMillis) -> Result<Option<Credits>, ApiError> {
    new.map(|c| Credits::new(c.remaining, c.refill, now))
        .transpose()
        .map_err(|e| ApiError::invalid_field("body.credits.remaining", e.to_string()))
}

/// An expiry the API's policy does not allow: the request's fault.
fn lifetime_error(e: LifetimeError) -> ApiError {
    ApiError::invalid_field("body.expires", e.to_string())
}

fn change_error(e: KeyChangeError) -> ApiError {
    match e {
        KeyChangeError::NotFound => ApiError::key_not_found(),
        KeyChangeError::Update(e) => ApiError::invalid_field("body.credits", e.to_string()),
        KeyChangeError::Adjustment(e) => ApiError::invalid_field("body.operation", e.to_string()),
        KeyChangeError::NegativeCredits(e) => ApiError::invalid_field("body.value", e.to_string()),
    }
}

impl Keywarden {
    /// The API that new keys (created or imported) go into, if the caller may issue keys
    /// there; otherwise as if it did not exist.
    async fn api_for_new_keys(&self, caller: &Caller, api_id: &ApiId) -> Result<Api, ApiError> {
        caller.require_on(
            ops::CREATE_KEY,
            api_id.as_str(),
            ApiError::specified_api_not_found,
        )?;
        self.store
            .api(caller.workspace(), api_id)
            .await?
            .ok_or_else(ApiError::specified_api_not_found)
    }

    pub async fn create_key(&self, caller: &Caller, new: NewKey) -> Result<CreatedKey, ApiError> {
        let api = self.api_for_new_keys(caller, &new.api_id).await?;
        if new.recoverable {
            caller.require_on(
                ops::ENCRYPT_KEY,
                api.id.as_str(),
                ApiError::specified_api_not_found,
            )?;
            self.require_recoverable()?;
        }
        // Everything that can refuse the call comes before anything that creates objects.
        let (permissions, roles) = self
            .resolve_access(caller, Some(new.permissions), Some(new.roles))
            .await?;
        let identity = match new.external_id {
            Some(external_id) => Some(self.identity_for_key(caller, external_id).await?),
            None => None,
        };
        let now = self.now();
        let expires = api
            .key_lifetime
            .for_new_key(new.expires, now)
            .map_err(lifetime_error)?;
        let prefix = new.prefix.or(api.default_prefix);
        let byte_length = new.byte_length.unwrap_or(api.default_byte_length);
        let issued = key_format::generate(prefix.as_ref(), byte_length);
        let id = KeyId::generate(now);
        let sealed = if new.recoverable {
            Some(
                self.seal(caller.workspace(), &id, &issued.plaintext)
                    .await?,
            )
        } else {
            None
        };
        let mut record = KeyRecord {
            id,
            workspace_id: caller.workspace().clone(),
            api_id: api.id,
            digest: issued.plaintext.digest(),
            start: issued.start,
            prefix,
            byte_length,
            name: new.name,
            meta: new.meta,
            enabled: new.enabled,
            expires,
            credits: credits_of(new.credits, now)?,
            identity,
            ratelimits: replace_by_name(&[], new.ratelimits, now),
            permissions: Vec::new(),
            roles: Vec::new(),
            created_at: now,
            updated_at: None,
            deleted_at: None,
            last_used: None,
            rotated_to: None,
            replaced_at: None,
            sealed,
            restrictions: new.restrictions,
            api_restrictions: api.restrictions,
        };
        // Through the setters, which keep both lists ordered and without repeats.
        record.set_permissions(permissions.unwrap_or_default());
        record.set_roles(roles.unwrap_or_default());
        let audit = describe_new_key(caller.audit(now, AuditAction::KeyCreate), &record);
        self.store.insert_key(&record, &audit).await?;
        self.announce(vec![Change::KeyAdded(record.digest)]).await;
        tracing::info!(key_id = %record.id, api_id = %record.api_id, "key created");
        Ok(CreatedKey {
            key_id: record.id,
            key: issued.plaintext,
        })
    }

    /// The stored permissions and roles a create or update gives a key. Granting either needs
    /// the RBAC permission for it (replacing a non-empty set also removes).
    async fn resolve_access(
        &self,
        caller: &Caller,
        permissions: Option<Vec<PermissionSlug>>,
        roles: Option<Vec<RoleName>>,
    ) -> Result<(Option<Vec<Permission>>, Option<Vec<Role>>), ApiError> {
        // Roles first: they are only read, so an unknown one fails the call before missing
        // permissions are created.
        let roles = match roles {
            Some(names) if !names.is_empty() => {
                caller.require_everywhere(ops::ADD_ROLE_TO_KEY)?;
                Some(self.roles_named(caller, &names).await?)
            }
            Some(_) => Some(Vec::new()),
            None => None,
        };
        let permissions = match permissions {
            Some(slugs) if !slugs.is_empty() => {
                caller.require_everywhere(ops::ADD_PERMISSION_TO_KEY)?;
                Some(self.permissions_for(caller, &slugs).await?)
            }
            Some(_) => Some(Vec::new()),
            None => None,
        };
        Ok((permissions, roles))
    }

    /// A live key of the caller's workspace that the caller may act on with `op`.
    pub(super) async fn reachable_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        op: keywarden_core::root_key::Operation,
    ) -> Result<KeyRecord, ApiError> {
        caller.require_somewhere(op)?;
        let key = self
            .store
            .key(caller.workspace(), id)
            .await?
            .ok_or_else(ApiError::key_not_found)?;
        caller.require_on(op, key.api_id.as_str(), ApiError::key_not_found)?;
        Ok(key)
    }

    pub async fn get_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        decrypt: bool,
    ) -> Result<ReadKey, ApiError> {
        let key = self.reachable_key(caller, id, ops::READ_KEY).await?;
        let plaintext = if decrypt {
            caller.require_on(
                ops::DECRYPT_KEY,
                key.api_id.as_str(),
                ApiError::key_not_found,
            )?;
            self.open_keys(caller.workspace(), std::slice::from_ref(&key))
                .await?
                .pop()
                .flatten()
        } else {
            None
        };
        Ok(ReadKey {
            key: self.as_of_now(key),
            plaintext,
        })
    }

    /// A key as readers should see it now: with any refill that fell due applied, even if
    /// the store has not been written yet (that happens on the next spend or refill pass).
    pub(super) fn as_of_now(&self, mut key: KeyRecord) -> KeyRecord {
        if let Some(credits) = key.credits.as_mut() {
            credits.apply_due_refill(self.now());
        }
        key
    }

    /// The key whose plaintext is `key`. Unknown keys, deleted keys and keys outside the
    /// caller's reach all answer 404.
    pub async fn whoami(&self, caller: &Caller, key: &str) -> Result<KeyRecord, ApiError> {
        caller.require_somewhere(ops::READ_KEY)?;
        let record = self
            .keys
            .lookup_fresh(&KeyDigest::of(key), self.store.as_ref())
            .await?
            .filter(|k| k.deleted_at.is_none() && &k.workspace_id == caller.workspace())
            .ok_or_else(ApiError::key_not_found)?;
        caller.require_on(
            ops::READ_KEY,
            record.api_id.as_str(),
            ApiError::key_not_found,
        )?;
        Ok(self.as_of_now(record))
    }

    /// Applies a partial update; `external_id` links the key to that identity (created if
    /// needed) or, when cleared, unlinks it.
    pub async fn update_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        mut update: KeyUpdate,
        external_id: Patch<ExternalId>,
        access: AccessUpdate,
    ) -> Result<(), ApiError> {
        let current = self.reachable_key(caller, id, ops::UPDATE_KEY).await?;
        if update.expires != Patch::Keep {
            let api = self
                .store
                .api(caller.workspace(), &current.api_id)
                .await?
                .ok_or_else(ApiError::key_not_found)?;
            api.key_lifetime
                .check_update(&update.expires, self.now())
                .map_err(lifetime_error)?;
        }
        (update.permissions, update.roles) = self
            .resolve_access(caller, access.permissions, access.roles)
            .await?;
        update.identity = match external_id {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(external_id) => {
                Patch::Set(self.identity_for_key(caller, external_id).await?)
            }
        };
        if update.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let audit = describe_key_update(
            caller
                .audit(now, AuditAction::KeyUpdate)
                .target("key", id.as_str(), None)
                .target("api", current.api_id.as_str(), None),
            &update,
        );
        let key = self
            .store
            .change_key(
                caller.workspace(),
                id,
                KeyChange::Update(Box::new(update)),
                now,
                &audit,
            )
            .await?
            .map_err(change_error)?;
        self.announce(vec![Change::KeyChanged(key.digest)]).await;
        tracing::info!(key_id = %id, "key updated");
        Ok(())
    }

    pub async fn delete_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        permanent: bool,
    ) -> Result<(), ApiError> {
        let key = self.reachable_key(caller, id, ops::DELETE_KEY).await?;
        let now = self.now();
        let audit = caller
            .audit(now, AuditAction::KeyDelete)
            .target("key", id.as_str(), key.name.as_ref().map(|n| n.as_str()))
            .target("api", key.api_id.as_str(), None)
            .change("permanent", permanent);
        let key = self
            .store
            .delete_key(caller.workspace(), id, permanent, now, &audit)
            .await?
            .ok_or_else(ApiError::key_not_found)?;
        let change = if permanent {
            Change::KeyRemoved(key.digest)
        } else {
            Change::KeyChanged(key.digest)
        };
        self.announce(vec![change]).await;
        tracing::info!(key_id = %id, permanent, "key deleted");
        Ok(())
    }

    /// Issues a replacement for a key. The old key stays valid for `grace_ms`, but never longer
    /// than it already would have.
    pub async fn reroll_key(
        &self,
        caller: &Caller,
        id: &KeyId,
        grace_ms: i64,
    ) -> Result<CreatedKey, ApiError> {
        let old = self.reachable_key(caller, id, ops::CREATE_KEY).await?;
        let api = self
            .store
            .api(caller.workspace(), &old.api_id)
            .await?
            .ok_or_else(ApiError::key_not_found)?;
        // The new key is recoverable when the old one was, as in Unkey.
        if old.sealed.is_some() {
            caller.require_on(
                ops::ENCRYPT_KEY,
                old.api_id.as_str(),
                ApiError::key_not_found,
            )?;
            self.require_recoverable()?;
        }
        let prefix = old.prefix.clone().or(api.default_prefix);
        let now = self.now();
        let issued = key_format::generate(prefix.as_ref(), old.byte_length);
        let mut new = old.rotated(KeyId::generate(now), prefix, &issued, now);
        // The caller did not choose this expiry, so it is clamped, not refused.
        new.expires = api.key_lifetime.for_rerolled_key(new.expires, now);
        if old.sealed.is_some() {
            new.sealed = Some(
                self.seal(caller.workspace(), &new.id, &issued.plaintext)
                    .await?,
            );
        }
        let old_expires = expiry_after_rotation(old.expires, now, grace_ms);
        let audit = caller
            .audit(now, AuditAction::KeyReroll)
            .target("key", id.as_str(), old.name.as_ref().map(|n| n.as_str()))
            .target(
                "key",
                new.id.as_str(),
                new.name.as_ref().map(|n| n.as_str()),
            )
            .target("api", old.api_id.as_str(), None)
            .change("oldExpires", old_expires.as_millis());
        let old_after = self
            .store
            .rotate_key(caller.workspace(), id, &new, old_expires, &audit)
            .await?
            .ok_or_else(ApiError::key_not_found)?;
        self.announce(vec![
            Change::KeyChanged(old_after.digest),
            Change::KeyAdded(new.digest),
        ])
        .await;
        tracing::info!(old_key_id = %id, new_key_id = %new.id, "key rerolled");
        Ok(CreatedKey {
            key_id: new.id,
            key: issued.plaintext,
        })
    }

    pub async fn update_credits(
        &self,
        caller: &Caller,
        id: &KeyId,
        operation: CreditsOperation,
    ) -> Result<Option<Credits>, ApiError> {
        let current = self.reachable_key(caller, id, ops::UPDATE_KEY).await?;
        let now = self.now();
        let (operation, value, change) = match operation {
            CreditsOperation::Set(value) => ("set", value, KeyChange::SetCredits(value)),
            CreditsOperation::Adjust(adjustment) => {
                let (operation, value) = match adjustment {
                    CreditAdjustment::Increment(n) => ("increment", n),
                    CreditAdjustment::Decrement(n) => ("decrement", n),
                };
                (operation, Some(value), KeyChange::AdjustCredits(adjustment))
            }
        };
        let audit = caller
            .audit(now, AuditAction::KeyCreditsUpdate)
            .target("key", id.as_str(), None)
            .target("api", current.api_id.as_str(), None)
            .change("operation", operation)
            .change("value", value);
        let key = self
            .store
            .change_key(caller.workspace(), id, change, now, &audit)
            .await?
            .map_err(change_error)?;
        self.announce(vec![Change::KeyChanged(key.digest)]).await;
        Ok(key.credits)
    }

    /// Imports keys by hash into an API. Keys whose hash is malformed or already stored fail
    /// one by one; the others are imported together.
    pub async fn migrate_keys(
        &self,
        caller: &Caller,
        api_id: &ApiId,
        keys: Vec<ImportedKey>,
    ) -> Result<MigrationReport, ApiError> {
        let api = self.api_for_new_keys(caller, api_id).await?;
        let now = self.now();
        let mut report = MigrationReport::default();
        let mut records = Vec::with_capacity(keys.len());
        let mut hashes = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(digest) = key.digest else {
                report.failed.push(key.hash);
                continue;
            };
            records.push(KeyRecord {
                id: KeyId::generate(now),
                workspace_id: caller.workspace().clone(),
                api_id: api.id.clone(),
                digest,
                // The plaintext was never seen, so there is nothing to show.
                start: String::new(),
                prefix: None,
                byte_length: api.default_byte_length,
                name: key.name,
                meta: key.meta,
                enabled: key.enabled,
                expires: key.expires,
                credits: credits_of(key.credits, now)?,
                identity: None,
                ratelimits: Vec::new(),
                permissions: Vec::new(),
                roles: Vec::new(),
                created_at: now,
                updated_at: None,
                deleted_at: None,
                last_used: None,
                rotated_to: None,
                replaced_at: None,
                sealed: None,
                restrictions: None,
                api_restrictions: None,
            });
            hashes.push(key.hash);
        }
        let audit = caller
            .audit(now, AuditAction::KeysMigrate)
            .target("api", api.id.as_str(), Some(api.name.as_str()))
            .change("keys", records.len());
        let outcomes = self.store.import_keys(&records, &audit).await?;
        let mut added = Vec::new();
        for ((record, hash), outcome) in records.into_iter().zip(hashes).zip(outcomes) {
            match outcome {
                ImportOutcome::Imported => {
                    added.push(Change::KeyAdded(record.digest));
                    report.migrated.push((hash, record.id));
                }
                ImportOutcome::Duplicate => report.failed.push(hash),
            }
        }
        self.announce(added).await;
        tracing::info!(
            api_id = %api_id,
            migrated = report.migrated.len(),
            failed = report.failed.len(),
            "keys migrated"
        );
        Ok(report)
    }
}
