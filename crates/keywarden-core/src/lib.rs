//! Keywarden's domain: what keys, APIs, credits and root keys are, and the rules that govern
//! them. Nothing here performs I/O; storage is described by the traits in [`store`] and
//! implemented elsewhere.

pub mod analytics_query;
pub mod anomaly;
pub mod api;
pub mod audit;
pub mod change;
pub mod credits;
pub mod digest;
pub mod id;
pub mod identity;
pub mod key;
pub mod key_change;
pub mod key_format;
pub mod key_lifetime;
pub mod meta;
pub mod named_limit;
pub mod namespace;
pub mod permission_query;
pub mod random;
pub mod ratelimit;
pub mod rbac;
pub mod restriction;
pub mod root_key;
pub mod secret;
pub mod store;
pub mod text;
pub mod time;
pub mod usage;
pub mod verify;
pub mod verify_limits;
pub mod webhook;
pub mod webhook_outbox;
pub mod workspace;
