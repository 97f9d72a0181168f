//! Recoverable keys: sealing new keys under their workspace's data key, and opening them for
//! `decrypt: true` (see `keywarden_core::vault`).
//!
//! Plaintexts opened here go straight into the response: they are never cached, logged or
//! written to the audit log. Data keys are read from the store on each use and unwrapped in
//! memory only for that call.

use keywarden_core::id::{KeyId, WorkspaceId};
use keywarden_core::key::KeyRecord;
use keywarden_core::secret::PlaintextKey;
use keywarden_core::store::{Store, StoreResult};
use keywarden_core::vault::{DataKey, MasterKeyring, SealedKey, VaultError};

use super::Keywarden;
use super::server_secrets::{Reseal, SecretReport, ServerSecretError, seal_server_secrets};
use crate::error::ApiError;

/// Why the configured master keys do not fit the store (checked at startup).
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyCheckError {
    #[error("could not read the data keys from the store")]
    Store(#[source] keywarden_core::store::StoreError),
    #[error(
        "the configured master keys cannot decrypt this store's data keys; configure the \
         master key(s) they were wrapped with"
    )]
    Vault(#[source] VaultError),
    #[error("could not re-seal the server secrets")]
    Secrets(#[source] ServerSecretError),
}

fn recoverable_unavailable() -> ApiError {
    ApiError::PreconditionFailed(
        "Recoverable keys are not available: this server has no encryption master key \
         configured. Create the key with recoverable: false."
            .into(),
    )
}

/// A data key that does not open is the server's configuration at fault, not the caller's:
/// answered as a 500, with the cause (ids only) in the log.
fn vault_failure(e: VaultError) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e).context("recoverable key encryption failed"))
}

impl Keywarden {
    fn master_keys(&self) -> Result<&MasterKeyring, ApiError> {
        self.master_keys
            .as_ref()
            .ok_or_else(recoverable_unavailable)
    }

    /// Fails unless this server can seal keys (412 otherwise, as Unkey without a vault).
    pub(super) fn require_recoverable(&self) -> Result<(), ApiError> {
        self.master_keys().map(|_| ())
    }

    /// The workspace's data key in the clear, created (and stored wrapped) on first use.
    async fn data_key(&self, workspace: &WorkspaceId) -> Result<DataKey, ApiError> {
        let ring = self.master_keys()?;
        let wrapped = match self.store.data_key(workspace).await? {
            Some(wrapped) => wrapped,
            None => {
                let now = self.now();
                let fresh = ring.wrap(workspace, &DataKey::generate(now), now);
                let stored = self.store.insert_data_key(&fresh).await?;
                tracing::info!(workspace_id = %workspace, data_key_id = %stored.id, "data key created");
                stored
            }
        };
        ring.unwrap(&wrapped).map_err(vault_failure)
    }

    /// `key` sealed for storage as key `key_id` of `workspace`.
    pub(super) async fn seal(
        &self,
        workspace: &WorkspaceId,
        key_id: &KeyId,
        key: &PlaintextKey,
    ) -> Result<SealedKey, ApiError> {
        Ok(self.data_key(workspace).await?.seal(workspace, key_id, key))
    }

    /// The plaintexts of `keys` (all of `workspace`), `None` for keys that are not
    /// recoverable. Reads the data key only when some key needs it.
    pub(super) async fn open_keys(
        &self,
        workspace: &WorkspaceId,
        keys: &[KeyRecord],
    ) -> Result<Vec<Option<PlaintextKey>>, ApiError> {
        if keys.iter().all(|k| k.sealed.is_none()) {
            return Ok(vec![None; keys.len()]);
        }
        let data_key = self.data_key(workspace).await?;
        keys.iter()
            .map(|key| {
                key.sealed
                    .as_ref()
                    .map(|sealed| data_key.open(workspace, &key.id, sealed))
                    .transpose()
                    .map_err(vault_failure)
            })
            .collect()
    }

    /// Checks that the configured master keys open every stored data key, so a wrong key
    /// stops the server at startup instead of failing requests later. Without master keys,
    /// there is nothing to check: recoverable keys then answer 412.
    pub async fn check_master_keys(&self) -> Result<(), MasterKeyCheckError> {
        let Some(ring) = &self.master_keys else {
            return Ok(());
        };
        let data_keys: StoreResult<_> = self.store.data_keys().await;
        for wrapped in data_keys.map_err(MasterKeyCheckError::Store)? {
            ring.unwrap(&wrapped).map_err(MasterKeyCheckError::Vault)?;
        }
        Ok(())
    }
}

/// What a master-key rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotationReport {
    /// Data keys now wrapped under the current master key that were not before.
    pub rewrapped: usize,
    /// Data keys that already were.
    pub current: usize,
    /// The server secrets (token signing seeds, webhook secrets), sealed under the current
    /// master key as well.
    pub secrets: SecretReport,
}

/// Re-wraps every workspace's data key, and re-seals every server secret, under the current
/// (first) master key of `ring`, so the older master keys can then be removed from the
/// configuration. Keys themselves are not touched: they stay sealed under the same data keys.
/// Safe to run again, and while servers run (they read the data key on each use, and reload
/// signing keys regularly).
pub async fn rotate_master_key(
    store: &dyn Store,
    ring: &MasterKeyring,
) -> Result<RotationReport, MasterKeyCheckError> {
    let mut report = RotationReport::default();
    for wrapped in store
        .data_keys()
        .await
        .map_err(MasterKeyCheckError::Store)?
    {
        match ring.rewrap(&wrapped).map_err(MasterKeyCheckError::Vault)? {
            Some(rewrapped) => {
                store
                    .rewrap_data_key(&rewrapped)
                    .await
                    .map_err(MasterKeyCheckError::Store)?;
                report.rewrapped += 1;
            }
            None => report.current += 1,
        }
    }
    report.secrets = seal_server_secrets(store, Some(ring), Reseal::All)
        .await
        .map_err(MasterKeyCheckError::Secrets)?;
    Ok(report)
}
