//! Re-sealing token signing seeds and webhook secrets in place. Each replacement is a
//! compare-and-set on the stored text, so a secret rotated (or a signing key retired) in the
//! meantime is never overwritten with the old secret.

use async_trait::async_trait;
use keywarden_core::sealed_secret::{EndpointSecret, SecretAtRest};
use keywarden_core::store::{ServerSecretStore, StoreResult};
use keywarden_core::token::{SigningKeyRecord, SigningSeed};
use keywarden_core::webhook::WebhookSecret;
use rusqlite::params;

use super::{SqliteStore, conversion_error};
use crate::webhook_columns::endpoint_secret;

#[async_trait]
impl ServerSecretStore for SqliteStore {
    async fn webhook_endpoint_secrets(&self) -> StoreResult<Vec<EndpointSecret>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT workspace_id, id, secret FROM webhook_endpoints ORDER BY id",
            )?
            .query_map([], |row| {
                let (workspace, id, secret): (String, String, String) =
                    (row.get(0)?, row.get(1)?, row.get(2)?);
                endpoint_secret(&workspace, &id, &secret).map_err(|e| conversion_error(0, e))
            })?
            .collect()
        })
        .await
    }

    async fn reseal_webhook_secret(
        &self,
        current: &EndpointSecret,
        sealed: &SecretAtRest<WebhookSecret>,
    ) -> StoreResult<bool> {
        let (workspace, id) = (current.workspace_id.clone(), current.endpoint_id.clone());
        let (old, new) = (current.secret.to_stored(), sealed.to_stored());
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE webhook_endpoints SET secret = ?4 \
                     WHERE id = ?1 AND workspace_id = ?2 AND secret = ?3",
                )?
                .execute(params![id.as_str(), workspace.as_str(), old, new])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn reseal_signing_seed(
        &self,
        current: &SigningKeyRecord,
        sealed: &SecretAtRest<SigningSeed>,
    ) -> StoreResult<bool> {
        let id = current.id.clone();
        let (old, new) = (current.seed.to_stored(), sealed.to_stored());
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE signing_keys SET seed = ?3 WHERE id = ?1 AND seed = ?2")?
                .execute(params![id.as_str(), old, new])?;
            Ok(changed == 1)
        })
        .await
    }
}
