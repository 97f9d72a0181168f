//! Root keys, and the revision counter servers poll to notice changes from other processes.

use async_trait::async_trait;
use keywarden_core::id::RootKeyId;
use keywarden_core::root_key::RootKey;
use keywarden_core::store::{RootKeyStore, StoreResult};
use keywarden_core::time::UnixMillis;
use rusqlite::{Connection, params};

use super::SqliteStore;
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
        "INSERT INTO root_keys (id, workspace_id, hash, start, name, permissions, created_at, \
         revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            key.id.as_str(),
            key.workspace_id.as_str(),
            key.digest.to_base64(),
            key.start,
            key.name.as_ref().map(|n| n.as_str()),
            permissions,
            key.created_at.as_millis(),
            key.revoked_at.map(UnixMillis::as_millis),
        ],
    )?;
    bump_revision(conn)
}

#[async_trait]
impl RootKeyStore for SqliteStore {
    async fn insert_root_key(&self, key: &RootKey) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |conn| insert_root_key(conn, &key)).await
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

    async fn revoke_root_key(&self, id: &RootKeyId, now: UnixMillis) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE root_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.as_str(), now.as_millis()],
            )?;
            if changed > 0 {
                bump_revision(conn)?;
            }
            Ok(changed > 0)
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
