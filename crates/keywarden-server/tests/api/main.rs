//! Integration tests: the real server on an ephemeral port over a temporary SQLite store,
//! driven over HTTP. `tests/api_postgres` runs the same tests on PostgreSQL + Redis.

mod analytics;
mod anomalies;
mod apis;
mod audit;
mod auth;
mod backend;
mod concurrency;
mod credits;
mod errors;
mod fuzz;
mod health;
mod helpers;
mod identities;
mod isolation;
mod key_access;
mod key_lifetime;
mod key_limits;
mod keys;
mod leaks;
mod migrate;
mod pagination;
mod permissions;
mod ratelimit;
mod recoverable;
mod redis_limiter;
mod refill;
mod reroll;
mod restrictions;
mod root_keys;
mod server_secrets;
mod tls;
mod tokens;
mod usage;
mod verify;
mod webhook_store;
mod webhooks;

/// The backends every test of this binary runs on.
const BACKEND: backend::Backend = backend::Backend::Sqlite;
