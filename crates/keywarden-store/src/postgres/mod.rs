//! The PostgreSQL store, for several Keywarden nodes sharing one database.
//!
//! Every operation runs on a pooled connection. Those that decide something against current
//! state run in a transaction and lock the rows they decide on (`SELECT … FOR NO KEY UPDATE`,
//! which does not block inserts that merely reference the row), so concurrent requests on any
//! node never act on a stale read. Isolation is PostgreSQL's default, READ COMMITTED: each
//! statement sees what was committed before it started, and a statement that waited for a
//! row lock sees the row as its holder left it. Every write is committed before the call
//! returns, and with `synchronous_commit` on (the default) a commit is durable once
//! acknowledged.
//!
//! No SQL names a schema: the connection's `search_path` decides where the tables live, e.g.
//! `postgres://…/db?options=-c%20search_path%3Dkeywarden`.

mod access;
mod analytics;
mod anomalies;
mod apis;
mod audit;
mod data_keys;
mod identities;
mod keys;
mod leaks;
mod namespaces;
mod rbac;
mod root_keys;
mod rows;
mod schema;
mod server_secrets;
mod signing_keys;
mod usage;
mod webhooks;
mod workspaces;

use std::time::Duration;

use async_trait::async_trait;
use keywarden_core::store::{Store, StoreError, StoreResult};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::columns::{ColumnError, EncodeError};

/// Most connections one node keeps to the database, unless configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long an operation waits for a connection before the store counts as unavailable;
/// short, so requests fail fast (503) while the database is down instead of piling up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long opening the store waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the store could not be opened. Messages never include the URL, which may hold a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum PostgresOpenError {
    #[error("the PostgreSQL URL is not valid")]
    Url(#[source] sqlx::Error),
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    #[error("could not migrate the PostgreSQL schema")]
    Migrate(#[source] sqlx::Error),
    #[error(
        "the PostgreSQL schema has version {found}, newer than this build's {supported}; upgrade Keywarden"
    )]
    TooNew { found: i64, supported: i64 },
}

/// The PostgreSQL implementation of every store trait.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL; `options=-c search_path=…`
    /// picks the schema) and brings its schema to this build's version.
    ///
    /// The first connection is made directly rather than through the pool, so an unreachable
    /// or misconfigured database fails at once with its cause (refused, bad password, …)
    /// instead of after the pool's retries. The pool itself connects lazily.
    pub async fn connect(url: &str) -> Result<Self, PostgresOpenError> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`PostgresStore::connect`] keeping at most `max_connections` (at least 2) open to the
    /// database; with the change feed's own two, their sum over all nodes must stay under
    /// the server's `max_connections`.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self, PostgresOpenError> {
        let options: PgConnectOptions = url.parse().map_err(PostgresOpenError::Url)?;
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                PostgresOpenError::Connect(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer from PostgreSQL",
                )))
            })?
            .map_err(PostgresOpenError::Connect)?;
        let migrated = schema::migrate(&mut conn).await;
        // A failed close only leaves a connection the server will drop.
        let _ = conn.close().await;
        migrated?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// The connection pool, for work beside the store traits (such as LISTEN/NOTIFY).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn flush(&self) -> StoreResult<()> {
        // Every write committed before it returned.
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        run(async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }
}

/// Maps a sqlx error to a store error: unique violations become conflicts, failures to
/// reach the database (or the database going away mid-operation) unavailability, anything
/// else a backend failure.
pub fn store_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.code().as_deref() {
            Some("23505") => return StoreError::Conflict("a record with this unique value"),
            // Class 08: connection exceptions. 57P01–03: the server is shutting down, has
            // crashed, or does not accept connections yet.
            Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03") => {
                return StoreError::Unavailable(Box::new(e));
            }
            _ => {}
        }
    }
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(Box::new(e)),
        e => StoreError::Backend(Box::new(e)),
    }
}

/// A failure inside this module; becomes a [`StoreError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Column(#[from] ColumnError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

type PgResult<T> = Result<T, Failure>;

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Sql(e) => store_error(e),
            f => StoreError::Backend(Box::new(f)),
        }
    }
}

/// Runs one operation of a trait method, turning its failure into a store error.
async fn run<T>(operation: impl Future<Output = PgResult<T>>) -> StoreResult<T> {
    Ok(operation.await?)
}

/// Names what a uniqueness conflict was about.
fn conflict_as(what: &'static str) -> impl Fn(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use keywarden_core::store::StoreError;

    use super::store_error;

    #[test]
    fn failures_to_reach_the_database_are_unavailability() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for e in [
            sqlx::Error::Io(refused),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Protocol("unexpected message".into()),
        ] {
            assert!(matches!(store_error(e), StoreError::Unavailable(_)));
        }
        for e in [sqlx::Error::RowNotFound, sqlx::Error::Decode("bad".into())] {
            assert!(matches!(store_error(e), StoreError::Backend(_)));
        }
    }
}
