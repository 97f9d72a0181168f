//! Fresh, empty databases of each backend, and stores opened on them.

use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keywarden_core::store::Store;
use keywarden_store::{PostgresStore, SqliteStore};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

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
    Postgres(PgSchema),
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("kw.db");
                Self::Sqlite { _dir: dir, path }
            }
            Backend::Postgres => Self::Postgres(PgSchema::create().await),
        }
    }

    /// Opens a store on this database (migrating it when it is new).
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).unwrap()),
            Self::Postgres(schema) => Arc::new(schema.open().await),
        }
    }
}

/// The URL of the test server, as CI sets it.
pub fn postgres_url() -> String {
    std::env::var("KEYWARDEN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

/// `url` with one more query parameter (`name=value`, already encoded).
pub fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// A name no other test run uses at the same time.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = std::collections::hash_map::RandomState::new().hash_one((
        std::process::id(),
        std::time::SystemTime::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ));
    format!("{prefix}{n:016x}")
}

/// A PostgreSQL schema of its own for one test, dropped (with everything in it) when this
/// value is dropped, also when the test panics.
pub struct PgSchema {
    name: String,
    server_url: String,
}

impl PgSchema {
    pub async fn create() -> Self {
        let server_url = postgres_url();
        let name = unique_name("kwt_");
        let mut conn = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at KEYWARDEN_TEST_POSTGRES_URL ({server_url}) is not reachable: {e}"
                )
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self { name, server_url }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL that puts a connection in this schema.
    pub fn url(&self) -> String {
        with_param(
            &self.server_url,
            &format!("options=-c%20search_path%3D{}", self.name),
        )
    }

    /// Opens a store in this schema, as one node would.
    pub async fn open(&self) -> PostgresStore {
        PostgresStore::connect(&self.url()).await.unwrap()
    }

    /// A plain connection in this schema, for looking at or changing what a store wrote.
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url()).await.unwrap()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.server_url.clone(), self.name.clone());
        // Drop may run inside the test's runtime, which cannot be blocked on; a thread of its
        // own with its own runtime can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                // Best effort: a connection still in a transaction must not hold this up.
                let sql = format!("SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {name} CASCADE");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// How long a test waits for something that should be prompt before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);
