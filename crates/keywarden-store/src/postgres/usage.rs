//! Verification events: a write is one statement (its event batches and its pending minute
//! rows, `usage_batch`); a fold is one transaction with one upsert per rollup table and one
//! update of last uses, each fed by arrays (`UNNEST`), so it costs a handful of round trips
//! whatever its size.
//!
//! Rollup rows and keys are written in a fixed order (sorted by their key), so two nodes
//! folding at the same time wait for each other instead of deadlocking.

use async_trait::async_trait;
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{StoreResult, UsageStore};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{
    Granularity, RollupDelta, VerificationEvent, VerificationRollup, last_uses_of_rows,
};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::{PgResult, PostgresStore, run};
use crate::columns::StoredRollup;
use crate::pending_minutes::MinuteSums;
use crate::usage::{WORKSPACES_WITH_EVENTS, encode_tags};
use crate::usage_batch::{EncodedWrite, keep_from};

/// Most pending writes one fold transaction reads.
const FOLD_CHUNK: i64 = 64;

/// The upsert of one rollup table: rows added to what the table has.
macro_rules! rollup_upsert {
    ($table:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " AS r (time, workspace_id, key_space_id, identity_id, external_id, key_id, outcome, \
             tags, count, spent_credits) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[]) \
             ON CONFLICT (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), \
             outcome, tags) DO UPDATE SET count = r.count + excluded.count, \
             spent_credits = r.spent_credits + excluded.spent_credits"
        )
    };
}

/// The read of one rollup table, for one workspace.
macro_rules! rollup_select {
    ($table:literal) => {
        concat!(
            "SELECT time, key_space_id, identity_id, external_id, key_id, outcome, tags, count, \
             spent_credits FROM ",
            $table,
            " WHERE workspace_id = $1 ORDER BY time, key_id, outcome, tags"
        )
    };
}

const fn select_sql(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Minute => rollup_select!("analytics_verifications_per_minute"),
        Granularity::Hour => rollup_select!("analytics_verifications_per_hour"),
        Granularity::Day => rollup_select!("analytics_verifications_per_day"),
        Granularity::Month => rollup_select!("analytics_verifications_per_month"),
    }
}

const fn upsert_sql(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Minute => rollup_upsert!("analytics_verifications_per_minute"),
        Granularity::Hour => rollup_upsert!("analytics_verifications_per_hour"),
        Granularity::Day => rollup_upsert!("analytics_verifications_per_day"),
        Granularity::Month => rollup_upsert!("analytics_verifications_per_month"),
    }
}

/// Stores one write in one statement (so atomically): its event batches and its pending
/// minute rows.
async fn insert_write(conn: &mut PgConnection, write: &EncodedWrite) -> PgResult<()> {
    let batches = &write.batches;
    sqlx::query(
        "WITH batches AS (INSERT INTO analytics_event_batches \
         (id, workspace_id, first_time, last_time, event_count, events) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], \
         $6::text[])) \
         INSERT INTO analytics_rollups_pending (id, rows) VALUES ($7, $8)",
    )
    .bind(batches.iter().map(|b| b.id.as_str()).collect::<Vec<_>>())
    .bind(
        batches
            .iter()
            .map(|b| b.workspace_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(batches.iter().map(|b| b.first_time).collect::<Vec<_>>())
    .bind(batches.iter().map(|b| b.last_time).collect::<Vec<_>>())
    .bind(batches.iter().map(|b| b.event_count).collect::<Vec<_>>())
    .bind(
        batches
            .iter()
            .map(|b| b.events.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(write.pending_id.as_str())
    .bind(write.pending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn upsert_rollup(
    conn: &mut PgConnection,
    rows: &[RollupDelta<'_>],
    granularity: Granularity,
) -> PgResult<()> {
    let n = rows.len();
    let mut time = Vec::with_capacity(n);
    let mut workspace_id = Vec::with_capacity(n);
    let mut key_space_id = Vec::with_capacity(n);
    let mut identity_id = Vec::with_capacity(n);
    let mut external_id = Vec::with_capacity(n);
    let mut key_id = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut count = Vec::with_capacity(n);
    let mut spent_credits = Vec::with_capacity(n);
    for row in rows {
        let e = row.event;
        time.push(row.bucket.as_millis());
        workspace_id.push(e.workspace_id.as_str());
        key_space_id.push(e.api_id.as_str());
        identity_id.push(e.identity_id.as_ref().map(|i| i.as_str()));
        external_id.push(e.external_id.as_ref().map(|i| i.as_str()));
        key_id.push(e.key_id.as_str());
        outcome.push(e.outcome.as_str());
        tags.push(encode_tags(e));
        count.push(row.count);
        spent_credits.push(row.spent_credits);
    }
    sqlx::query(upsert_sql(granularity))
        .bind(time)
        .bind(workspace_id)
        .bind(key_space_id)
        .bind(identity_id)
        .bind(external_id)
        .bind(key_id)
        .bind(outcome)
        .bind(tags.iter().map(AsRef::as_ref).collect::<Vec<&str>>())
        .bind(count)
        .bind(spent_credits)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves each key's last use forward to its latest event among `minutes`; never backwards,
/// as writes can be folded out of order (a retried one after a newer one).
async fn touch_keys(conn: &mut PgConnection, minutes: &[RollupDelta<'_>]) -> PgResult<()> {
    let uses = last_uses_of_rows(minutes);
    let workspace_id: Vec<&str> = uses.iter().map(|(w, _, _)| w.as_str()).collect();
    let key_id: Vec<&str> = uses.iter().map(|(_, k, _)| k.as_str()).collect();
    let time: Vec<i64> = uses.iter().map(|(_, _, t)| t.as_millis()).collect();
    sqlx::query(
        "UPDATE keys k SET last_used_at = u.time \
         FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(workspace_id, key_id, time) \
         WHERE k.id = u.key_id AND k.workspace_id = u.workspace_id \
         AND (k.last_used_at IS NULL OR k.last_used_at < u.time)",
    )
    .bind(workspace_id)
    .bind(key_id)
    .bind(time)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Folds up to [`FOLD_CHUNK`] pending writes in one transaction; returns how many. The
/// pending rows are locked in id order, so a node folding at the same time waits and then
/// skips the rows this one deleted: every write is folded once.
async fn fold_chunk(store: &PostgresStore) -> PgResult<usize> {
    let mut tx = store.pool.begin().await?;
    let pending: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, rows FROM analytics_rollups_pending ORDER BY id LIMIT $1 FOR UPDATE",
    )
    .bind(FOLD_CHUNK)
    .fetch_all(&mut *tx)
    .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut sums = MinuteSums::default();
    for (_, rows) in &pending {
        sums.add_pending(rows)?;
    }
    let all = sums.rollups();
    for (granularity, rows) in Granularity::ALL.into_iter().zip(&all) {
        upsert_rollup(&mut tx, rows, granularity).await?;
    }
    touch_keys(&mut tx, &all[0]).await?;
    sqlx::query("DELETE FROM analytics_rollups_pending WHERE id = ANY($1)")
        .bind(
            pending
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(pending.len())
}

/// Removes one workspace's events before `cut`: whole batches, then the old events of the
/// few batches the cut falls inside. Returns how many events went.
async fn prune_workspace(store: &PostgresStore, workspace: &str, cut: i64) -> PgResult<u64> {
    let mut tx = store.pool.begin().await?;
    let whole: i64 = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM analytics_event_batches \
         WHERE workspace_id = $1 AND last_time < $2 RETURNING event_count) \
         SELECT coalesce(sum(event_count), 0)::bigint FROM gone",
    )
    .bind(workspace)
    .bind(cut)
    .fetch_one(&mut *tx)
    .await?;
    let straddling: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, events FROM analytics_event_batches \
         WHERE workspace_id = $1 AND last_time >= $2 AND first_time < $2 FOR UPDATE",
    )
    .bind(workspace)
    .bind(cut)
    .fetch_all(&mut *tx)
    .await?;
    let mut removed = whole;
    for (id, events) in straddling {
        let kept = keep_from(&events, cut)?;
        sqlx::query(
            "UPDATE analytics_event_batches SET events = $2, first_time = $3, event_count = $4 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(kept.events)
        .bind(kept.first_time)
        .bind(kept.count)
        .execute(&mut *tx)
        .await?;
        removed += kept.removed;
    }
    tx.commit().await?;
    Ok(u64::try_from(removed).unwrap_or(0))
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn record_verifications(&self, events: &[VerificationEvent]) -> StoreResult<()> {
        let Some(write) = EncodedWrite::of(events) else {
            return Ok(());
        };
        run(async {
            let mut conn = self.pool.acquire().await?;
            insert_write(&mut conn, &write).await
        })
        .await
    }

    async fn fold_verification_rollups(&self) -> StoreResult<u64> {
        run(async {
            let mut total = 0_u64;
            loop {
                let folded = fold_chunk(self).await?;
                total += u64::try_from(folded).unwrap_or(u64::MAX);
                if i64::try_from(folded).unwrap_or(i64::MAX) < FOLD_CHUNK {
                    return Ok(total);
                }
            }
        })
        .await
    }

    async fn prune_verifications(&self, before: UnixMillis) -> StoreResult<u64> {
        run(async {
            // Per workspace, through the batches' (workspace_id, last_time) index.
            let workspaces: Vec<String> = sqlx::query_scalar(WORKSPACES_WITH_EVENTS)
                .fetch_all(&self.pool)
                .await?;
            let mut total = 0;
            for workspace in workspaces {
                total += prune_workspace(self, &workspace, before.as_millis()).await?;
            }
            Ok(total)
        })
        .await
    }

    async fn verification_rollups(
        &self,
        workspace: &WorkspaceId,
        granularity: Granularity,
    ) -> StoreResult<Vec<VerificationRollup>> {
        self.fold_verification_rollups().await?;
        run(async {
            let rows = sqlx::query(select_sql(granularity))
                .bind(workspace.as_str())
                .fetch_all(&self.pool)
                .await?;
            let mut rollups = Vec::with_capacity(rows.len());
            for row in rows {
                let stored = StoredRollup {
                    time: row.try_get(0)?,
                    key_space_id: row.try_get(1)?,
                    identity_id: row.try_get(2)?,
                    external_id: row.try_get(3)?,
                    key_id: row.try_get(4)?,
                    outcome: row.try_get(5)?,
                    tags: row.try_get(6)?,
                    count: row.try_get(7)?,
                    spent_credits: row.try_get(8)?,
                };
                rollups.push(stored.into_rollup()?);
            }
            Ok(rollups)
        })
        .await
    }

    async fn count_verification_events(&self, workspace: &WorkspaceId) -> StoreResult<u64> {
        run(async {
            let n: i64 = sqlx::query(
                "SELECT coalesce(sum(event_count), 0)::bigint FROM analytics_event_batches \
                     WHERE workspace_id = $1",
            )
            .bind(workspace.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
