//! Verification events: each batch is one job of the writer, so raw rows, rollups and last
//! uses commit together.

use async_trait::async_trait;
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{StoreResult, UsageStore};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{
    Granularity, VerificationEvent, VerificationRollup, last_uses, rollup,
};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::bad;
use crate::columns::StoredRollup;
use crate::usage::{encode_ip, encode_tags, rollup_table};

/// Most raw rows one pruning job deletes.
const PRUNE_CHUNK: i64 = 10_000;

fn record(conn: &Connection, events: &[VerificationEvent]) -> rusqlite::Result<()> {
    let mut raw = conn.prepare_cached(
        "INSERT INTO analytics_verifications (request_id, time, workspace_id, key_space_id, \
         identity_id, external_id, key_id, outcome, tags, spent_credits, client_ip) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for e in events {
        raw.execute(params![
            e.request_id,
            e.time.as_millis(),
            e.workspace_id.as_str(),
            e.api_id.as_str(),
            e.identity_id.as_ref().map(|i| i.as_str()),
            e.external_id.as_ref().map(|i| i.as_str()),
            e.key_id.as_str(),
            e.outcome.as_str(),
            encode_tags(e),
            e.spent_credits,
            encode_ip(e),
        ])?;
    }
    for granularity in Granularity::ALL {
        let table = rollup_table(granularity);
        let mut upsert = conn.prepare_cached(&format!(
            "INSERT INTO {table} (time, workspace_id, key_space_id, identity_id, external_id, \
             key_id, outcome, tags, count, spent_credits) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (workspace_id, time, key_space_id, key_id, coalesce(identity_id, ''), \
             outcome, tags) DO UPDATE SET count = count + excluded.count, \
             spent_credits = spent_credits + excluded.spent_credits"
        ))?;
        for row in rollup(events, granularity) {
            let e = row.event;
            upsert.execute(params![
                row.bucket.as_millis(),
                e.workspace_id.as_str(),
                e.api_id.as_str(),
                e.identity_id.as_ref().map(|i| i.as_str()),
                e.external_id.as_ref().map(|i| i.as_str()),
                e.key_id.as_str(),
                e.outcome.as_str(),
                encode_tags(e),
                row.count,
                row.spent_credits,
            ])?;
        }
    }
    // Batches can commit out of order (a retried one after a newer one): only move forward.
    let mut touch = conn.prepare_cached(
        "UPDATE keys SET last_used_at = ?3 WHERE id = ?2 AND workspace_id = ?1 \
         AND (last_used_at IS NULL OR last_used_at < ?3)",
    )?;
    for (workspace, key, time) in last_uses(events) {
        touch.execute(params![workspace.as_str(), key.as_str(), time.as_millis()])?;
    }
    Ok(())
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn record_verifications(&self, events: &[VerificationEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.write(move |conn| record(conn, &events)).await
    }

    async fn prune_verifications(&self, before: UnixMillis) -> StoreResult<u64> {
        // In chunks, each its own job: one huge delete would hold the single writer (and with
        // it every other write, credit spends included) for as long as it runs.
        let mut total = 0_u64;
        loop {
            let deleted = self
                .write(move |conn| {
                    conn.prepare_cached(
                        "DELETE FROM analytics_verifications WHERE rowid IN \
                         (SELECT rowid FROM analytics_verifications WHERE time < ?1 LIMIT ?2)",
                    )?
                    .execute(params![before.as_millis(), PRUNE_CHUNK])
                })
                .await?;
            total += u64::try_from(deleted).unwrap_or(u64::MAX);
            if i64::try_from(deleted).unwrap_or(i64::MAX) < PRUNE_CHUNK {
                return Ok(total);
            }
        }
    }

    async fn verification_rollups(
        &self,
        workspace: &WorkspaceId,
        granularity: Granularity,
    ) -> StoreResult<Vec<VerificationRollup>> {
        let workspace = workspace.clone();
        self.read(move |conn| {
            let table = rollup_table(granularity);
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT time, key_space_id, identity_id, external_id, key_id, outcome, tags, \
                 count, spent_credits FROM {table} WHERE workspace_id = ?1 \
                 ORDER BY time, key_id, outcome, tags"
            ))?;
            stmt.query_map([workspace.as_str()], |row| {
                let stored = StoredRollup {
                    time: row.get(0)?,
                    key_space_id: row.get(1)?,
                    identity_id: row.get(2)?,
                    external_id: row.get(3)?,
                    key_id: row.get(4)?,
                    outcome: row.get(5)?,
                    tags: row.get(6)?,
                    count: row.get(7)?,
                    spent_credits: row.get(8)?,
                };
                stored.into_rollup().map_err(|e| bad(0, e))
            })?
            .collect()
        })
        .await
    }

    async fn count_verification_events(&self, workspace: &WorkspaceId) -> StoreResult<u64> {
        let workspace = workspace.clone();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM analytics_verifications WHERE workspace_id = ?1",
            )?
            .query_row([workspace.as_str()], |row| row.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
