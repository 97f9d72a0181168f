//! Tests against a real Redis: `KEYWARDEN_TEST_REDIS_URL`, or `redis://127.0.0.1:6379`. A
//! Redis that cannot be reached fails them; nothing is skipped. Each test writes under its own
//! random key prefix and deletes it afterwards, so tests run in parallel.
//!
//! The cluster tests start a Redis Cluster of their own instead (`redis-server` and
//! `redis-cli` on `PATH`, or they fail), one per test, on free ports; it is stopped when the
//! test ends, passed or failed.

mod batching;
mod cluster;
mod equivalence;
mod helpers;
mod limiter;
mod local_servers;
mod resilient;
