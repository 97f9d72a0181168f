//! Signing keys of short-lived tokens; a rotation is one writer job, so two rotations never
//! interleave.

use async_trait::async_trait;
use keywarden_core::store::{SigningKeyStore, StoreResult};
use keywarden_core::time::UnixMillis;
use keywarden_core::token::SigningKeyRecord;
use rusqlite::{OptionalExtension as _, params};

use super::{SqliteStore, conversion_error};
use crate::signing_key_columns::{SIGNING_KEY_COLUMNS, StoredSigningKey};

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, id DESC"
            ))?;
            stmt.query_map([], |row| {
                StoredSigningKey {
                    id: row.get(0)?,
                    created_at: row.get(1)?,
                    seed: row.get(2)?,
                }
                .into_record()
                .map_err(|e| conversion_error(0, e))
            })?
            .collect()
        })
        .await
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        due_before: UnixMillis,
        retire_before: UnixMillis,
    ) -> StoreResult<bool> {
        let stored = StoredSigningKey::of(key);
        self.write(move |conn| {
            let fresh: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM signing_keys WHERE created_at > ?1 LIMIT 1",
                    [due_before.as_millis()],
                    |row| row.get(0),
                )
                .optional()?;
            let added = fresh.is_none();
            if added {
                conn.prepare_cached(&format!(
                    "INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) VALUES (?1, ?2, ?3)"
                ))?
                .execute(params![stored.id, stored.created_at, stored.seed])?;
            }
            conn.execute(
                "DELETE FROM signing_keys WHERE created_at < \
                 (SELECT max(created_at) FROM signing_keys WHERE created_at <= ?1)",
                [retire_before.as_millis()],
            )?;
            Ok(added)
        })
        .await
    }
}
