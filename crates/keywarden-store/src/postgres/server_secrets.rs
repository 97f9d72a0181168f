//! Re-sealing token signing seeds and webhook secrets in place. Each replacement is a
//! compare-and-set on the stored text, so a secret rotated (or a signing key retired) in the
//! meantime is never overwritten with the old secret.

use async_trait::async_trait;
use keywarden_core::sealed_secret::{EndpointSecret, SecretAtRest};
use keywarden_core::store::{ServerSecretStore, StoreResult};
use keywarden_core::token::{SigningKeyRecord, SigningSeed};
use keywarden_core::webhook::WebhookSecret;
use sqlx::Row;

use super::{PostgresStore, run};
use crate::webhook_columns::endpoint_secret;

#[async_trait]
impl ServerSecretStore for PostgresStore {
    async fn webhook_endpoint_secrets(&self) -> StoreResult<Vec<EndpointSecret>> {
        run(async {
            let rows =
                sqlx::query("SELECT workspace_id, id, secret FROM webhook_endpoints ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
            let mut secrets = Vec::with_capacity(rows.len());
            for row in rows {
                let (workspace, id, secret): (String, String, String) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                secrets.push(endpoint_secret(&workspace, &id, &secret)?);
            }
            Ok(secrets)
        })
        .await
    }

    async fn reseal_webhook_secret(
        &self,
        current: &EndpointSecret,
        sealed: &SecretAtRest<WebhookSecret>,
    ) -> StoreResult<bool> {
        run(async {
            let done = sqlx::query(
                "UPDATE webhook_endpoints SET secret = $4 \
                 WHERE id = $1 AND workspace_id = $2 AND secret = $3",
            )
            .bind(current.endpoint_id.as_str())
            .bind(current.workspace_id.as_str())
            .bind(current.secret.to_stored())
            .bind(sealed.to_stored())
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn reseal_signing_seed(
        &self,
        current: &SigningKeyRecord,
        sealed: &SecretAtRest<SigningSeed>,
    ) -> StoreResult<bool> {
        run(async {
            let done = sqlx::query("UPDATE signing_keys SET seed = $3 WHERE id = $1 AND seed = $2")
                .bind(current.id.as_str())
                .bind(current.seed.to_stored())
                .bind(sealed.to_stored())
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}
