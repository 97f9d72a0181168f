//! Nodes sharing PostgreSQL and Redis: a schema of the test database and a Redis key prefix
//! of their own per test, so tests run in parallel. `KEYWARDEN_TEST_POSTGRES_URL` and
//! `KEYWARDEN_TEST_REDIS_URL` say where the services are; one that does not answer fails the
//! test.

use std::path::Path;

use keywarden_testkit::{TestSchema, redis_url, unique_name};

use super::{Launch, ServerProcess};

/// The shared state of one test's cluster.
pub struct Shared {
    pub schema: TestSchema,
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
        Self {
            schema: TestSchema::create().await,
            redis_prefix: unique_name("kwtest_"),
        }
    }

    pub fn options(&self) -> NodeOptions {
        NodeOptions {
            database_url: self.schema.url(),
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
