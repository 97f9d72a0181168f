//! Workspaces and the first-start bootstrap.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::root_key::RootKey;
use keywarden_core::store::{StoreResult, WorkspaceStore};
use keywarden_core::workspace::Workspace;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::root_keys::insert_root_key;
use super::rows::workspace_from_row;

pub(super) fn insert_workspace(conn: &Connection, ws: &Workspace) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO workspaces (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![ws.id.as_str(), ws.name.as_str(), ws.created_at.as_millis()],
    )?;
    Ok(())
}

#[async_trait]
impl WorkspaceStore for SqliteStore {
    async fn bootstrap(
        &self,
        workspace: &Workspace,
        root_key: &RootKey,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let workspace = workspace.clone();
        let (root_key, audit) = (root_key.clone(), audit.clone());
        self.write(move |conn| {
            let existing: i64 =
                conn.query_row("SELECT count(*) FROM root_keys", [], |r| r.get(0))?;
            if existing > 0 {
                return Ok(false);
            }
            insert_workspace(conn, &workspace)?;
            insert_root_key(conn, &root_key)?;
            insert_entry(conn, &audit)?;
            Ok(true)
        })
        .await
    }

    async fn insert_workspace(&self, workspace: &Workspace) -> StoreResult<()> {
        let workspace = workspace.clone();
        self.write(move |conn| insert_workspace(conn, &workspace))
            .await
    }

    async fn workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, name, created_at FROM workspaces ORDER BY id")?;
            stmt.query_map([], workspace_from_row)?.collect()
        })
        .await
    }
}
