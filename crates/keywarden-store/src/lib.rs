//! Keywarden's storage backends, implementing the traits of `keywarden_core::store`.
//!
//! SQLite is the embedded default: one file, WAL journal, synchronous commits, every write
//! committed before it is acknowledged. PostgreSQL serves several nodes sharing one database.

mod analytics;
mod anomaly_columns;
mod audit_columns;
#[cfg(test)]
mod batch_migration_fixture;
mod columns;
mod data_key_columns;
mod location;
mod pending_minutes;
pub mod postgres;
pub mod postgres_feed;
mod signing_key_columns;
pub mod sqlite;
pub mod transfer;
mod usage;
mod usage_batch;
mod webhook_columns;

use std::sync::Arc;

use keywarden_core::store::Store;

pub use location::{StoreLocation, StoreLocationError};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Opens (creating if needed) the store at `location`.
pub async fn open(location: &StoreLocation) -> Result<Arc<dyn Store>, OpenError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
        StoreLocation::Postgres(url) => Ok(Arc::new(PostgresStore::connect(url).await?)),
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not open the SQLite database")]
    Sqlite(#[from] sqlite::SqliteOpenError),
    #[error("could not open the PostgreSQL database")]
    Postgres(#[from] postgres::PostgresOpenError),
}
