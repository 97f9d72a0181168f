//! Verification events: each batch is one job of the writer, so raw rows, rollups and last
//! uses commit together.

use async_trait::async_trait;
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{StoreResult, UsageStore};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{
    Granularity, RollupDelta, VerificationEvent, VerificationRollup, last_uses, rollups,
};
use rusqlite::{Connection, Statement, params};

use super::SqliteStore;
use super::rows::bad;
use crate::columns::StoredRollup;
use crate::usage::{IpText, WORKSPACES_WITH_EVENTS, encode_ip, encode_tags, rollup_table};

/// Most raw rows one pruning job deletes.
const PRUNE_CHUNK: i64 = 10_000;

/// Rows per multi-row `INSERT`: one statement per chunk instead of per row saves most of
/// SQLite's per-statement work (at 11 parameters a row, far below its limit of 32 766).
const CHUNK: usize = 64;

/// The raw-row insert of `rows` rows.
fn raw_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO analytics_verifications (request_id, time, workspace_id, key_space_id, \
         identity_id, external_id, key_id, outcome, tags, spent_credits, client_ip) VALUES ",
    );
    push_placeholders(&mut sql, rows, 11);
    sql
}

/// The rollup upsert of `rows` rows into `table`.
fn rollup_sql(table: &str, rows: usize) -> String {
    let mut sql = format!(
        "INSERT INTO {table} (time, workspace_id, key_space_id, identity_id, external_id, \
         key_id, outcome, tags, count, spent_credits) VALUES "
    );
    push_placeholders(&mut sql, rows, 10);
    sql.push_str(
        " ON CONFLICT (workspace_id, time, key_space_id, key_id, coalesce(identity_id, ''), \
         outcome, tags) DO UPDATE SET count = count + excluded.count, \
         spent_credits = spent_credits + excluded.spent_credits",
    );
    sql
}

/// `(?, …), (?, …)`: `rows` groups of `columns` anonymous parameters.
fn push_placeholders(sql: &mut String, rows: usize, columns: usize) {
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            sql.push_str(if column == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
    }
}

/// Runs `sql_for(n)` over `items` in chunks of [`CHUNK`] rows (the remainder one row at a
/// time), each row's parameters bound by `bind` from the given first index.
fn insert_chunked<T>(
    conn: &Connection,
    items: &[T],
    sql_for: impl Fn(usize) -> String,
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> rusqlite::Result<()>,
    columns: usize,
) -> rusqlite::Result<()> {
    let mut chunks = items.chunks_exact(CHUNK);
    if chunks.len() > 0 {
        let mut stmt = conn.prepare_cached(&sql_for(CHUNK))?;
        for chunk in &mut chunks {
            for (i, item) in chunk.iter().enumerate() {
                bind(&mut stmt, i * columns + 1, item)?;
            }
            stmt.raw_execute()?;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut stmt = conn.prepare_cached(&sql_for(1))?;
        for item in chunks.remainder() {
            bind(&mut stmt, 1, item)?;
            stmt.raw_execute()?;
        }
    }
    Ok(())
}

fn record(conn: &Connection, events: &[VerificationEvent]) -> rusqlite::Result<()> {
    insert_chunked(conn, events, raw_sql, bind_raw, 11)?;
    for (granularity, rows) in Granularity::ALL.into_iter().zip(rollups(events)) {
        let table = rollup_table(granularity);
        insert_chunked(conn, &rows, |n| rollup_sql(table, n), bind_rollup, 10)?;
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

fn bind_raw(stmt: &mut Statement<'_>, at: usize, e: &VerificationEvent) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at, e.request_id.as_str())?;
    stmt.raw_bind_parameter(at + 1, e.time.as_millis())?;
    stmt.raw_bind_parameter(at + 2, e.workspace_id.as_str())?;
    stmt.raw_bind_parameter(at + 3, e.api_id.as_str())?;
    stmt.raw_bind_parameter(at + 4, e.identity_id.as_ref().map(|i| i.as_str()))?;
    stmt.raw_bind_parameter(at + 5, e.external_id.as_ref().map(|i| i.as_str()))?;
    stmt.raw_bind_parameter(at + 6, e.key_id.as_str())?;
    stmt.raw_bind_parameter(at + 7, e.outcome.as_str())?;
    stmt.raw_bind_parameter(at + 8, encode_tags(e).as_ref())?;
    stmt.raw_bind_parameter(at + 9, e.spent_credits)?;
    stmt.raw_bind_parameter(at + 10, encode_ip(e).as_ref().map(IpText::as_str))
}

fn bind_rollup(stmt: &mut Statement<'_>, at: usize, row: &RollupDelta<'_>) -> rusqlite::Result<()> {
    let e = row.event;
    stmt.raw_bind_parameter(at, row.bucket.as_millis())?;
    stmt.raw_bind_parameter(at + 1, e.workspace_id.as_str())?;
    stmt.raw_bind_parameter(at + 2, e.api_id.as_str())?;
    stmt.raw_bind_parameter(at + 3, e.identity_id.as_ref().map(|i| i.as_str()))?;
    stmt.raw_bind_parameter(at + 4, e.external_id.as_ref().map(|i| i.as_str()))?;
    stmt.raw_bind_parameter(at + 5, e.key_id.as_str())?;
    stmt.raw_bind_parameter(at + 6, e.outcome.as_str())?;
    stmt.raw_bind_parameter(at + 7, encode_tags(e).as_ref())?;
    stmt.raw_bind_parameter(at + 8, row.count)?;
    stmt.raw_bind_parameter(at + 9, row.spent_credits)
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
        let workspaces = self
            .read(|conn| {
                conn.prepare_cached(WORKSPACES_WITH_EVENTS)?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        // In chunks, each its own job: one huge delete would hold the single writer (and with
        // it every other write, credit spends included) for as long as it runs.
        let mut total = 0_u64;
        for workspace in workspaces {
            loop {
                let workspace = workspace.clone();
                let deleted = self
                    .write(move |conn| {
                        conn.prepare_cached(
                            "DELETE FROM analytics_verifications WHERE rowid IN \
                             (SELECT rowid FROM analytics_verifications \
                             WHERE workspace_id = ?1 AND time < ?2 LIMIT ?3)",
                        )?
                        .execute(params![
                            workspace,
                            before.as_millis(),
                            PRUNE_CHUNK
                        ])
                    })
                    .await?;
                total += u64::try_from(deleted).unwrap_or(u64::MAX);
                if i64::try_from(deleted).unwrap_or(i64::MAX) < PRUNE_CHUNK {
                    break;
                }
            }
        }
        Ok(total)
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
