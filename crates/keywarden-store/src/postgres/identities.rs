//! Identities, and the links from keys to them.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::WorkspaceId;
use keywarden_core::identity::{Identity, IdentityUpdate};
use keywarden_core::store::{IdentityStore, Page, PageRequest, StoreError, StoreResult};
use keywarden_core::time::UnixMillis;
use sqlx::postgres::PgConnection;

use super::audit::insert_entry;
use super::rows::{digests_from_rows, identity_columns, identity_from_row, lockable};
use super::{PgResult, PostgresStore, conflict_as, run};
use crate::columns::{StoredIdentity, page_fetch};

/// Whether a lookup locks the identity's row for a change or deletion. The lock (`FOR
/// UPDATE`) also waits for transactions that are linking keys to the identity, so the keys
/// whose cached copies go stale are all seen; a transaction linking a key after it waits for
/// the change to commit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    None,
    Write,
}

/// The identity with this id or, failing that, this external id.
async fn find(
    conn: &mut PgConnection,
    workspace: &WorkspaceId,
    reference: &str,
    lock: Lock,
) -> PgResult<Option<Identity>> {
    let sql = lockable!(
        lock == Lock::Write,
        "SELECT ",
        identity_columns!(),
        " FROM identities WHERE workspace_id = $1 AND (id = $2 OR external_id = $2) \
             ORDER BY id = $2 DESC LIMIT 1"
    );
    let row = sqlx::query(sql)
        .bind(workspace.as_str())
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(identity_from_row).transpose()
}

/// Inserts `identity`; with `skip_taken`, an external id already taken in the workspace is
/// skipped instead of a conflict.
/// Inserts `identity`; with `skip_taken`, does nothing when its external id is taken. Returns
/// whether it was inserted.
async fn insert(conn: &mut PgConnection, identity: &Identity, skip_taken: bool) -> PgResult<bool> {
    let stored = StoredIdentity::of(identity)?;
    let sql = if skip_taken {
        concat!(
            "INSERT INTO identities (",
            identity_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (workspace_id, external_id) DO NOTHING"
        )
    } else {
        concat!(
            "INSERT INTO identities (",
            identity_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
    };
    let inserted = sqlx::query(sql)
        .bind(stored.id)
        .bind(stored.workspace_id)
        .bind(stored.external_id)
        .bind(stored.meta)
        .bind(stored.ratelimits)
        .bind(stored.created_at)
        .bind(stored.updated_at)
        .execute(&mut *conn)
        .await?;
    Ok(inserted.rows_affected() > 0)
}

/// Digests of the keys linked to an identity.
async fn key_digests(conn: &mut PgConnection, identity_id: &str) -> PgResult<Vec<KeyDigest>> {
    let rows = sqlx::query("SELECT hash FROM keys WHERE identity_id = $1")
        .bind(identity_id)
        .fetch_all(&mut *conn)
        .await?;
    digests_from_rows(&rows)
}

/// Attempts at an upsert: the identity found taken by the insert can be deleted before it is
/// read; a new attempt then inserts.
const UPSERT_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
#[error("the identity kept disappearing while being upserted")]
struct UpsertRace;

#[async_trait]
impl IdentityStore for PostgresStore {
    async fn insert_identity(&self, identity: &Identity, audit: &AuditEntry) -> StoreResult<()> {
        run(async {
            let mut tx = self.pool.begin().await?;
            insert(&mut tx, identity, false).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
        .map_err(conflict_as("an identity with this externalId"))
    }

    async fn upsert_identity(
        &self,
        candidate: &Identity,
        audit: &AuditEntry,
    ) -> StoreResult<Identity> {
        for _ in 0..UPSERT_ATTEMPTS {
            let found = run(async {
                let mut conn = self.pool.begin().await?;
                // A concurrent insert of the same external id makes this one wait for it and
                // then do nothing; the read after it (a new statement) sees the winner.
                if insert(&mut conn, candidate, true).await? {
                    insert_entry(&mut conn, audit).await?;
                }
                let row = sqlx::query(concat!(
                    "SELECT ",
                    identity_columns!(),
                    " FROM identities WHERE workspace_id = $1 AND external_id = $2"
                ))
                .bind(candidate.workspace_id.as_str())
                .bind(candidate.external_id.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                conn.commit().await?;
                row.as_ref().map(identity_from_row).transpose()
            })
            .await?;
            if let Some(identity) = found {
                return Ok(identity);
            }
        }
        Err(StoreError::Backend(Box::new(UpsertRace)))
    }

    async fn identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Identity>> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            find(&mut conn, workspace, reference, Lock::None).await
        })
        .await
    }

    async fn identities(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Identity>> {
        let search = search.map(str::to_lowercase);
        run(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                identity_columns!(),
                " FROM identities WHERE workspace_id = $1 AND id >= $2 \
                 AND ($4::text IS NULL OR strpos(lower(id), $4) > 0 \
                      OR strpos(lower(external_id), $4) > 0) \
                 ORDER BY id LIMIT $3"
            ))
            .bind(workspace.as_str())
            .bind(page.from.as_deref().unwrap_or_default())
            .bind(page_fetch(&page))
            .bind(search.as_deref())
            .fetch_all(&self.pool)
            .await?;
            let identities = rows
                .iter()
                .map(identity_from_row)
                .collect::<PgResult<Vec<_>>>()?;
            Ok(Page::from_overfetch(identities, page.limit, |i| {
                i.id.to_string()
            }))
        })
        .await
    }

    async fn update_identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: IdentityUpdate,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<(Identity, Vec<KeyDigest>)>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(mut identity) = find(&mut tx, workspace, reference, Lock::Write).await? else {
                return Ok(None);
            };
            identity.apply_update(update, now);
            let stored = StoredIdentity::of(&identity)?;
            sqlx::query(
                "UPDATE identities SET meta = $2, ratelimits = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(&stored.id)
            .bind(stored.meta)
            .bind(stored.ratelimits)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?;
            let digests = key_digests(&mut tx, &stored.id).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
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
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(identity) = find(&mut tx, workspace, reference, Lock::Write).await? else {
                return Ok(None);
            };
            let id = identity.id.as_str();
            let digests = key_digests(&mut tx, id).await?;
            sqlx::query("UPDATE keys SET identity_id = NULL WHERE identity_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM identities WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(digests))
        })
        .await
    }
}
