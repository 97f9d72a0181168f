//! Analytics queries on SQLite: each on a connection of its own, opened read-only with
//! `query_only` on, and stopped by a progress handler once its time budget is spent.

use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keywarden_core::analytics_query::{Dialect, Param, RenderedQuery};
use keywarden_core::store::{AnalyticsError, AnalyticsLimits, AnalyticsRow, AnalyticsStore};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, params_from_iter};

use super::{SqliteStore, backend, conversion_error};
use crate::analytics::{Cell, row};

/// SQLite VM instructions between two looks at the clock.
const PROGRESS_STEPS: std::ffi::c_int = 1_000;

/// Why running the query on SQLite failed.
enum RunError {
    Interrupted,
    TooManyRows(usize),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for RunError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(err, _)
                if err.code == ErrorCode::OperationInterrupted =>
            {
                Self::Interrupted
            }
            _ => Self::Sqlite(e),
        }
    }
}

/// A read-only connection: it can neither write the file nor, with `query_only`, run a
/// statement that changes anything (not even a temporary table).
fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Real(x) => Cell::Float(x),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Cell::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

fn run(
    path: &Path,
    query: &RenderedQuery,
    limits: AnalyticsLimits,
) -> Result<Vec<AnalyticsRow>, RunError> {
    let mut conn = open_read_only(path)?;
    let deadline = Instant::now() + limits.time_budget;
    conn.progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline))?;
    let mut stmt = conn.prepare(&query.sql)?;
    let params = query.params.iter().map(|p| match p {
        Param::Int(n) => rusqlite::types::Value::Integer(*n),
        Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
    });
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if out.len() == limits.max_rows {
            return Err(RunError::TooManyRows(limits.max_rows));
        }
        let cells = (0..query.columns.len())
            .map(|i| r.get_ref(i).map(cell))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(row(&query.columns, cells).map_err(|e| conversion_error(0, e))?);
    }
    Ok(out)
}

#[async_trait]
impl AnalyticsStore for SqliteStore {
    fn analytics_dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn run_analytics_query(
        &self,
        query: &RenderedQuery,
        limits: AnalyticsLimits,
    ) -> Result<Vec<AnalyticsRow>, AnalyticsError> {
        let path = self.readers.path().to_owned();
        let query = query.clone();
        let result = tokio::task::spawn_blocking(move || run(&path, &query, limits))
            .await
            .map_err(|e| backend(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        result.map_err(|e| match e {
            RunError::Interrupted => AnalyticsError::TimedOut(limits.time_budget),
            RunError::TooManyRows(n) => AnalyticsError::TooManyRows(n),
            RunError::Sqlite(e) => AnalyticsError::Store(backend(e)),
        })
    }
}
