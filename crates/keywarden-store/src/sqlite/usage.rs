//! Verification events: each write stores its events as batches and its minute rollup rows
//! as one pending row (`usage_batch`), in one job of the writer; a fold job later adds pending
//! rows to the rollup tables and the keys' last use and deletes them, in one transaction.

use async_trait::async_trait;
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{StoreResult, UsageStore};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{
    Granularity, RollupDelta, VerificationEvent, VerificationRollup, last_uses_of_rows,
};
use rusqlite::{Connection, Statement, params};

use super::SqliteStore;
use super::rows::bad;
use crate::columns::StoredRollup;
use crate::pending_minutes::MinuteSums;
use crate::usage::{WORKSPACES_WITH_EVENTS, encode_tags, rollup_table};
use crate::usage_batch::{EncodedWrite, keep_from};

/// Most batches one pruning job deletes (a batch holds up to a write's events).
const PRUNE_CHUNK: i64 = 100;

/// Most pending writes one fold job reads: bounds the job's memory and how long it holds the
/// single writer.
const FOLD_CHUNK: i64 = 64;

/// Rows per multi-row `INSERT`: one statement per chunk instead of per row saves most of
/// SQLite's per-statement work (at 10 parameters a row, far below its limit of 32 766).
const CHUNK: usize = 64;

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

/// Stores one write: its event batches and its pending minute rows.
fn record(conn: &Connection, write: &EncodedWrite) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO analytics_event_batches \
         (id, workspace_id, first_time, last_time, event_count, events) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for b in &write.batches {
        insert.execute(params![
            b.id,
            b.workspace_id,
            b.first_time,
            b.last_time,
            b.event_count,
            b.events
        ])?;
    }
    conn.prepare_cached("INSERT INTO analytics_rollups_pending (id, rows) VALUES (?1, ?2)")?
        .execute(params![write.pending_id.as_str(), write.pending])?;
    Ok(())
}

/// Folds up to [`FOLD_CHUNK`] pending writes; returns how many.
fn fold(conn: &Connection) -> rusqlite::Result<usize> {
    let mut ids: Vec<String> = Vec::new();
    let mut sums = MinuteSums::default();
    {
        let mut select = conn.prepare_cached(
            "SELECT id, rows FROM analytics_rollups_pending ORDER BY id LIMIT ?1",
        )?;
        let mut pending = select.query([FOLD_CHUNK])?;
        while let Some(row) = pending.next()? {
            ids.push(row.get(0)?);
            // Parsed where SQLite holds it: the text is not copied out first.
            let text = row.get_ref(1)?.as_str().map_err(|e| bad(1, e))?;
            sums.add_pending(text).map_err(|e| bad(1, e))?;
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let all = sums.rollups();
    for (granularity, rows) in Granularity::ALL.into_iter().zip(&all) {
        let table = rollup_table(granularity);
        insert_chunked(conn, rows, |n| rollup_sql(table, n), bind_rollup, 10)?;
    }
    // Folds can run out of order with respect to the events (a write retried after a newer
    // one): only move forward.
    let mut touch = conn.prepare_cached(
        "UPDATE keys SET last_used_at = ?3 WHERE id = ?2 AND workspace_id = ?1 \
         AND (last_used_at IS NULL OR last_used_at < ?3)",
    )?;
    for (workspace, key, time) in last_uses_of_rows(&all[0]) {
        touch.execute(params![workspace.as_str(), key.as_str(), time.as_millis()])?;
    }
    let mut done = conn.prepare_cached("DELETE FROM analytics_rollups_pending WHERE id = ?1")?;
    for id in &ids {
        done.execute([id])?;
    }
    Ok(ids.len())
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
        // Encoded here, so the writer thread only inserts two kinds of row.
        let Some(write) = EncodedWrite::of(events) else {
            return Ok(());
        };
        self.write(move |conn| record(conn, &write)).await
    }

    async fn fold_verification_rollups(&self) -> StoreResult<u64> {
        let mut total = 0_u64;
        // In chunks, each its own job, like pruning: the writer serves every other write too.
        loop {
            let folded = self.write(fold).await?;
            total += u64::try_from(folded).unwrap_or(u64::MAX);
            if i64::try_from(folded).unwrap_or(i64::MAX) < FOLD_CHUNK {
                return Ok(total);
            }
        }
    }

    async fn prune_verifications(&self, before: UnixMillis) -> StoreResult<u64> {
        let workspaces = self
            .read(|conn| {
                conn.prepare_cached(WORKSPACES_WITH_EVENTS)?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let cut = before.as_millis();
        let mut total = 0_u64;
        for workspace in workspaces {
            // Whole batches first, in chunks, each its own job: one huge delete would hold the
            // single writer (and with it every other write, credit spends included).
            loop {
                let workspace = workspace.clone();
                let (batches, events) = self
                    .write(move |conn| {
                        let counts = conn
                            .prepare_cached(
                                "DELETE FROM analytics_event_batches WHERE id IN \
                                 (SELECT id FROM analytics_event_batches \
                                 WHERE workspace_id = ?1 AND last_time < ?2 LIMIT ?3) \
                                 RETURNING event_count",
                            )?
                            .query_map(params![workspace, cut, PRUNE_CHUNK], |row| {
                                row.get::<_, i64>(0)
                            })?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        Ok((counts.len(), counts.iter().sum::<i64>()))
                    })
                    .await?;
                total += u64::try_from(events).unwrap_or(0);
                if i64::try_from(batches).unwrap_or(i64::MAX) < PRUNE_CHUNK {
                    break;
                }
            }
            // Then the few batches the cut falls inside: rewritten without their old events.
            let workspace = workspace.clone();
            let removed = self
                .write(move |conn| {
                    let straddling = conn
                        .prepare_cached(
                            "SELECT id, events FROM analytics_event_batches \
                             WHERE workspace_id = ?1 AND last_time >= ?2 AND first_time < ?2",
                        )?
                        .query_map(params![workspace, cut], |row| {
                            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    let mut update = conn.prepare_cached(
                        "UPDATE analytics_event_batches \
                         SET events = ?2, first_time = ?3, event_count = ?4 WHERE id = ?1",
                    )?;
                    let mut removed = 0_i64;
                    for (id, events) in straddling {
                        let kept = keep_from(&events, cut).map_err(|e| bad(1, e))?;
                        update.execute(params![id, kept.events, kept.first_time, kept.count])?;
                        removed += kept.removed;
                    }
                    Ok(removed)
                })
                .await?;
            total += u64::try_from(removed).unwrap_or(0);
        }
        Ok(total)
    }

    async fn verification_rollups(
        &self,
        workspace: &WorkspaceId,
        granularity: Granularity,
    ) -> StoreResult<Vec<VerificationRollup>> {
        self.fold_verification_rollups().await?;
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
                "SELECT coalesce(sum(event_count), 0) FROM analytics_event_batches \
                 WHERE workspace_id = ?1",
            )?
            .query_row([workspace.as_str()], |row| row.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
