//! Root keys, and the revision counter servers poll to notice changes from other processes.
//!
//! Every root-key write first bumps the `root_keys` revision, which locks its row until the
//! commit: root-key writes (and the bootstrap, which checks for root keys after taking that
//! lock) take turns across nodes, and a rolled-back write leaves the revision as it was.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{RootKeyId, WorkspaceId};
use keywarden_core::root_key::{RootKey, RootKeyUpdate};
use keywarden_core::store::{RootKeyStore, StoreResult};
use keywarden_core::time::UnixMillis;
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::audit::insert_entry;
use super::rows::{root_key_columns, root_key_from_row};
use super::{PgResult, PostgresStore, run};
use crate::columns::StoredRootKey;

/// Bumps the revision, taking the lock that serializes root-key writes.
pub(super) async fn bump_revision(conn: &mut PgConnection) -> PgResult<()> {
    sqlx::query("UPDATE revisions SET value = value + 1 WHERE name = 'root_keys'")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts a root key; the caller has bumped the revision in this transaction.
pub(super) async fn insert_root_key(conn: &mut PgConnection, key: &RootKey) -> PgResult<()> {
    let k = StoredRootKey::of(key)?;
    sqlx::query(concat!(
        "INSERT INTO root_keys (",
        root_key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(k.id)
    .bind(k.workspace_id)
    .bind(k.hash)
    .bind(k.start)
    .bind(k.name)
    .bind(k.permissions)
    .bind(k.created_at)
    .bind(k.revoked_at)
    .bind(k.end)
    .bind(k.expires)
    .bind(k.enabled)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An unrevoked root key of the workspace, locked for a change.
async fn lock_live_root_key(
    conn: &mut PgConnection,
    workspace: &WorkspaceId,
    id: &RootKeyId,
) -> PgResult<Option<RootKey>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        root_key_columns!(),
        " FROM root_keys WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL \
         FOR NO KEY UPDATE"
    ))
    .bind(id.as_str())
    .bind(workspace.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(root_key_from_row).transpose()
}

/// Writes the fields of a root key that change after creation.
async fn write_root_key(conn: &mut PgConnection, key: &RootKey) -> PgResult<()> {
    let k = StoredRootKey::of(key)?;
    sqlx::query(
        "UPDATE root_keys SET name = $2, permissions = $3, expires = $4, enabled = $5, \
         revoked_at = $6 WHERE id = $1",
    )
    .bind(k.id)
    .bind(k.name)
    .bind(k.permissions)
    .bind(k.expires)
    .bind(k.enabled)
    .bind(k.revoked_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl RootKeyStore for PostgresStore {
    async fn insert_root_key(&self, key: &RootKey, audit: &AuditEntry) -> StoreResult<()> {
        run(async {
            let mut tx = self.pool.begin().await?;
            bump_revision(&mut tx).await?;
            insert_root_key(&mut tx, key).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn root_keys(&self) -> StoreResult<Vec<RootKey>> {
        run(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                root_key_columns!(),
                " FROM root_keys ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(root_key_from_row).collect()
        })
        .await
    }

    async fn revoke_root_key(
        &self,
        id: &RootKeyId,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        run(async {
            let mut tx = self.pool.begin().await?;
            bump_revision(&mut tx).await?;
            let revoked = sqlx::query(
                "UPDATE root_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id.as_str())
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            // Nothing revoked: rolling back leaves the revision as it was.
            if revoked {
                insert_entry(&mut tx, audit).await?;
                tx.commit().await?;
            }
            Ok(revoked)
        })
        .await
    }

    async fn root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
    ) -> StoreResult<Option<RootKey>> {
        run(async {
            let row = sqlx::query(concat!(
                "SELECT ",
                root_key_columns!(),
                " FROM root_keys WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL"
            ))
            .bind(id.as_str())
            .bind(workspace.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(root_key_from_row).transpose()
        })
        .await
    }

    async fn update_root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
        update: RootKeyUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<RootKey>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            bump_revision(&mut tx).await?;
            let Some(mut key) = lock_live_root_key(&mut tx, workspace, id).await? else {
                return Ok(None);
            };
            key.apply_update(update);
            write_root_key(&mut tx, &key).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(key))
        })
        .await
    }

    async fn rotate_root_key(
        &self,
        workspace: &WorkspaceId,
        old: &RootKeyId,
        new: &RootKey,
        old_expires: Option<UnixMillis>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<RootKey>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            bump_revision(&mut tx).await?;
            let Some(mut key) = lock_live_root_key(&mut tx, workspace, old).await? else {
                return Ok(None);
            };
            insert_root_key(&mut tx, new).await?;
            if let Some(end) = old_expires {
                key.expires = Some(key.expires.map_or(end, |e| e.min(end)));
            }
            write_root_key(&mut tx, &key).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(key))
        })
        .await
    }

    async fn root_key_revision(&self) -> StoreResult<i64> {
        run(async {
            let row = sqlx::query("SELECT value FROM revisions WHERE name = 'root_keys'")
                .fetch_one(&self.pool)
                .await?;
            Ok(row.try_get(0)?)
        })
        .await
    }
}
