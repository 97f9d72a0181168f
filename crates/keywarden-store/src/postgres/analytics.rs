//! Analytics queries on PostgreSQL: each in a read-only transaction of its own whose
//! `statement_timeout` is the query's time budget.

use async_trait::async_trait;
use keywarden_core::analytics_query::{Dialect, OutputKind, Param, RenderedQuery};
use keywarden_core::store::{
    AnalyticsError, AnalyticsLimits, AnalyticsRow, AnalyticsStore, StoreError,
};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::{PostgresStore, store_error};
use crate::analytics::{Cell, row};

/// SQLSTATE `query_canceled`: what a statement stopped by `statement_timeout` fails with.
const QUERY_CANCELED: &str = "57014";

fn cell(r: &PgRow, i: usize, kind: OutputKind) -> Result<Cell, sqlx::Error> {
    Ok(match kind {
        OutputKind::Integer | OutputKind::NullableInteger => r
            .try_get::<Option<i64>, _>(i)?
            .map_or(Cell::Null, Cell::Int),
        OutputKind::Text | OutputKind::NullableText | OutputKind::Tags => r
            .try_get::<Option<String>, _>(i)?
            .map_or(Cell::Null, Cell::Text),
        OutputKind::NullableFloat => r
            .try_get::<Option<f64>, _>(i)?
            .map_or(Cell::Null, Cell::Float),
    })
}

fn is_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(QUERY_CANCELED))
}

impl PostgresStore {
    async fn fetch_analytics(
        &self,
        query: &RenderedQuery,
        limits: AnalyticsLimits,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await?;
        // 0 would mean no timeout at all; SET takes no parameters, the number is ours.
        let timeout_ms = limits.time_budget.as_millis().clamp(1, i32::MAX as u128);
        sqlx::query(AssertSqlSafe(format!(
            "SET LOCAL statement_timeout = {timeout_ms}"
        )))
        .execute(&mut *tx)
        .await?;
        // Safe: the SQL is written by `analytics_query::render` from our own names only;
        // every value of the user's query is a bound parameter.
        let mut statement = sqlx::query(AssertSqlSafe(query.sql.clone()));
        for param in &query.params {
            statement = match param {
                Param::Int(n) => statement.bind(*n),
                Param::Text(s) => statement.bind(s.as_str()),
            };
        }
        let rows = statement.fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        Ok(rows)
    }
}

#[async_trait]
impl AnalyticsStore for PostgresStore {
    fn analytics_dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn run_analytics_query(
        &self,
        query: &RenderedQuery,
        limits: AnalyticsLimits,
    ) -> Result<Vec<AnalyticsRow>, AnalyticsError> {
        let rows = match self.fetch_analytics(query, limits).await {
            Ok(rows) => rows,
            Err(e) if is_timeout(&e) => return Err(AnalyticsError::TimedOut(limits.time_budget)),
            Err(e) => return Err(store_error(e).into()),
        };
        if rows.len() > limits.max_rows {
            return Err(AnalyticsError::TooManyRows(limits.max_rows));
        }
        rows.iter()
            .map(|r| {
                let cells = query
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| cell(r, i, c.kind))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(store_error)?;
                row(&query.columns, cells)
                    .map_err(|e| AnalyticsError::Store(StoreError::Backend(Box::new(e))))
            })
            .collect()
    }
}
