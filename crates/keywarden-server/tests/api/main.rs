//! Integration tests: the real server on an ephemeral port over a temporary SQLite store,
//! driven over HTTP.

mod apis;
mod auth;
mod concurrency;
mod credits;
mod errors;
mod fuzz;
mod helpers;
mod identities;
mod isolation;
mod key_access;
mod key_limits;
mod keys;
mod migrate;
mod pagination;
mod permissions;
mod ratelimit;
mod refill;
mod reroll;
mod root_keys;
mod verify;
