//! Fresh, empty databases of each backend, and stores opened on them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keywarden_core::store::Store;
use keywarden_store::{PostgresStore, SqliteStore};
use keywarden_testkit::TestSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An empty database that lives as long as this value; several stores can be opened on it,
/// as several processes (or nodes) would.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(TestSchema),
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("kw.db");
                Self::Sqlite { _dir: dir, path }
            }
            Backend::Postgres => Self::Postgres(TestSchema::create().await),
        }
    }

    /// Opens a store on this database (migrating it when it is new).
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).unwrap()),
            Self::Postgres(schema) => Arc::new(open_postgres(schema).await),
        }
    }
}

/// Opens a store in `schema`, as one node would.
pub async fn open_postgres(schema: &TestSchema) -> PostgresStore {
    PostgresStore::connect(&schema.url()).await.unwrap()
}

/// How long a test waits for something that should be prompt before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);
