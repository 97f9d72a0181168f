//! The integration suite of `tests/api`, run on PostgreSQL + Redis: every test gets a schema
//! of its own in the test database and a key prefix of its own in the test Redis.
//! `KEYWARDEN_TEST_POSTGRES_URL` and `KEYWARDEN_TEST_REDIS_URL` say where they are.

#[path = "../api/analytics.rs"]
mod analytics;
#[path = "../api/anomalies.rs"]
mod anomalies;
#[path = "../api/apis.rs"]
mod apis;
#[path = "../api/audit.rs"]
mod audit;
#[path = "../api/auth.rs"]
mod auth;
#[path = "../api/backend.rs"]
mod backend;
#[path = "../api/concurrency.rs"]
mod concurrency;
#[path = "../api/credits.rs"]
mod credits;
#[path = "../api/errors.rs"]
mod errors;
#[path = "../api/fuzz.rs"]
mod fuzz;
#[path = "../api/health.rs"]
mod health;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/identities.rs"]
mod identities;
#[path = "../api/isolation.rs"]
mod isolation;
#[path = "../api/key_access.rs"]
mod key_access;
#[path = "../api/key_lifetime.rs"]
mod key_lifetime;
#[path = "../api/key_limits.rs"]
mod key_limits;
#[path = "../api/keys.rs"]
mod keys;
#[path = "../api/leaks.rs"]
mod leaks;
#[path = "../api/migrate.rs"]
mod migrate;
#[path = "../api/pagination.rs"]
mod pagination;
#[path = "../api/permissions.rs"]
mod permissions;
#[path = "../api/ratelimit.rs"]
mod ratelimit;
#[path = "../api/recoverable.rs"]
mod recoverable;
#[path = "../api/redis_limiter.rs"]
mod redis_limiter;
#[path = "../api/refill.rs"]
mod refill;
#[path = "../api/reroll.rs"]
mod reroll;
#[path = "../api/restrictions.rs"]
mod restrictions;
#[path = "../api/root_keys.rs"]
mod root_keys;
#[path = "../api/server_secrets.rs"]
mod server_secrets;
#[path = "../api/tls.rs"]
mod tls;
#[path = "../api/tokens.rs"]
mod tokens;
#[path = "../api/usage.rs"]
mod usage;
#[path = "../api/verify.rs"]
mod verify;
#[path = "../api/webhook_store.rs"]
mod webhook_store;
#[path = "../api/webhooks.rs"]
mod webhooks;

/// The backends every test of this binary runs on.
const BACKEND: backend::Backend = backend::Backend::PostgresRedis;
