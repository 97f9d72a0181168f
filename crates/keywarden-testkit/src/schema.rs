//! A PostgreSQL schema of a test's own in the test database, so tests run in parallel on one
//! server without seeing each other's tables, and leave nothing behind.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::url::{redacted, with_param};

/// How long connecting to the test PostgreSQL may take: a server that does not answer should
/// fail the test with a message, not hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A schema in the test database ([`crate::postgres_url`]), dropped with everything in it when
/// this value is dropped, also when the test panics.
pub struct TestSchema {
    name: String,
    server_url: String,
}

impl TestSchema {
    /// Creates a schema with a name no other test uses. A test PostgreSQL that cannot be
    /// reached fails the test: nothing is skipped for want of a service.
    pub async fn create() -> Self {
        let server_url = crate::postgres_url();
        let name = crate::unique_name("kwt_");
        let mut conn = connect(&server_url).await.unwrap_or_else(|e| {
            panic!(
                "the test PostgreSQL at {} (KEYWARDEN_TEST_POSTGRES_URL) is not reachable: {e}",
                redacted(&server_url)
            )
        });
        // The name is ours (a prefix and hex digits), never outside input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the test PostgreSQL at {} could not create schema {name}: {e}",
                    redacted(&server_url)
                )
            });
        let _ = conn.close().await;
        Self { name, server_url }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the test database whose connections work in this schema.
    pub fn url(&self) -> String {
        self.url_via(&self.server_url)
    }

    /// `base` (the test database, or a proxy in front of it) with connections put in this
    /// schema: its `search_path` is all that chooses the schema.
    pub fn url_via(&self, base: &str) -> String {
        with_param(base, &format!("options=-c%20search_path%3D{}", self.name))
    }

    /// A plain connection in this schema, for looking at or changing what the code under test
    /// wrote.
    pub async fn connection(&self) -> PgConnection {
        connect(&self.url()).await.unwrap_or_else(|e| {
            panic!(
                "the test PostgreSQL at {} is not reachable: {e}",
                redacted(&self.server_url)
            )
        })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.server_url.clone(), self.name.clone());
        // Drop may run inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own can. Best effort: a leftover schema harms no other test.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = connect(&url).await.ok()?;
                // A connection of the code under test still in a transaction must not hold
                // the test up for long.
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

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(connected) => connected,
        Err(_) => Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into())),
    }
}
