//! Root keys, and the revision counter servers poll to notice changes from other processes.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{RootKeyId, WorkspaceId};
use keywarden_core::root_key::{RootKey, RootKeyUpdate};
use keywarden_core::store::{RootKeyStore, StoreResult};
use keywarden_core::time::UnixMillis;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::rows::{ROOT_KEY_COLUMNS, root_key_from_row};

fn bump_revision(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE revisions SET value = value + 1 WHERE name = 'root_keys'",
        [],
    )?;
    Ok(())
}

pub(super) fn insert_root_key(conn: &Connection, key: &RootKey) -> rusqlite::Result<()> {
    let permissions = serde_json::to_string(&key.permissions.to_strings())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        &format!(
            "INSERT INTO root_keys ({ROOT_KEY_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            key.id.as_str(),
            key.workspace_id.as_str(),
            key.digest.to_base64(),
            key.start,
            key.name.as_ref().map(|n| n.as_str()),
            permissions,
            key.created_at.as_millis(),
            key.revoked_at.map(UnixMillis::as_millis),
            key.end,
            key.expires.map(UnixMillis::as_millis),
            key.enabled,
        ],
    )?;
    bump_revision(conn)
}

/// An unrevoked root key of the workspace.
fn live_root_key(
    conn: &Connection,
    workspace: &WorkspaceId,
    id: &RootKeyId,
) -> rusqlite::Result<Option<RootKey>> {
    conn.prepare_cached(&format!(
        "SELECT {ROOT_KEY_COLUMNS} FROM root_keys \
         WHERE id = ?1 AND workspace_id = ?2 AND revoked_at IS NULL"
    ))?
    .query_row(params![id.as_str(), workspace.as_str()], root_key_from_row)
    .optional()
}

/// Writes the fields of a root key that change after creation.
fn write_root_key(conn: &Connection, key: &RootKey) -> rusqlite::Result<()> {
    let permissions = serde_json::to_string(&key.permissions.to_strings())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "UPDATE root_keys SET name = ?2, permissions = ?3, expires = ?4, enabled = ?5, \
         revoked_at = ?6 WHERE id = ?1",
        params![
            key.id.as_str(),
            key.name.as_ref().map(|n| n.as_str()),
            permissions,
            key.expires.map(UnixMillis::as_millis),
            key.enabled,
            key.revoked_at.map(UnixMillis::as_millis),
        ],
    )?;
    bump_revision(conn)
}

#[async_trait]
impl RootKeyStore for SqliteStore {
    async fn insert_root_key(&self, key: &RootKey, audit: &AuditEntry) -> StoreResult<()> {
        let (key, audit) = (key.clone(), audit.clone());
        self.write(move |conn| {
            insert_root_key(conn, &key)?;
            insert_entry(conn, &audit)
        })
        .await
    }

    async fn root_keys(&self) -> StoreResult<Vec<RootKey>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ROOT_KEY_COLUMNS} FROM root_keys ORDER BY id"
            ))?;
            stmt.query_map([], root_key_from_row)?.collect()
        })
        .await
    }

    async fn revoke_root_key(
        &self,
        id: &RootKeyId,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let (id, audit) = (id.clone(), audit.clone());
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE root_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.as_str(), now.as_millis()],
            )?;
            if changed > 0 {
                bump_revision(conn)?;
                insert_entry(conn, &audit)?;
            }
            Ok(changed > 0)
        })
        .await
    }

    async fn root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
    ) -> StoreResult<Option<RootKey>> {
        let (workspace, id) = (workspace.clone(), id.clone());
        self.read(move |conn| live_root_key(conn, &workspace, &id))
            .await
    }

    async fn update_root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
        update: RootKeyUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<RootKey>> {
        let (workspace, id, audit) = (workspace.clone(), id.clone(), audit.clone());
        self.write(move |conn| {
            let Some(mut key) = live_root_key(conn, &workspace, &id)? else {
                return Ok(None);
            };
            key.apply_update(update);
            write_root_key(conn, &key)?;
            insert_entry(conn, &audit)?;
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
        let (workspace, old, new) = (workspace.clone(), old.clone(), new.clone());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(mut key) = live_root_key(conn, &workspace, &old)? else {
                return Ok(None);
            };
            insert_root_key(conn, &new)?;
            if let Some(end) = old_expires {
                key.expires = Some(key.expires.map_or(end, |e| e.min(end)));
            }
            write_root_key(conn, &key)?;
            insert_entry(conn, &audit)?;
            Ok(Some(key))
        })
        .await
    }

    async fn root_key_revision(&self) -> StoreResult<i64> {
        self.read(|conn| {
            conn.query_row(
                "SELECT value FROM revisions WHERE name = 'root_keys'",
                [],
                |r| r.get(0),
            )
        })
        .await
    }
}
