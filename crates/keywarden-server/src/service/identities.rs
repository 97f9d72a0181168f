//! Identities: create, read, list, change and delete them, and link keys to them.

use keywarden_core::audit::{AuditAction, AuditEntry};
use keywarden_core::change::Change;
use keywarden_core::id::IdentityId;
use keywarden_core::identity::{ExternalId, Identity, IdentityUpdate};
use keywarden_core::meta::Meta;
use keywarden_core::named_limit::LimitSpec;
use keywarden_core::root_key::ops;
use keywarden_core::store::{Page, PageRequest, StoreError};

use super::{Caller, Keywarden};
use crate::error::ApiError;

/// A new identity (`identities.createIdentity`).
#[derive(Debug)]
pub struct NewIdentity {
    pub external_id: ExternalId,
    pub meta: Option<Meta>,
    pub ratelimits: Vec<LimitSpec>,
}

impl Keywarden {
    pub async fn create_identity(
        &self,
        caller: &Caller,
        new: NewIdentity,
    ) -> Result<IdentityId, ApiError> {
        caller.require_everywhere(ops::CREATE_IDENTITY)?;
        let identity = Identity::new(
            caller.workspace().clone(),
            new.external_id,
            new.meta,
            new.ratelimits,
            self.now(),
        );
        let audit = describe_identity(
            caller
                .audit(identity.created_at, AuditAction::IdentityCreate)
                .target(
                    "identity",
                    identity.id.as_str(),
                    Some(identity.external_id.as_str()),
                ),
            &identity,
        );
        match self.store.insert_identity(&identity, &audit).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::IdentityExists(format!(
                    "An identity with externalId '{}' already exists in this workspace.",
                    identity.external_id
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(identity_id = %identity.id, "identity created");
        Ok(identity.id)
    }

    /// The identity with this id or external id, if the caller may `op` it.
    async fn reachable_identity(
        &self,
        caller: &Caller,
        reference: &str,
        op: keywarden_core::root_key::Operation,
    ) -> Result<Identity, ApiError> {
        caller.require_somewhere(op)?;
        let identity = self
            .store
            .identity(caller.workspace(), reference)
            .await?
            .ok_or_else(ApiError::identity_not_found)?;
        caller.require_on(op, identity.id.as_str(), ApiError::identity_not_found)?;
        Ok(identity)
    }

    pub async fn get_identity(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> Result<Identity, ApiError> {
        self.reachable_identity(caller, reference, ops::READ_IDENTITY)
            .await
    }

    pub async fn list_identities(
        &self,
        caller: &Caller,
        search: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Identity>, ApiError> {
        caller.require_everywhere(ops::READ_IDENTITY)?;
        Ok(self
            .store
            .identities(caller.workspace(), search, page)
            .await?)
    }

    pub async fn update_identity(
        &self,
        caller: &Caller,
        reference: &str,
        update: IdentityUpdate,
    ) -> Result<Identity, ApiError> {
        let identity = self
            .reachable_identity(caller, reference, ops::UPDATE_IDENTITY)
            .await?;
        let now = self.now();
        let mut audit = caller.audit(now, AuditAction::IdentityUpdate).target(
            "identity",
            identity.id.as_str(),
            Some(identity.external_id.as_str()),
        );
        if let Some(meta) = &update.meta {
            audit = audit.change("meta", meta);
        }
        if let Some(limits) = &update.ratelimits {
            let names: Vec<&str> = limits.iter().map(|l| l.name.as_str()).collect();
            audit = audit.change("ratelimits", names);
        }
        let (updated, digests) = self
            .store
            .update_identity(
                caller.workspace(),
                identity.id.as_str(),
                update,
                now,
                &audit,
            )
            .await?
            .ok_or_else(ApiError::identity_not_found)?;
        // Cached keys carry a copy of their identity.
        self.announce(digests.iter().map(|d| Change::KeyChanged(*d)).collect())
            .await;
        tracing::info!(identity_id = %updated.id, keys = digests.len(), "identity updated");
        Ok(updated)
    }

    pub async fn delete_identity(&self, caller: &Caller, reference: &str) -> Result<(), ApiError> {
        let identity = self
            .reachable_identity(caller, reference, ops::DELETE_IDENTITY)
            .await?;
        let audit = caller
            .audit(self.now(), AuditAction::IdentityDelete)
            .target(
                "identity",
                identity.id.as_str(),
                Some(identity.external_id.as_str()),
            );
        let digests = self
            .store
            .delete_identity(caller.workspace(), identity.id.as_str(), &audit)
            .await?
            .ok_or_else(ApiError::identity_not_found)?;
        self.announce(digests.iter().map(|d| Change::KeyChanged(*d)).collect())
            .await;
        tracing::info!(identity_id = %identity.id, keys = digests.len(), "identity deleted");
        Ok(())
    }

    /// The identity a key with `external_id` belongs to, created when it does not exist yet
    /// (as `keys.createKey` and `keys.updateKey` do).
    pub(super) async fn identity_for_key(
        &self,
        caller: &Caller,
        external_id: ExternalId,
    ) -> Result<Identity, ApiError> {
        let candidate = Identity::new(
            caller.workspace().clone(),
            external_id,
            None,
            Vec::new(),
            self.now(),
        );
        // Written only if the identity is created here, as a change of its own.
        let audit = describe_identity(
            caller
                .audit(candidate.created_at, AuditAction::IdentityCreate)
                .target(
                    "identity",
                    candidate.id.as_str(),
                    Some(candidate.external_id.as_str()),
                ),
            &candidate,
        );
        Ok(self.store.upsert_identity(&candidate, &audit).await?)
    }
}

/// What a new identity holds: its external id, metadata and the names of its limits.
fn describe_identity(entry: AuditEntry, identity: &Identity) -> AuditEntry {
    entry
        .change("externalId", identity.external_id.as_str())
        .change("meta", &identity.meta)
        .change(
            "ratelimits",
            identity
                .ratelimits
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
        )
}
