//! Where a test server keeps its state: a temporary SQLite file, or a schema of its own in the
//! test PostgreSQL database with a key prefix of its own in the test Redis. Which one is the
//! test binary's choice (`crate::BACKEND`), so the same tests run on both.

use std::sync::Arc;

use keywarden_core::change::Standalone;
use keywarden_core::store::Store;
use keywarden_core::time::Clock;
use keywarden_server::service::Backends;
use keywarden_store::postgres_feed::PostgresFeed;
use keywarden_store::{PostgresStore, SqliteStore};
use keywarden_testkit::{TestSchema, postgres_url};

/// The backends a test binary runs its tests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each test binary constructs only its own
pub enum Backend {
    Sqlite,
    PostgresRedis,
}

/// A test's storage; it outlives server restarts within the test and is removed at the end.
pub enum TestStorage {
    Sqlite(tempfile::TempDir),
    Postgres { schema: TestSchema },
}

impl TestStorage {
    /// Fresh storage for `backend`. A PostgreSQL that does not answer fails the test.
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::Sqlite(tempfile::tempdir().expect("temp dir")),
            Backend::PostgresRedis => Self::Postgres {
                schema: TestSchema::create().await,
            },
        }
    }

    /// Opens the store and the other backends a node on this storage uses.
    pub async fn open(&self, clock: Arc<dyn Clock>) -> (Arc<dyn Store>, Backends) {
        match self {
            Self::Sqlite(dir) => {
                let store: Arc<dyn Store> = Arc::new(
                    SqliteStore::open(&dir.path().join("keywarden.db")).expect("open store"),
                );
                let backends = Backends {
                    store: Arc::clone(&store),
                    feed: Arc::new(Standalone),
                    limiter: None,
                };
                (store, backends)
            }
            Self::Postgres { schema } => {
                let postgres = PostgresStore::connect(&schema.url())
                    .await
                    .expect("the test PostgreSQL (KEYWARDEN_TEST_POSTGRES_URL) must be reachable");
                let feed = PostgresFeed::new(postgres.pool().clone(), Arc::clone(&clock))
                    .await
                    .expect("change feed");
                let store: Arc<dyn Store> = Arc::new(postgres);
                let backends = Backends {
                    store: Arc::clone(&store),
                    feed: Arc::new(feed),
                    limiter: Some(crate::redis_limiter::for_test(schema.name(), clock).await),
                };
                (store, backends)
            }
        }
    }

    /// Every byte the store holds, as far as a reader of its files or tables could see it.
    pub async fn raw_contents(&self) -> Vec<u8> {
        match self {
            Self::Sqlite(dir) => {
                let mut bytes = std::fs::read(dir.path().join("keywarden.db")).unwrap();
                if let Ok(wal) = std::fs::read(dir.path().join("keywarden.db-wal")) {
                    bytes.extend(wal);
                }
                bytes
            }
            Self::Postgres { schema } => {
                let schema = schema.name();
                let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(schema)
                .fetch_all(&pool)
                .await
                .unwrap();
                assert!(!tables.is_empty(), "schema {schema} has no tables");
                let mut bytes = Vec::new();
                for table in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT t::text FROM {schema}.{table} t"
                    )))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    for row in rows {
                        bytes.extend(row.into_bytes());
                        bytes.push(b'\n');
                    }
                }
                bytes
            }
        }
    }
}
