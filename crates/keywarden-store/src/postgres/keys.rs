//! Keys: lookups for verification, listing, and the changes decided against the key's row
//! while holding its lock (updates, credit spends, rotations), which makes them atomic
//! across nodes.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::credits::{Credits, SpendOutcome};
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, KeyId, WorkspaceId};
use keywarden_core::identity::ExternalId;
use keywarden_core::key::KeyRecord;
use keywarden_core::key_change::{KeyChange, KeyChangeError};
use keywarden_core::store::{CreditSpend, ImportOutcome, KeyStore, Page, PageRequest, StoreResult};
use keywarden_core::time::UnixMillis;
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::access::{access_changed, link_access, load_access, write_access};
use super::audit::insert_entry;
use super::rows::{credit_columns, credits_at, digests_from_rows, key_from_row, key_select};
use super::{PgResult, PostgresStore, conflict_as, run};
use crate::columns::{StoredKey, page_fetch};

/// How a read of a key locks its row.
#[derive(Clone, Copy)]
enum Lock {
    None,
    /// The row will be updated (not its id or hash): inserts referencing it may go on.
    Change,
    /// The row will be deleted.
    Delete,
}

/// A live key of a workspace with what it holds.
async fn live_key(
    conn: &mut PgConnection,
    workspace: &WorkspaceId,
    id: &KeyId,
    lock: Lock,
) -> PgResult<Option<KeyRecord>> {
    let sql = match lock {
        Lock::None => concat!(
            key_select!(),
            " WHERE k.id = $1 AND k.workspace_id = $2 AND k.deleted_at IS NULL"
        ),
        Lock::Change => concat!(
            key_select!(),
            " WHERE k.id = $1 AND k.workspace_id = $2 AND k.deleted_at IS NULL \
             FOR NO KEY UPDATE OF k"
        ),
        Lock::Delete => concat!(
            key_select!(),
            " WHERE k.id = $1 AND k.workspace_id = $2 AND k.deleted_at IS NULL FOR UPDATE OF k"
        ),
    };
    let row = sqlx::query(sql)
        .bind(id.as_str())
        .bind(workspace.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut key = key_from_row(&row)?;
    load_access(conn, std::slice::from_mut(&mut key)).await?;
    Ok(Some(key))
}

macro_rules! insert_key_sql {
    () => {
        "INSERT INTO keys (id, workspace_id, api_id, hash, start, prefix, byte_length, name, \
         meta, enabled, expires, credits_remaining, refill_interval, refill_amount, refill_day, \
         last_refill_at, created_at, updated_at, deleted_at, identity_id, ratelimits, \
         encryption_key_id, encrypted, restrictions) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
         $20, $21, $22, $23, $24)"
    };
}

/// Inserts a key's row; with `skip_duplicate`, a key whose hash exists is skipped instead of
/// a conflict. Returns whether it was inserted.
async fn insert_key_row(
    conn: &mut PgConnection,
    key: &KeyRecord,
    skip_duplicate: bool,
) -> PgResult<bool> {
    let k = StoredKey::of(key)?;
    let sql = if skip_duplicate {
        concat!(insert_key_sql!(), " ON CONFLICT (hash) DO NOTHING")
    } else {
        insert_key_sql!()
    };
    let done = sqlx::query(sql)
        .bind(k.id)
        .bind(k.workspace_id)
        .bind(k.api_id)
        .bind(k.hash)
        .bind(k.start)
        .bind(k.prefix)
        .bind(k.byte_length)
        .bind(k.name)
        .bind(k.meta)
        .bind(k.enabled)
        .bind(k.expires)
        .bind(k.credits.remaining)
        .bind(k.credits.interval)
        .bind(k.credits.amount)
        .bind(k.credits.day)
        .bind(k.credits.last_refill_at)
        .bind(k.created_at)
        .bind(k.updated_at)
        .bind(k.deleted_at)
        .bind(k.identity_id)
        .bind(k.ratelimits)
        .bind(k.encryption_key_id)
        .bind(k.encrypted)
        .bind(k.restrictions)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Writes the columns of `key` that change after creation.
async fn update_key_state(conn: &mut PgConnection, key: &KeyRecord) -> PgResult<()> {
    let k = StoredKey::of(key)?;
    sqlx::query(
        "UPDATE keys SET name = $2, meta = $3, enabled = $4, expires = $5, \
         credits_remaining = $6, refill_interval = $7, refill_amount = $8, refill_day = $9, \
         last_refill_at = $10, updated_at = $11, deleted_at = $12, identity_id = $13, \
         ratelimits = $14, restrictions = $15 WHERE id = $1",
    )
    .bind(k.id)
    .bind(k.name)
    .bind(k.meta)
    .bind(k.enabled)
    .bind(k.expires)
    .bind(k.credits.remaining)
    .bind(k.credits.interval)
    .bind(k.credits.amount)
    .bind(k.credits.day)
    .bind(k.credits.last_refill_at)
    .bind(k.updated_at)
    .bind(k.deleted_at)
    .bind(k.identity_id)
    .bind(k.ratelimits)
    .bind(k.restrictions)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The balance of a live key, locked until the transaction ends: `None` when the key does
/// not exist, `Some(None)` when its usage is unlimited. Only the balance: this runs on every
/// verification of a key with credits.
async fn lock_balance(conn: &mut PgConnection, id: &str) -> PgResult<Option<Option<Credits>>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        credit_columns!(),
        " FROM keys WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(|r| credits_at(r, 0)).transpose()
}

/// Writes a balance decided while holding the key's lock.
async fn write_balance(
    conn: &mut PgConnection,
    id: &str,
    remaining: i64,
    last_refill_at: UnixMillis,
) -> PgResult<()> {
    sqlx::query("UPDATE keys SET credits_remaining = $2, last_refill_at = $3 WHERE id = $1")
        .bind(id)
        .bind(remaining)
        .bind(last_refill_at.as_millis())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_key(&self, key: &KeyRecord, audit: &AuditEntry) -> StoreResult<()> {
        run(async {
            let mut tx = self.pool.begin().await?;
            insert_key_row(&mut tx, key, false).await?;
            link_access(&mut tx, key).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
        .map_err(conflict_as("a key with this hash"))
    }

    async fn import_keys(
        &self,
        keys: &[KeyRecord],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<ImportOutcome>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let mut outcomes = Vec::with_capacity(keys.len());
            for key in keys {
                outcomes.push(if insert_key_row(&mut tx, key, true).await? {
                    ImportOutcome::Imported
                } else {
                    ImportOutcome::Duplicate
                });
            }
            if outcomes.contains(&ImportOutcome::Imported) {
                insert_entry(&mut tx, audit).await?;
            }
            tx.commit().await?;
            Ok(outcomes)
        })
        .await
    }

    async fn key_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<KeyRecord>> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            let row = sqlx::query(concat!(key_select!(), " WHERE k.hash = $1"))
                .bind(digest.to_base64())
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut key = key_from_row(&row)?;
            load_access(&mut conn, std::slice::from_mut(&mut key)).await?;
            Ok(Some(key))
        })
        .await
    }

    async fn key(&self, workspace: &WorkspaceId, id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            live_key(&mut conn, workspace, id, Lock::None).await
        })
        .await
    }

    async fn keys_of_api(
        &self,
        workspace: &WorkspaceId,
        api: &ApiId,
        external_id: Option<&ExternalId>,
        page: PageRequest,
    ) -> StoreResult<Page<KeyRecord>> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            let rows = sqlx::query(concat!(
                key_select!(),
                " WHERE k.workspace_id = $1 AND k.api_id = $2 AND k.deleted_at IS NULL \
                 AND k.id >= $3 AND ($5::text IS NULL OR i.external_id = $5) \
                 ORDER BY k.id LIMIT $4"
            ))
            .bind(workspace.as_str())
            .bind(api.as_str())
            .bind(page.from.as_deref().unwrap_or_default())
            .bind(page_fetch(&page))
            .bind(external_id.map(ExternalId::as_str))
            .fetch_all(&mut *conn)
            .await?;
            let mut keys = rows
                .iter()
                .map(key_from_row)
                .collect::<PgResult<Vec<_>>>()?;
            load_access(&mut conn, &mut keys).await?;
            Ok(Page::from_overfetch(keys, page.limit, |k| k.id.to_string()))
        })
        .await
    }

    async fn change_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        change: KeyChange,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Result<KeyRecord, KeyChangeError>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(before) = live_key(&mut tx, workspace, id, Lock::Change).await? else {
                return Ok(Err(KeyChangeError::NotFound));
            };
            let mut key = before.clone();
            if let Err(e) = key.apply(change, now) {
                return Ok(Err(e));
            }
            update_key_state(&mut tx, &key).await?;
            if access_changed(&before, &key) {
                write_access(&mut tx, &key).await?;
            }
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Ok(key))
        })
        .await
    }

    async fn delete_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        permanent: bool,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<KeyRecord>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let lock = if permanent {
                Lock::Delete
            } else {
                Lock::Change
            };
            let Some(mut key) = live_key(&mut tx, workspace, id, lock).await? else {
                return Ok(None);
            };
            if permanent {
                // Its links go with it (ON DELETE CASCADE).
                sqlx::query("DELETE FROM keys WHERE id = $1")
                    .bind(key.id.as_str())
                    .execute(&mut *tx)
                    .await?;
            } else {
                key.deleted_at = Some(now);
                update_key_state(&mut tx, &key).await?;
            }
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(key))
        })
        .await
    }

    async fn rotate_key(
        &self,
        workspace: &WorkspaceId,
        old: &KeyId,
        new: &KeyRecord,
        old_expires: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<KeyRecord>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(mut key) = live_key(&mut tx, workspace, old, Lock::Change).await? else {
                return Ok(None);
            };
            insert_key_row(&mut tx, new, false).await?;
            link_access(&mut tx, new).await?;
            // Decided against the locked row, so a concurrent update that shortened the
            // key's life is never undone.
            key.expires = Some(key.expires.map_or(old_expires, |e| e.min(old_expires)));
            key.updated_at = Some(new.created_at);
            update_key_state(&mut tx, &key).await?;
            key.rotated_to = Some(new.id.clone());
            key.replaced_at = Some(new.created_at);
            sqlx::query("UPDATE keys SET replaced_at = $2, rotated_to = $3 WHERE id = $1")
                .bind(key.id.as_str())
                .bind(new.created_at.as_millis())
                .bind(new.id.as_str())
                .execute(&mut *tx)
                .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(key))
        })
        .await
        .map_err(conflict_as("a key with this hash"))
    }

    async fn spend_credits(
        &self,
        id: &KeyId,
        cost: i64,
        now: UnixMillis,
    ) -> StoreResult<CreditSpend> {
        run(async {
            let mut tx = self.pool.begin().await?;
            // The lock makes concurrent spends on any node take turns on the row.
            let spend = match lock_balance(&mut tx, id.as_str()).await? {
                None => CreditSpend::KeyMissing,
                Some(None) => CreditSpend::Unlimited,
                Some(Some(mut credits)) => {
                    let refilled = credits.apply_due_refill(now);
                    let outcome = credits.spend(cost);
                    let spent = matches!(outcome, SpendOutcome::Spent { .. }) && cost > 0;
                    if refilled || spent {
                        write_balance(
                            &mut tx,
                            id.as_str(),
                            credits.remaining(),
                            credits.last_refill_at(),
                        )
                        .await?;
                    }
                    CreditSpend::Outcome(outcome)
                }
            };
            // Also without a change: ends the transaction, releasing the lock, now.
            tx.commit().await?;
            Ok(spend)
        })
        .await
    }

    async fn refill_due_credits(&self, now: UnixMillis) -> StoreResult<Vec<KeyDigest>> {
        run(async {
            let candidates = sqlx::query(concat!(
                "SELECT id, hash, ",
                credit_columns!(),
                " FROM keys WHERE refill_interval IS NOT NULL AND deleted_at IS NULL"
            ))
            .fetch_all(&self.pool)
            .await?;
            let mut due = Vec::new();
            for row in &candidates {
                let Some(mut credits) = credits_at(row, 2)? else {
                    continue;
                };
                if credits.apply_due_refill(now) {
                    due.push((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
                }
            }
            // One short transaction per due key, deciding again under its lock: spends and
            // other nodes' refill passes may have touched it since the read above.
            let mut refilled = Vec::new();
            for (id, hash) in due {
                let mut tx = self.pool.begin().await?;
                if let Some(Some(mut credits)) = lock_balance(&mut tx, &id).await? {
                    let before = credits.remaining();
                    if credits.apply_due_refill(now) {
                        write_balance(&mut tx, &id, credits.remaining(), credits.last_refill_at())
                            .await?;
                        if credits.remaining() != before {
                            refilled.extend(KeyDigest::from_base64(&hash).ok());
                        }
                    }
                }
                tx.commit().await?;
            }
            Ok(refilled)
        })
        .await
    }

    async fn all_key_digests(&self) -> StoreResult<Vec<KeyDigest>> {
        run(async {
            let rows = sqlx::query("SELECT hash FROM keys")
                .fetch_all(&self.pool)
                .await?;
            digests_from_rows(&rows)
        })
        .await
    }
}
