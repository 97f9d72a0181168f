//! Nodes sharing PostgreSQL and Redis: a schema of the test database and a Redis key prefix
//! of their own per test, so tests run in parallel. `KEYWARDEN_TEST_POSTGRES_URL` and
//! `KEYWARDEN_TEST_REDIS_URL` say where the services are; one that does not answer fails the
//! test.

use std::net::SocketAddr;
use std::path::Path;

use super::{Launch, ServerProcess};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

pub fn postgres_url() -> String {
    std::env::var("KEYWARDEN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

pub fn redis_url() -> String {
    std::env::var("KEYWARDEN_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into())
}

/// The `host:port` of a service URL, for pointing a proxy at it.
pub fn socket_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else if url.starts_with("redis") {
        format!("{host_port}:6379")
    } else {
        format!("{host_port}:5432")
    };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .unwrap_or_else(|_| panic!("cannot proxy {url}: not host:port"))
}

/// `url` with its host and port replaced by `127.0.0.1:port`.
pub fn via_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let credentials = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"))
        .unwrap_or_default();
    format!("{scheme}://{credentials}127.0.0.1:{port}{tail}")
}

/// A name no other test (in this or another test process) uses.
fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}_{n}_{nanos:x}", std::process::id())
}

/// The shared state of one test's cluster.
pub struct Shared {
    pub schema: String,
    pub redis_prefix: String,
}

/// How one node reaches the shared services.
pub struct NodeOptions {
    pub database_url: String,
    pub redis_url: String,
    pub fault_mode: &'static str,
}

impl Shared {
    pub async fn create() -> Self {
        let schema = unique("kwc_");
        admin(&format!("CREATE SCHEMA {schema}")).await;
        Self {
            redis_prefix: unique("kwtest_"),
            schema,
        }
    }

    /// The database URL of this cluster's schema, through `base` (the test database, or a
    /// proxy in front of it).
    pub fn database_url_via(&self, base: &str) -> String {
        let separator = if base.contains('?') { '&' } else { '?' };
        format!(
            "{base}{separator}options=-c%20search_path%3D{}",
            self.schema
        )
    }

    pub fn options(&self) -> NodeOptions {
        NodeOptions {
            database_url: self.database_url_via(&postgres_url()),
            redis_url: redis_url(),
            fault_mode: "local",
        }
    }

    /// Starts a node on the shared services with its working directory in `dir`.
    pub fn node(&self, dir: &Path) -> ServerProcess {
        self.node_with(dir, &self.options())
    }

    pub fn node_with(&self, dir: &Path, options: &NodeOptions) -> ServerProcess {
        self.node_with_env(dir, options, &[])
    }

    /// A node with extra environment settings.
    pub fn node_with_env(
        &self,
        dir: &Path,
        options: &NodeOptions,
        envs: &[(&str, &str)],
    ) -> ServerProcess {
        let args = [
            "--database",
            options.database_url.as_str(),
            "--redis",
            options.redis_url.as_str(),
            "--redis-fault-mode",
            options.fault_mode,
        ];
        let mut all_envs = vec![("KEYWARDEN_REDIS_PREFIX", self.redis_prefix.as_str())];
        all_envs.extend_from_slice(envs);
        ServerProcess::start(Launch {
            extra_args: &args,
            envs: &all_envs,
            ..Launch::in_dir(dir)
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = runtime.block_on(try_admin(&statement));
            }
        })
        .join();
    }
}

async fn admin(statement: &str) {
    if let Err(e) = try_admin(statement).await {
        panic!("the test PostgreSQL (KEYWARDEN_TEST_POSTGRES_URL) failed `{statement}`: {e}");
    }
}

async fn try_admin(statement: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&postgres_url()).await?;
    // Test-made names only (random schema names), never outside input.
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut conn)
        .await?;
    conn.close().await
}
