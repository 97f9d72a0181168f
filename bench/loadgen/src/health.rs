//! What `GET /v2/health` says about a server's backends, so a run records what it measured
//! (SQLite or PostgreSQL, limits in memory or in Redis) rather than what it was told.

use anyhow::{Context as _, bail};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use crate::client::{Target, send};

pub const HEALTH: &str = "/v2/health";

/// The backends a node reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backends {
    /// `sqlite` or `postgres`.
    pub store: String,
    /// `memory` or `redis`.
    pub limiter: String,
    /// `none` (a standalone node) or `postgres`.
    pub change_feed: String,
}

impl Backends {
    /// `store+limiter`, such as `sqlite+memory` or `postgres+redis`.
    pub fn label(&self) -> String {
        format!("{}+{}", self.store, self.limiter)
    }
}

/// A node's health at one moment.
#[derive(Debug, Clone)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    pub backends: Backends,
    /// Limit calls the node decided without its shared limiter (Redis unreachable or too
    /// slow), since it started. They make a run measure the fallback, not Redis.
    pub fallback_calls: u64,
}

#[derive(Deserialize)]
struct Envelope {
    data: Report,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    status: String,
    store: Part,
    limiter: LimiterPart,
    change_feed: Part,
}

#[derive(Deserialize)]
struct Part {
    backend: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimiterPart {
    backend: String,
    #[serde(default)]
    fallback_calls: u64,
}

/// Asks the node; fails if it has no health endpoint (builds before it) or answers oddly.
pub async fn fetch(target: &Target) -> anyhow::Result<Health> {
    let mut conn = target.connect().await?;
    let (status, body) = send(&mut conn, target.get(HEALTH)).await?;
    if status != StatusCode::OK {
        bail!("GET {HEALTH}: HTTP {status}");
    }
    let report: Envelope = serde_json::from_slice(&body).with_context(|| {
        format!(
            "GET {HEALTH}: unexpected response {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    let report = report.data;
    Ok(Health {
        status: report.status,
        backends: Backends {
            store: report.store.backend,
            limiter: report.limiter.backend,
            change_feed: report.change_feed.backend,
        },
        fallback_calls: report.limiter.fallback_calls,
    })
}
