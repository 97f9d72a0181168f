//! Signing keys of short-lived tokens; a rotation holds a table lock, so two nodes rotating
//! at once add one key between them.

use async_trait::async_trait;
use keywarden_core::store::{SigningKeyStore, StoreResult};
use keywarden_core::time::UnixMillis;
use keywarden_core::token::SigningKeyRecord;
use sqlx::{AssertSqlSafe, Row};

use super::{PostgresStore, run};
use crate::signing_key_columns::{SIGNING_KEY_COLUMNS, StoredSigningKey};

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        run(async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, id DESC"
            )))
            .fetch_all(&self.pool)
            .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in rows {
                keys.push(
                    StoredSigningKey {
                        id: row.try_get(0)?,
                        created_at: row.try_get(1)?,
                        seed: row.try_get(2)?,
                    }
                    .into_record()?,
                );
            }
            Ok(keys)
        })
        .await
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        due_before: UnixMillis,
        retire_before: UnixMillis,
    ) -> StoreResult<bool> {
        run(async {
            let stored = StoredSigningKey::of(key);
            let mut tx = self.pool.begin().await?;
            // Readers are not blocked; a second rotating node waits here and then sees the
            // key the first one added.
            sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            let fresh = sqlx::query("SELECT 1 FROM signing_keys WHERE created_at > $1 LIMIT 1")
                .bind(due_before.as_millis())
                .fetch_optional(&mut *tx)
                .await?;
            let added = fresh.is_none();
            if added {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) VALUES ($1, $2, $3)"
                )))
                .bind(stored.id)
                .bind(stored.created_at)
                .bind(stored.seed)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "DELETE FROM signing_keys WHERE created_at < \
                 (SELECT max(created_at) FROM signing_keys WHERE created_at <= $1)",
            )
            .bind(retire_before.as_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(added)
        })
        .await
    }
}
