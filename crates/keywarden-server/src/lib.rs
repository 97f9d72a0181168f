//! Keywarden's HTTP server: the Unkey v2 wire protocol over `keywarden-core`.

pub mod application;
pub mod error;
mod http;
pub mod service;
mod state;
pub mod tls;

pub use application::{Application, ServerSettings};
pub use http::MAX_BODY_BYTES;
pub use tls::TlsSettings;
