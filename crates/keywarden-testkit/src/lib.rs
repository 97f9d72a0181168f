//! What Keywarden's test suites share about the services they run against: where the test
//! PostgreSQL and Redis are, a PostgreSQL schema of a test's own, names no other test uses,
//! and a TCP proxy that cuts a service off (or hangs it) without touching the shared service.
//!
//! Only test code depends on this crate; it panics rather than returning errors, because a
//! test support failure is a failed test.

mod proxy;
mod schema;
mod url;

pub use proxy::TcpProxy;
pub use schema::TestSchema;
pub use url::{socket_of, via_port, with_param};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The test PostgreSQL: `KEYWARDEN_TEST_POSTGRES_URL`, or the local default.
pub fn postgres_url() -> String {
    std::env::var("KEYWARDEN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

/// The test Redis: `KEYWARDEN_TEST_REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("KEYWARDEN_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into())
}

/// `prefix` followed by 16 random lowercase hex digits: a name no other test, in this process
/// or another one sharing the services, uses. Lowercase, so it is also a PostgreSQL
/// identifier that needs no quoting when `prefix` is one.
pub fn unique_name(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}
