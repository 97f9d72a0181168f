//! Keys: lookups for verification, listing, and the changes decided inside the writer's
//! transaction (updates, credit spends, rotations), which makes them atomic.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, KeyId, WorkspaceId};
use keywarden_core::identity::ExternalId;
use keywarden_core::key::KeyRecord;
use keywarden_core::key_change::{KeyChange, KeyChangeError};
use keywarden_core::store::{
    CreditSpend, ImportOutcome, KeyStore, Page, PageRequest, StoreError, StoreResult,
};
use keywarden_core::time::UnixMillis;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::rbac::{load_access, write_access};
use super::rows::{
    CREDIT_COLUMNS, KEY_SELECT, credits_at, insert_key, key_from_row, page_fetch, update_key_state,
};

/// A live key of a workspace, read inside the current transaction.
fn live_key(
    conn: &Connection,
    workspace: &WorkspaceId,
    id: &KeyId,
) -> rusqlite::Result<Option<KeyRecord>> {
    let key = conn
        .prepare_cached(&format!(
            "{KEY_SELECT} WHERE k.id = ?1 AND k.workspace_id = ?2 AND k.deleted_at IS NULL"
        ))?
        .query_row(params![id.as_str(), workspace.as_str()], key_from_row)
        .optional()?;
    with_access(conn, key)
}

/// The key with what it holds filled in.
fn with_access(conn: &Connection, key: Option<KeyRecord>) -> rusqlite::Result<Option<KeyRecord>> {
    key.map(|mut key| {
        load_access(conn, &mut key)?;
        Ok(key)
    })
    .transpose()
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: &KeyRecord, audit: &AuditEntry) -> StoreResult<()> {
        let (key, audit) = (key.clone(), audit.clone());
        self.write(move |conn| {
            insert_key(conn, &key)?;
            write_access(conn, &key)?;
            insert_entry(conn, &audit)
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("a key with this hash"),
            e => e,
        })
    }

    async fn import_keys(
        &self,
        keys: &[KeyRecord],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<ImportOutcome>> {
        let (keys, audit) = (keys.to_vec(), audit.clone());
        self.write(move |conn| {
            let mut exists = conn.prepare_cached("SELECT 1 FROM keys WHERE hash = ?1")?;
            let mut outcomes = Vec::with_capacity(keys.len());
            for key in &keys {
                let hash = key.digest.to_base64();
                if exists.exists([&hash])? {
                    outcomes.push(ImportOutcome::Duplicate);
                } else {
                    insert_key(conn, key)?;
                    outcomes.push(ImportOutcome::Imported);
                }
            }
            if outcomes.contains(&ImportOutcome::Imported) {
                insert_entry(conn, &audit)?;
            }
            Ok(outcomes)
        })
        .await
    }

    async fn key_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<KeyRecord>> {
        let hash = digest.to_base64();
        self.read(move |conn| {
            let key = conn
                .prepare_cached(&format!("{KEY_SELECT} WHERE k.hash = ?1"))?
                .query_row([hash], key_from_row)
                .optional()?;
            with_access(conn, key)
        })
        .await
    }

    async fn key(&self, workspace: &WorkspaceId, id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        let (workspace, id) = (workspace.clone(), id.clone());
        self.read(move |conn| live_key(conn, &workspace, &id)).await
    }

    async fn keys_of_api(
        &self,
        workspace: &WorkspaceId,
        api: &ApiId,
        external_id: Option<&ExternalId>,
        page: PageRequest,
    ) -> StoreResult<Page<KeyRecord>> {
        let (workspace, api) = (workspace.clone(), api.clone());
        let external_id = external_id.map(|e| e.as_str().to_owned());
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "{KEY_SELECT} \
                     WHERE k.workspace_id = ?1 AND k.api_id = ?2 AND k.deleted_at IS NULL \
                     AND k.id >= ?3 AND (?5 IS NULL OR i.external_id = ?5) \
                     ORDER BY k.id LIMIT ?4"
                ))?;
                let fetch = page_fetch(&page);
                let from = page.from.unwrap_or_default();
                let keys = stmt
                    .query_map(
                        params![workspace.as_str(), api.as_str(), from, fetch, external_id],
                        key_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                keys.into_iter()
                    .map(|mut key| {
                        load_access(conn, &mut key)?;
                        Ok(key)
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |k| k.id.to_string()))
    }

    async fn change_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        change: KeyChange,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Result<KeyRecord, KeyChangeError>> {
        let (workspace, id, audit) = (workspace.clone(), id.clone(), audit.clone());
        self.write(move |conn| {
            let Some(mut key) = live_key(conn, &workspace, &id)? else {
                return Ok(Err(KeyChangeError::NotFound));
            };
            if let Err(e) = key.apply(change, now) {
                return Ok(Err(e));
            }
            update_key_state(conn, &key)?;
            write_access(conn, &key)?;
            insert_entry(conn, &audit)?;
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
        let (workspace, id, audit) = (workspace.clone(), id.clone(), audit.clone());
        self.write(move |conn| {
            let Some(mut key) = live_key(conn, &workspace, &id)? else {
                return Ok(None);
            };
            if permanent {
                conn.execute("DELETE FROM keys WHERE id = ?1", [key.id.as_str()])?;
            } else {
                key.deleted_at = Some(now);
                update_key_state(conn, &key)?;
            }
            insert_entry(conn, &audit)?;
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
        let (workspace, old, new) = (workspace.clone(), old.clone(), new.clone());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(mut key) = live_key(conn, &workspace, &old)? else {
                return Ok(None);
            };
            insert_key(conn, &new)?;
            write_access(conn, &new)?;
            // Decided here, against the row as it is now, so a concurrent update that
            // shortened the key's life is never undone.
            key.expires = Some(key.expires.map_or(old_expires, |e| e.min(old_expires)));
            key.updated_at = Some(new.created_at);
            update_key_state(conn, &key)?;
            key.rotated_to = Some(new.id.clone());
            key.replaced_at = Some(new.created_at);
            super::rows::mark_replaced(conn, &key)?;
            insert_entry(conn, &audit)?;
            Ok(Some(key))
        })
        .await
    }

    async fn spend_credits(
        &self,
        id: &KeyId,
        cost: i64,
        now: UnixMillis,
    ) -> StoreResult<CreditSpend> {
        let id = id.clone();
        self.write(move |conn| {
            // Only the balance: this runs on every verification of a key with credits.
            let balance = conn
                .prepare_cached(&format!(
                    "SELECT {CREDIT_COLUMNS} FROM keys WHERE id = ?1 AND deleted_at IS NULL"
                ))?
                .query_row([id.as_str()], |row| credits_at(row, 0))
                .optional()?;
            let Some(balance) = balance else {
                return Ok(CreditSpend::KeyMissing);
            };
            let Some(mut credits) = balance else {
                return Ok(CreditSpend::Unlimited);
            };
            let refilled = credits.apply_due_refill(now);
            let outcome = credits.spend(cost);
            let spent =
                matches!(outcome, keywarden_core::credits::SpendOutcome::Spent { .. }) && cost > 0;
            if refilled || spent {
                conn.prepare_cached(
                    "UPDATE keys SET credits_remaining = ?2, last_refill_at = ?3 WHERE id = ?1",
                )?
                .execute(params![
                    id.as_str(),
                    credits.remaining(),
                    credits.last_refill_at().as_millis()
                ])?;
            }
            Ok(CreditSpend::Outcome(outcome))
        })
        .await
    }

    async fn refill_due_credits(&self, now: UnixMillis) -> StoreResult<Vec<KeyDigest>> {
        self.write(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "{KEY_SELECT} WHERE k.refill_interval IS NOT NULL AND k.deleted_at IS NULL"
            ))?;
            let keys = stmt
                .query_map([], key_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut refilled = Vec::new();
            for mut key in keys {
                let Some(mut credits) = key.credits else {
                    continue;
                };
                let before = credits.remaining();
                if credits.apply_due_refill(now) {
                    key.credits = Some(credits);
                    update_key_state(conn, &key)?;
                    if credits.remaining() != before {
                        refilled.push(key.digest);
                    }
                }
            }
            Ok(refilled)
        })
        .await
    }

    async fn all_key_digests(&self) -> StoreResult<Vec<KeyDigest>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT hash FROM keys")?;
            let hashes = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(hashes
                .iter()
                .filter_map(|h| KeyDigest::from_base64(h).ok())
                .collect())
        })
        .await
    }
}
