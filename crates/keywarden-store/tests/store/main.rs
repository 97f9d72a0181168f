//! The store contract, run against every backend: each test body takes a [`Backend`] and is
//! instantiated once per backend by [`store_tests!`], as `<module>::sqlite::<test>` and
//! `<module>::postgres::<test>`.
//!
//! SQLite tests use a file in a temporary directory. PostgreSQL tests use the server at
//! `KEYWARDEN_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), each in
//! a schema of its own that is dropped afterwards; a server that cannot be reached fails the
//! tests rather than skipping them.

/// Runs each named test body (an `async fn(Backend)` of the invoking module) on every backend.
macro_rules! store_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::backend::Backend::Sqlite).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::backend::Backend::Postgres).await;
                }
            )*
        }
    };
}

mod backend;
mod fixture;

mod analytics;
mod audit;
mod credits;
mod data_keys;
mod identities;
mod keys;
mod leaks;
mod namespaces;
mod postgres;
mod rbac;
mod restrictions;
mod root_keys;
mod server_secrets;
mod signing_keys;
mod usage;
mod webhooks;
