//! The embedded SQLite store.
//!
//! Reads run on pooled connections on blocking threads; all writes go through one writer
//! thread that commits in groups (see [`writer`]). The database runs in WAL mode with
//! `synchronous = FULL`, so readers never block the writer and a commit is on disk before any
//! request that depends on it is answered.

mod analytics;
mod anomalies;
mod apis;
mod audit;
mod connection;
mod data_keys;
mod identities;
mod keys;
mod leaks;
mod namespaces;
mod rbac;
mod readers;
mod root_keys;
mod rows;
mod schema;
mod server_secrets;
mod signing_keys;
mod usage;
mod webhooks;
mod workspaces;
mod writer;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use keywarden_core::store::{Store, StoreError, StoreResult};
use rusqlite::{Connection, ErrorCode};

use readers::Readers;
use writer::{WriteError, Writer};

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    #[error("could not open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("could not migrate the schema of {path}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path} has schema version {found}, newer than this build's {supported}; upgrade Keywarden"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        supported: usize,
    },
    #[error("could not start the writer thread")]
    Thread(#[source] std::io::Error),
}

/// The SQLite implementation of every store trait.
pub struct SqliteStore {
    /// The writer thread runs until the last handle is dropped, committing what is queued;
    /// `flush` waits for durability.
    writer: Writer,
    readers: Readers,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it and its schema if needed.
    pub fn open(path: &Path) -> Result<Self, SqliteOpenError> {
        let open_err = |source| SqliteOpenError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = connection::open_connection(path).map_err(open_err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let found = usize::try_from(found).unwrap_or(usize::MAX);
        if found > schema::LATEST_VERSION {
            return Err(SqliteOpenError::TooNew {
                path: path.to_owned(),
                found,
                supported: schema::LATEST_VERSION,
            });
        }
        schema::migrate(&mut conn).map_err(|source| SqliteOpenError::Migrate {
            path: path.to_owned(),
            source,
        })?;
        let writer = Writer::start(conn).map_err(SqliteOpenError::Thread)?;
        Ok(Self {
            writer,
            readers: Readers::new(path.to_owned()),
        })
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.readers.read(f).await.map_err(backend)
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.writer.write(f).await.map_err(|e| match e {
            WriteError::Job(e) => backend(e),
            WriteError::Commit(reason) => StoreError::Backend(reason.into()),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn flush(&self) -> StoreResult<()> {
        // Jobs run in order, so once a no-op job has committed, every earlier one has too.
        self.write(|_| Ok(())).await
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

/// A value read from the database that does not convert, as the error rusqlite reports.
pub(crate) fn conversion_error<E: std::error::Error + Send + Sync + 'static>(
    column: usize,
    e: E,
) -> rusqlite::Error {
    rows::bad(column, e)
}

/// Maps a SQLite error to a store error: uniqueness violations become conflicts.
fn backend(e: rusqlite::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict("a record with this unique value")
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Whether `e` is a UNIQUE or PRIMARY KEY violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == ErrorCode::ConstraintViolation
                && (err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}
