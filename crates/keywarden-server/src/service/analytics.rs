//! `analytics.getVerifications`: a ClickHouse-subset query over the workspace's verification
//! events, checked and rendered by `keywarden_core::analytics_query`, run read-only by the
//! store within a time budget and a row cap.

use std::time::Duration;

use keywarden_core::analytics_query::{AnalyticsQuery, ApiScope, MAX_ROWS, Table};
use keywarden_core::id::ApiId;
use keywarden_core::root_key::{Access, ops};
use keywarden_core::store::{AnalyticsError, AnalyticsLimits, AnalyticsRow};

use super::{Caller, Keywarden};
use crate::error::ApiError;

/// What one query may cost unless configured: two seconds of database time and the row cap
/// of the query language (a query without LIMIT is limited to it when rendered).
pub const DEFAULT_ANALYTICS_LIMITS: AnalyticsLimits = AnalyticsLimits {
    time_budget: Duration::from_secs(2),
    max_rows: MAX_ROWS as usize,
};

/// Which APIs' rows the caller may read: all with `api.*.read_analytics`, those it holds
/// `api.<apiId>.read_analytics` for otherwise, and none (403) without either.
fn analytics_scope(caller: &Caller) -> Result<ApiScope, ApiError> {
    caller.require_somewhere(ops::READ_ANALYTICS)?;
    if caller.access(ops::READ_ANALYTICS, None) == Access::Granted {
        return Ok(ApiScope::All);
    }
    Ok(ApiScope::Only(
        caller
            .root_key()
            .permissions
            .targets(ops::READ_ANALYTICS)
            .into_iter()
            // A grant on something that is not an API id can match no row.
            .filter_map(|id| ApiId::parse(id).ok())
            .collect(),
    ))
}

impl Keywarden {
    /// Runs `query` over the caller's workspace (and APIs, for an API-scoped root key).
    #[tracing::instrument(level = "debug", skip_all, fields(workspace = %caller.workspace()))]
    pub async fn get_verifications(
        &self,
        caller: &Caller,
        query: &str,
    ) -> Result<Vec<AnalyticsRow>, ApiError> {
        let scope = analytics_scope(caller)?;
        let parsed = AnalyticsQuery::parse(query, self.now())
            .map_err(|e| ApiError::InvalidAnalyticsQuery(e.to_string()))?;
        // The rollup tables hold what has been folded in; what written events still add to
        // them is folded first, so a query sees every event the raw table shows.
        if parsed.table() != Table::Raw {
            self.store.fold_verification_rollups().await?;
        }
        let rendered = parsed.render(self.store.analytics_dialect(), caller.workspace(), &scope);
        self.store
            .run_analytics_query(&rendered, self.analytics_limits)
            .await
            .map_err(|e| match e {
                AnalyticsError::TimedOut(budget) => ApiError::AnalyticsQueryTimedOut(budget),
                AnalyticsError::TooManyRows(max) => ApiError::AnalyticsRowsExceeded(max),
                AnalyticsError::Store(e) => e.into(),
            })
    }
}
