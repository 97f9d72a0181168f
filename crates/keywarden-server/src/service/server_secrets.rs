//! Server secrets at rest (see `keywarden_core::sealed_secret`): token signing seeds and
//! webhook endpoint secrets, sealed under the current master key when the server has master
//! keys, checked and sealed at startup, and re-sealed by `keywarden master-key rotate`.
//!
//! They are opened only where they are used: a webhook secret to sign one delivery, signing
//! seeds when the signing keys are (re)loaded into their key pairs.

use keywarden_core::id::{WebhookEndpointId, WorkspaceId};
use keywarden_core::sealed_secret::{SecretAtRest, SecretOwner, SecretSealError, ServerSecret};
use keywarden_core::store::{Store, StoreError};
use keywarden_core::vault::MasterKeyring;
use keywarden_core::webhook::WebhookSecret;
use keywarden_core::webhook_outbox::secret_owner;

use super::Keywarden;

/// Why the server secrets could not be checked or sealed.
#[derive(Debug, thiserror::Error)]
pub enum ServerSecretError {
    #[error("could not read or update the server secrets in the store")]
    Store(#[source] StoreError),
    #[error(
        "a stored server secret does not open with the configured master keys; configure the \
         master key it was sealed with"
    )]
    Sealed(#[source] SecretSealError),
}

/// Which sealed secrets to move to the current master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reseal {
    /// Only plaintext secrets get sealed (startup: older master keys stay in use until the
    /// operator rotates, so servers not yet given the new key keep working).
    PlaintextOnly,
    /// Plaintext secrets and those under an older master key (`master-key rotate`).
    All,
}

/// What [`seal_server_secrets`] found and did, counting signing seeds and webhook secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecretReport {
    /// Plaintext secrets now sealed.
    pub sealed: usize,
    /// Secrets moved from an older master key to the current one.
    pub resealed: usize,
    /// Secrets already under the current master key.
    pub current: usize,
    /// Secrets left under an older master key ([`Reseal::PlaintextOnly`]).
    pub older: usize,
    /// Secrets left in plaintext (no master keys).
    pub plaintext: usize,
}

impl SecretReport {
    fn count<T: ServerSecret>(
        &mut self,
        stored: &SecretAtRest<T>,
        owner: &SecretOwner,
        ring: Option<&MasterKeyring>,
        reseal: Reseal,
    ) -> Result<Option<SecretAtRest<T>>, SecretSealError> {
        // Every sealed secret must open, whatever is done with it: a key that does not fit
        // is found now, not when a delivery or a token needs it.
        let secret = stored.open(owner, ring)?;
        let Some(ring) = ring else {
            if matches!(stored, SecretAtRest::Plain(_)) {
                self.plaintext += 1;
            }
            return Ok(None);
        };
        match stored.master_key_id() {
            None => self.sealed += 1,
            Some(id) if id == ring.current().id() => {
                self.current += 1;
                return Ok(None);
            }
            Some(_) if reseal == Reseal::PlaintextOnly => {
                self.older += 1;
                return Ok(None);
            }
            Some(_) => self.resealed += 1,
        }
        Ok(Some(SecretAtRest::seal(&secret, owner, Some(ring))))
    }
}

/// Checks that every stored server secret opens with `ring` (refusing sealed secrets when
/// there is no ring), and seals them under its current master key as `reseal` says. Safe to
/// run again, and while servers run: a secret changed meanwhile is left as it is.
pub async fn seal_server_secrets(
    store: &dyn Store,
    ring: Option<&MasterKeyring>,
    reseal: Reseal,
) -> Result<SecretReport, ServerSecretError> {
    let mut report = SecretReport::default();
    let signing_keys = store
        .signing_keys()
        .await
        .map_err(ServerSecretError::Store)?;
    for key in signing_keys {
        if let Some(sealed) = report
            .count(&key.seed, &key.owner(), ring, reseal)
            .map_err(ServerSecretError::Sealed)?
        {
            store
                .reseal_signing_seed(&key, &sealed)
                .await
                .map_err(ServerSecretError::Store)?;
        }
    }
    let endpoints = store
        .webhook_endpoint_secrets()
        .await
        .map_err(ServerSecretError::Store)?;
    for endpoint in endpoints {
        if let Some(sealed) = report
            .count(&endpoint.secret, &endpoint.owner(), ring, reseal)
            .map_err(ServerSecretError::Sealed)?
        {
            store
                .reseal_webhook_secret(&endpoint, &sealed)
                .await
                .map_err(ServerSecretError::Store)?;
        }
    }
    Ok(report)
}

impl Keywarden {
    /// At startup: refuses sealed secrets this server cannot open, and seals plaintext ones
    /// when it has master keys.
    pub async fn seal_server_secrets(&self) -> Result<SecretReport, ServerSecretError> {
        let report = seal_server_secrets(
            self.store.as_ref(),
            self.master_keys.as_ref(),
            Reseal::PlaintextOnly,
        )
        .await?;
        match &self.master_keys {
            None => tracing::warn!(
                plaintext = report.plaintext,
                "no master key configured: token signing keys and webhook endpoint secrets are \
                 stored in plaintext"
            ),
            Some(ring) if report.sealed > 0 => tracing::info!(
                sealed = report.sealed,
                master_key = %ring.current().id(),
                "plaintext server secrets sealed under the master key"
            ),
            Some(_) => {}
        }
        Ok(report)
    }

    /// `secret` in its stored form for endpoint `id` of `workspace`.
    pub(super) fn seal_webhook_secret(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
        secret: &WebhookSecret,
    ) -> SecretAtRest<WebhookSecret> {
        SecretAtRest::seal(
            secret,
            &secret_owner(workspace, id),
            self.master_keys.as_ref(),
        )
    }

    /// The secret of endpoint `id` of `workspace`, to sign one delivery.
    pub(super) fn open_webhook_secret(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
        stored: &SecretAtRest<WebhookSecret>,
    ) -> Result<WebhookSecret, SecretSealError> {
        stored.open(&secret_owner(workspace, id), self.master_keys.as_ref())
    }
}
