//! Root keys managed over the API (`rootKeys.*`, as the Python SDK 3.2.x has them).
//!
//! The rule throughout: a root key may create, see and manage only root keys whose
//! permissions it holds itself and, if it expires, that expire no later than it does, so no
//! key can mint, edit or reroll a stronger or longer-lived one. Keys outside a caller's reach
//! look like keys that do not exist.

use keywarden_core::audit::AuditAction;
use keywarden_core::change::Change;
use keywarden_core::id::RootKeyId;
use keywarden_core::key::expiry_after_rotation;
use keywarden_core::root_key::{
    RootKey, RootKeyUpdate, RootPermissions, end_of, generate_root_key,
};
use keywarden_core::secret::PlaintextKey;
use keywarden_core::store::{Page, PageRequest};
use keywarden_core::text::Label;
use keywarden_core::time::UnixMillis;

use super::{Caller, Keywarden};
use crate::error::ApiError;

/// A root key just issued: its id and the secret, returned this once.
#[derive(Debug)]
pub struct IssuedRootKey {
    pub id: RootKeyId,
    pub key: PlaintextKey,
}

/// A root key to create.
#[derive(Debug)]
pub struct NewRootKey {
    pub permissions: RootPermissions,
    pub name: Option<Label>,
    pub expires: Option<UnixMillis>,
}

impl Keywarden {
    /// 403 naming the first of `permissions` the caller does not hold.
    fn require_covers(caller: &Caller, permissions: &RootPermissions) -> Result<(), ApiError> {
        match caller
            .root_key()
            .permissions
            .first_not_covering(permissions)
        {
            None => Ok(()),
            Some(missing) => Err(ApiError::MissingPermission(missing)),
        }
    }

    /// Whether the caller may see and manage `key`: it holds every permission of it, and,
    /// when the caller expires, `key` expires no later (otherwise managing it, or rerolling
    /// it, would hand out a key that outlives the caller).
    fn may_manage(caller: &Caller, key: &RootKey) -> bool {
        let own = caller.root_key();
        let outlived = match (own.expires, key.expires) {
            (None, _) => true,
            (Some(own), Some(theirs)) => theirs <= own,
            (Some(_), None) => false,
        };
        outlived
            && own
                .permissions
                .first_not_covering(&key.permissions)
                .is_none()
    }

    /// A live root key of the caller's workspace that the caller may manage.
    async fn manageable_root_key(
        &self,
        caller: &Caller,
        id: &RootKeyId,
    ) -> Result<RootKey, ApiError> {
        self.store
            .root_key(caller.workspace(), id)
            .await?
            .filter(|key| Self::may_manage(caller, key))
            .ok_or_else(ApiError::root_key_not_found)
    }

    /// An expiry for a key the caller issues: in the future, and for an expiring caller, no
    /// later than the caller's own (and required).
    fn child_expiry(
        &self,
        caller: &Caller,
        requested: Option<UnixMillis>,
    ) -> Result<Option<UnixMillis>, ApiError> {
        let now = self.now();
        if let Some(expires) = requested
            && expires <= now
        {
            return Err(ApiError::invalid_field(
                "body.expires",
                "must be in the future (Unix milliseconds)",
            ));
        }
        match (caller.root_key().expires, requested) {
            (Some(own), Some(child)) if child > own => Err(ApiError::invalid_field(
                "body.expires",
                format!(
                    "must be no later than this root key's own expiry ({})",
                    own.as_millis()
                ),
            )),
            (Some(own), None) => Err(ApiError::invalid_field(
                "body.expires",
                format!(
                    "is required: this root key expires at {}, so the keys it creates must too",
                    own.as_millis()
                ),
            )),
            (_, requested) => Ok(requested),
        }
    }

    fn issue_root_key(
        &self,
        caller: &Caller,
        permissions: RootPermissions,
        name: Option<Label>,
        expires: Option<UnixMillis>,
        enabled: bool,
    ) -> (RootKey, PlaintextKey) {
        let now = self.now();
        let issued = generate_root_key();
        let key = RootKey {
            id: RootKeyId::generate(now),
            workspace_id: caller.workspace().clone(),
            digest: issued.plaintext.digest(),
            end: end_of(issued.plaintext.expose()),
            start: issued.start,
            name,
            permissions,
            expires,
            enabled,
            created_at: now,
            revoked_at: None,
        };
        (key, issued.plaintext)
    }

    pub async fn create_root_key(
        &self,
        caller: &Caller,
        new: NewRootKey,
    ) -> Result<IssuedRootKey, ApiError> {
        Self::require_covers(caller, &new.permissions)?;
        let expires = self.child_expiry(caller, new.expires)?;
        let (key, secret) = self.issue_root_key(caller, new.permissions, new.name, expires, true);
        let audit = caller
            .audit(key.created_at, AuditAction::RootKeyCreate)
            .target(
                "root_key",
                key.id.as_str(),
                key.name.as_ref().map(|n| n.as_str()),
            )
            .change("permissions", key.permissions.to_strings())
            .change("expires", key.expires.map(|e| e.as_millis()));
        self.store.insert_root_key(&key, &audit).await?;
        self.refresh_root_keys().await?;
        self.announce(vec![Change::RootKeysChanged]).await;
        tracing::info!(root_key_id = %key.id, by = %caller.root_key().id, "root key created");
        Ok(IssuedRootKey {
            id: key.id,
            key: secret,
        })
    }

    /// The workspace's live root keys that the caller may manage, by id.
    pub async fn list_root_keys(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<RootKey>, ApiError> {
        let mut keys: Vec<RootKey> = self
            .store
            .root_keys()
            .await?
            .into_iter()
            .filter(|k| {
                &k.workspace_id == caller.workspace()
                    && k.revoked_at.is_none()
                    && Self::may_manage(caller, k)
                    && page
                        .from
                        .as_deref()
                        .is_none_or(|from| k.id.as_str() >= from)
            })
            .collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys.truncate(page.limit.saturating_add(1));
        Ok(Page::from_overfetch(keys, page.limit, |k| k.id.to_string()))
    }

    pub async fn update_root_key(
        &self,
        caller: &Caller,
        id: &RootKeyId,
        update: RootKeyUpdate,
    ) -> Result<(), ApiError> {
        self.manageable_root_key(caller, id).await?;
        if let Some(permissions) = &update.permissions {
            Self::require_covers(caller, permissions)?;
        }
        let mut audit = caller.audit(self.now(), AuditAction::RootKeyUpdate).target(
            "root_key",
            id.as_str(),
            None,
        );
        if let Some(name) = &update.name {
            audit = audit.change("name", name.as_ref().map(|n| n.as_str()));
        }
        if let Some(enabled) = update.enabled {
            audit = audit.change("enabled", enabled);
        }
        if let Some(permissions) = &update.permissions {
            audit = audit.change("permissions", permissions.to_strings());
        }
        self.store
            .update_root_key(caller.workspace(), id, update, &audit)
            .await?
            .ok_or_else(ApiError::root_key_not_found)?;
        self.refresh_root_keys().await?;
        self.announce(vec![Change::RootKeysChanged]).await;
        tracing::info!(root_key_id = %id, by = %caller.root_key().id, "root key updated");
        Ok(())
    }

    /// Issues a replacement with the same name and permissions; the old key keeps working for
    /// `grace_ms` (never longer than it already would), or as it is when `None`.
    pub async fn reroll_root_key(
        &self,
        caller: &Caller,
        id: &RootKeyId,
        grace_ms: Option<i64>,
    ) -> Result<IssuedRootKey, ApiError> {
        let old = self.manageable_root_key(caller, id).await?;
        let now = self.now();
        // The replacement is the old key with a new secret: same name, permissions, expiry
        // and enabled state.
        let (new, secret) = self.issue_root_key(
            caller,
            old.permissions.clone(),
            old.name.clone(),
            old.expires,
            old.enabled,
        );
        let old_expires = grace_ms.map(|grace| expiry_after_rotation(old.expires, now, grace));
        let audit = caller
            .audit(now, AuditAction::RootKeyRotate)
            .target(
                "root_key",
                id.as_str(),
                old.name.as_ref().map(|n| n.as_str()),
            )
            .target(
                "root_key",
                new.id.as_str(),
                new.name.as_ref().map(|n| n.as_str()),
            )
            .change("oldExpires", old_expires.map(|e| e.as_millis()));
        self.store
            .rotate_root_key(caller.workspace(), id, &new, old_expires, &audit)
            .await?
            .ok_or_else(ApiError::root_key_not_found)?;
        self.refresh_root_keys().await?;
        self.announce(vec![Change::RootKeysChanged]).await;
        tracing::info!(old_root_key_id = %id, new_root_key_id = %new.id, "root key rerolled");
        Ok(IssuedRootKey {
            id: new.id,
            key: secret,
        })
    }

    pub async fn delete_root_key(&self, caller: &Caller, id: &RootKeyId) -> Result<(), ApiError> {
        let key = self.manageable_root_key(caller, id).await?;
        let now = self.now();
        let audit = caller.audit(now, AuditAction::RootKeyRevoke).target(
            "root_key",
            id.as_str(),
            key.name.as_ref().map(|n| n.as_str()),
        );
        if !self.store.revoke_root_key(id, now, &audit).await? {
            return Err(ApiError::root_key_not_found());
        }
        self.refresh_root_keys().await?;
        self.announce(vec![Change::RootKeysChanged]).await;
        tracing::info!(root_key_id = %id, by = %caller.root_key().id, "root key deleted");
        Ok(())
    }
}
