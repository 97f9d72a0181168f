//! Verification events: one transaction per batch, with one multi-row statement for the raw
//! rows, one upsert per rollup table and one update of last uses, each fed by arrays
//! (`UNNEST`), so a batch costs a handful of round trips whatever its size.
//!
//! Rollup rows and keys are written in a fixed order (sorted by their key), so two nodes
//! writing batches that touch the same rows wait for each other instead of deadlocking.

use async_trait::async_trait;
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{StoreResult, UsageStore};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{
    Granularity, RollupDelta, VerificationEvent, VerificationRollup, last_uses, rollups,
};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::{PgResult, PostgresStore, run};
use crate::columns::StoredRollup;
use crate::usage::{WORKSPACES_WITH_EVENTS, encode_ip, encode_tags};

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

async fn insert_raw(conn: &mut PgConnection, events: &[VerificationEvent]) -> PgResult<()> {
    let n = events.len();
    let mut request_id = Vec::with_capacity(n);
    let mut time = Vec::with_capacity(n);
    let mut workspace_id = Vec::with_capacity(n);
    let mut key_space_id = Vec::with_capacity(n);
    let mut identity_id = Vec::with_capacity(n);
    let mut external_id = Vec::with_capacity(n);
    let mut key_id = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut spent_credits = Vec::with_capacity(n);
    let mut client_ip = Vec::with_capacity(n);
    for e in events {
        request_id.push(e.request_id.as_str());
        time.push(e.time.as_millis());
        workspace_id.push(e.workspace_id.as_str());
        key_space_id.push(e.api_id.as_str());
        identity_id.push(e.identity_id.as_ref().map(|i| i.as_str()));
        external_id.push(e.external_id.as_ref().map(|i| i.as_str()));
        key_id.push(e.key_id.as_str());
        outcome.push(e.outcome.as_str());
        tags.push(encode_tags(e));
        spent_credits.push(e.spent_credits);
        client_ip.push(encode_ip(e).map(|ip| ip.as_str().to_owned()));
    }
    sqlx::query(
        "INSERT INTO analytics_verifications (request_id, time, workspace_id, key_space_id, \
         identity_id, external_id, key_id, outcome, tags, spent_credits, client_ip) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[])",
    )
    .bind(request_id)
    .bind(time)
    .bind(workspace_id)
    .bind(key_space_id)
    .bind(identity_id)
    .bind(external_id)
    .bind(key_id)
    .bind(outcome)
    .bind(tags.iter().map(AsRef::as_ref).collect::<Vec<&str>>())
    .bind(spent_credits)
    .bind(client_ip)
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

/// Moves each key's last use forward to its latest event; never backwards, as batches can
/// commit out of order (a retried one after a newer one).
async fn touch_keys(conn: &mut PgConnection, events: &[VerificationEvent]) -> PgResult<()> {
    let uses = last_uses(events);
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

#[async_trait]
impl UsageStore for PostgresStore {
    async fn record_verifications(&self, events: &[VerificationEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        run(async {
            let mut tx = self.pool.begin().await?;
            insert_raw(&mut tx, events).await?;
            for (granularity, rows) in Granularity::ALL.into_iter().zip(rollups(events)) {
                upsert_rollup(&mut tx, &rows, granularity).await?;
            }
            touch_keys(&mut tx, events).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn prune_verifications(&self, before: UnixMillis) -> StoreResult<u64> {
        run(async {
            // Per workspace, through the (workspace_id, time) index: the raw rows have no
            // index on time alone.
            let workspaces: Vec<String> = sqlx::query_scalar(WORKSPACES_WITH_EVENTS)
                .fetch_all(&self.pool)
                .await?;
            let mut total = 0;
            for workspace in workspaces {
                let done = sqlx::query(
                    "DELETE FROM analytics_verifications WHERE workspace_id = $1 AND time < $2",
                )
                .bind(workspace)
                .bind(before.as_millis())
                .execute(&self.pool)
                .await?;
                total += done.rows_affected();
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
            let n: i64 =
                sqlx::query("SELECT count(*) FROM analytics_verifications WHERE workspace_id = $1")
                    .bind(workspace.as_str())
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
