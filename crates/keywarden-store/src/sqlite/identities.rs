//! Identities, and the links from keys to them.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::WorkspaceId;
use keywarden_core::identity::{Identity, IdentityUpdate};
use keywarden_core::store::{IdentityStore, Page, PageRequest, StoreError, StoreResult};
use keywarden_core::time::UnixMillis;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::rows::{IDENTITY_COLUMNS, identity_from_row, identity_values, page_fetch};

/// The identity with this id or, failing that, this external id.
fn find(
    conn: &Connection,
    workspace: &WorkspaceId,
    reference: &str,
) -> rusqlite::Result<Option<Identity>> {
    conn.prepare_cached(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM identities \
         WHERE workspace_id = ?1 AND (id = ?2 OR external_id = ?2) \
         ORDER BY id = ?2 DESC LIMIT 1"
    ))?
    .query_row(params![workspace.as_str(), reference], identity_from_row)
    .optional()
}

fn insert(conn: &Connection, identity: &Identity) -> rusqlite::Result<()> {
    let (meta, ratelimits) = identity_values(identity)?;
    conn.prepare_cached(
        "INSERT INTO identities (id, workspace_id, external_id, meta, ratelimits, created_at, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        identity.id.as_str(),
        identity.workspace_id.as_str(),
        identity.external_id.as_str(),
        meta,
        ratelimits,
        identity.created_at.as_millis(),
        identity.updated_at.map(UnixMillis::as_millis),
    ])?;
    Ok(())
}

/// Digests of the keys linked to an identity.
fn key_digests(conn: &Connection, identity_id: &str) -> rusqlite::Result<Vec<KeyDigest>> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM keys WHERE identity_id = ?1")?;
    let hashes = stmt
        .query_map([identity_id], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(hashes
        .iter()
        .filter_map(|h| KeyDigest::from_base64(h).ok())
        .collect())
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn insert_identity(&self, identity: &Identity, audit: &AuditEntry) -> StoreResult<()> {
        let (identity, audit) = (identity.clone(), audit.clone());
        self.write(move |conn| {
            insert(conn, &identity)?;
            insert_entry(conn, &audit)
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("an identity with this externalId"),
            e => e,
        })
    }

    async fn upsert_identity(
        &self,
        candidate: &Identity,
        audit: &AuditEntry,
    ) -> StoreResult<Identity> {
        let (candidate, audit) = (candidate.clone(), audit.clone());
        self.write(move |conn| {
            let existing = conn
                .prepare_cached(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities \
                     WHERE workspace_id = ?1 AND external_id = ?2"
                ))?
                .query_row(
                    params![
                        candidate.workspace_id.as_str(),
                        candidate.external_id.as_str()
                    ],
                    identity_from_row,
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok(existing);
            }
            insert(conn, &candidate)?;
            insert_entry(conn, &audit)?;
            Ok(candidate)
        })
        .await
    }

    async fn identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Identity>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        self.read(move |conn| find(conn, &workspace, &reference))
            .await
    }

    async fn identities(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Identity>> {
        let workspace = workspace.clone();
        let search = search.map(str::to_lowercase);
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities \
                     WHERE workspace_id = ?1 AND id >= ?2 \
                     AND (?4 IS NULL OR instr(lower(id), ?4) > 0 \
                          OR instr(lower(external_id), ?4) > 0) \
                     ORDER BY id LIMIT ?3"
                ))?;
                let fetch = page_fetch(&page);
                let from = page.from.unwrap_or_default();
                stmt.query_map(
                    params![workspace.as_str(), from, fetch, search],
                    identity_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |i| i.id.to_string()))
    }

    async fn update_identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: IdentityUpdate,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<(Identity, Vec<KeyDigest>)>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(mut identity) = find(conn, &workspace, &reference)? else {
                return Ok(None);
            };
            identity.apply_update(update, now);
            let (meta, ratelimits) = identity_values(&identity)?;
            conn.prepare_cached(
                "UPDATE identities SET meta = ?2, ratelimits = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![
                identity.id.as_str(),
                meta,
                ratelimits,
                now.as_millis()
            ])?;
            let digests = key_digests(conn, identity.id.as_str())?;
            insert_entry(conn, &audit)?;
            Ok(Some((identity, digests)))
        })
        .await
    }

    async fn delete_identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Vec<KeyDigest>>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(identity) = find(conn, &workspace, &reference)? else {
                return Ok(None);
            };
            let digests = key_digests(conn, identity.id.as_str())?;
            conn.execute(
                "UPDATE keys SET identity_id = NULL WHERE identity_id = ?1",
                [identity.id.as_str()],
            )?;
            conn.execute(
                "DELETE FROM identities WHERE id = ?1",
                [identity.id.as_str()],
            )?;
            insert_entry(conn, &audit)?;
            Ok(Some(digests))
        })
        .await
    }
}
